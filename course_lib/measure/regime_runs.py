"""Timing the loaders of chapter 05: every (loader, worker count) ``repeats`` times in alternating order.

A :class:`LoaderSpec` names a loader, its library and its regime (``raw``: uint8 arrays copied; ``JPEG``:
encoded images decoded and augmented), and builds it for a worker count. :func:`measure_specs` times every
pair in alternating order (forward, then backward, ...), so a slow moment of a shared machine does not always
hit the same loader, and reports the median with the spread (min-max), the CPU used and the peak memory of the
process group as PSS (workers included, shared pages counted once).
"""
from __future__ import annotations

import gc
import multiprocessing
import resource
import statistics
import sys
import time
from dataclasses import dataclass, fields
from typing import Any, Callable, Iterable, Sequence

from .process_memory import PeakPss
from .throughput import MIN_SAMPLES, ThroughputResult, count_samples_in, measure_throughput
from .training_step import TrainingStep, data_wait

# PSS is read at a run's start and end (workers still alive), and during it only every PSS_EVERY_S: reading
# /proc/PID/smaps_rollup of a large process (a notebook kernel) in a sampling thread every 0.1 s slowed the
# 2-worker JPEG rows by about a third (measured beside a no-op sampler), which peers timed in a small subprocess
# did not pay (issue 22 item 16; the rest of that 1.29x was the workers' join, now outside the clock:
# measure_throughput stops it at the last timed item).
PSS_EVERY_S = 1.0


@dataclass
class LoaderSpec:
    """One compared loader: ``make(num_workers)`` builds it; ``order`` (optional) builds a cheap loader
    with the same order (no decoding) for shuffle statistics."""

    name: str
    library: str
    regime: str
    make: Callable[[int], Iterable]
    bytes_per_sample: float
    order: Callable[[], Iterable] | None = None
    worker_counts: tuple[int, ...] | None = None  # measured only at these (None: every requested count)
    reuse: bool = False  # build once per worker count, repeats back to back (workers that take seconds to spawn)
    wraps_course: bool = False  # a peer's loader around the course's own dataset (not a peer's path to compare)

    def label(self, num_workers: int) -> str:
        """The label a result carries: regime, library, loader and worker count."""
        return f"{self.regime} · {self.library}: {self.name} · {num_workers} workers"


def _run_dict(result: ThroughputResult, pss: PeakPss) -> dict[str, Any]:
    return {**result.as_dict(), "pss_anon_mb": pss.peak.anon_mb - pss.start.anon_mb,
            "pss_file_mb": pss.peak.file_mb - pss.start.file_mb,
            "pss_shmem_mb": pss.peak.shmem_mb - pss.start.shmem_mb, "pss_processes": pss.peak.processes}


class _Delivered:
    """``iterable``, counting every sample it yields (warm-up included): the denominator of CPU per sample."""

    def __init__(self, iterable: Iterable):
        self.iterable, self.samples = iterable, 0

    def __iter__(self):
        from .throughput import count_samples_in

        for item in self.iterable:
            self.samples += count_samples_in(item)
            yield item


def _cpu_s(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def timed(iterable: Iterable, seconds: float | None, min_items: int = 2, min_samples: int = 0) -> Iterable:
    """``iterable``, stopped once ``seconds`` have passed since its first item, after at least ``min_items`` more
    items and ``min_samples`` more samples (waited for up to ``4 * seconds``, then the run stops and is flagged
    ``too_short`` by ``measure_throughput``): every run of a slow and a fast loader costs about the same time."""
    if seconds is None:
        yield from iterable
        return
    deadline, n, samples = None, 0, 0
    for item in iterable:
        yield item
        now = time.perf_counter()
        if deadline is None:
            deadline = now + seconds
            continue
        n, samples = n + 1, samples + (count_samples_in(item) if samples < min_samples else 0)
        if n >= min_items and now > deadline and (samples >= min_samples or now > deadline + 3 * seconds):
            return


def measure_specs(specs: Sequence[LoaderSpec], worker_counts: Sequence[int], *, repeats: int = 3,
                  max_samples: dict[str, int | None] | None = None, max_seconds: float | None = None,
                  warmup: int = 1, step: TrainingStep | None = None,
                  wait_workers: Sequence[int] | dict[str, Sequence[int]] = (),
                  wait_batches: int = 8, regime_workers: dict[str, Sequence[int]] | None = None,
                  progress: bool = False) -> list[dict[str, Any]]:
    """Every (spec, worker count) ``repeats`` times, alternating order; one row per pair (JSON-ready).

    Each run builds its loader afresh (its workers start, then are excluded from the rate as warm-up), so
    only the measured loader's processes are alive and counted. Specs with ``reuse`` (workers that take
    seconds to spawn) are built once per worker count and timed back to back instead. ``max_samples`` caps
    each timed run per regime (e.g. ``{"JPEG": 640}``) and ``max_seconds`` stops a run after that long (after
    at least 2 timed items). ``regime_workers`` overrides ``worker_counts`` per regime. A row has the median
    samples/s, its min and max, the median MB/s, the peak PSS growth (anonymous, file-backed, shared memory)
    and every run. With ``step``, pairs whose worker count is in ``wait_workers`` also get ``data_wait``
    (a dict gives the counts per regime, e.g. ``{"raw": [0, 2], "JPEG": [2]}``).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    caps, per_regime = max_samples or {}, regime_workers or {}
    pairs = [(s, w) for s in specs for w in per_regime.get(s.regime, worker_counts)
             if s.worker_counts is None or w in s.worker_counts]
    runs: dict[int, list[dict[str, Any]]] = {i: [] for i in range(len(pairs))}
    waits: dict[int, dict[str, Any]] = {}

    def waited_for(spec: LoaderSpec, w: int) -> bool:
        counts = wait_workers.get(spec.regime, ()) if isinstance(wait_workers, dict) else wait_workers
        return step is not None and w in counts

    def run_once(i: int, loader: Iterable) -> None:
        spec, w = pairs[i]
        delivered = _Delivered(timed(loader, max_seconds, min_samples=MIN_SAMPLES))
        wall, main, children = time.perf_counter(), _cpu_s(resource.RUSAGE_SELF), _cpu_s(resource.RUSAGE_CHILDREN)
        others = set(multiprocessing.active_children())   # children not of this run (a test's server, a reused loader)
        with PeakPss(interval_s=PSS_EVERY_S, children_every_s=PSS_EVERY_S) as pss:
            result = measure_throughput(delivered, bytes_per_sample=spec.bytes_per_sample,
                                        warmup=warmup, max_samples=caps.get(spec.regime), progress=False,
                                        label=spec.label(w))
        if w and not spec.reuse:   # built for this run: its workers go now (a reused loader keeps them for the next)
            _stop_workers(loader)   # a loader that keeps its iterator (StatefulDataLoader) joins them here
            for worker in set(multiprocessing.active_children()) - others:
                worker.join(timeout=10)   # torch's join gives up after a few seconds: under load one was still exiting
        # the run's iterator is gone: a DataLoader's workers were joined, their CPU time is the children's
        wall, main = time.perf_counter() - wall, _cpu_s(resource.RUSAGE_SELF) - main
        reaped = not (w and set(multiprocessing.active_children()) - others)
        children = _cpu_s(resource.RUSAGE_CHILDREN) - children if reaped else None
        runs[i].append({**_run_dict(result, pss), **_cpu_dict(wall, main, children, delivered.samples)})
        if progress:
            print(f"  {result.label}: {result.samples_per_s:,.0f} samples/s", file=sys.stderr, flush=True)

    def wait_once(i: int, loader: Iterable) -> None:
        spec, w = pairs[i]
        # warm-up: max(2, num_workers) batches, so every worker's first batch (its start-up) is untimed
        waited = data_wait(loader, step, batches=wait_batches, label=spec.label(w))
        waits[i] = {"step": repr(step), **waited.as_dict()}

    fresh = [i for i, (s, _) in enumerate(pairs) if not s.reuse]
    for r in range(repeats):
        for i in (fresh if r % 2 == 0 else fresh[::-1]):
            run_once(i, pairs[i][0].make(pairs[i][1]))
    for i in fresh:
        if waited_for(*pairs[i]):
            wait_once(i, pairs[i][0].make(pairs[i][1]))
    for i, (spec, w) in enumerate(pairs):
        if spec.reuse:
            loader = spec.make(w)
            for _ in range(repeats):
                run_once(i, loader)
            if waited_for(spec, w):
                wait_once(i, loader)
            _stop_workers(loader)
            del loader
            gc.collect()
    rows = [_row(spec, w, runs[i]) for i, (spec, w) in enumerate(pairs)]
    for i, waited in waits.items():
        rows[i]["data_wait"] = waited
    return rows


def _cpu_dict(wall: float, main: float, children: float | None, delivered: int) -> dict[str, Any]:
    """CPU of one run (loader built to workers joined): cores busy (CPU-seconds per second, this process and
    its workers) and CPU ms per delivered sample; None where workers outlived the run (not counted)."""
    total = None if children is None else main + children
    return {"run_wall_s": wall, "main_cores": main / wall, "cpu_cores": None if total is None else total / wall,
            "cpu_ms_per_sample": None if total is None or not delivered else 1000 * total / delivered}


def _median_of(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def _stop_workers(loader: Any) -> None:
    """Stop a DataLoader's persistent workers now, before the next pair is measured.

    Left to the garbage collector, the iterator (in a reference cycle with its loader) was finalised after its
    queues: each worker's join then waited its full timeout (10 s for litdata's 2 workers, measured here).
    """
    iterator = getattr(loader, "_iterator", None)
    if iterator is not None and hasattr(iterator, "_shutdown_workers"):
        iterator._shutdown_workers()


def _row(spec: LoaderSpec, num_workers: int, runs: list[dict[str, Any]]) -> dict[str, Any]:
    rates = [r["samples_per_s"] for r in runs]
    cpu = {k: _median_of(runs, k) for k in ("main_cores", "cpu_cores", "cpu_ms_per_sample")}
    return {"loader": spec.name, "library": spec.library, "regime": spec.regime, "num_workers": num_workers,
            "wraps_course": spec.wraps_course, **cpu,
            "label": spec.label(num_workers), "samples_per_s": statistics.median(rates), "min": min(rates),
            "max": max(rates), "mb_per_s": statistics.median(r["mb_per_s"] for r in runs),
            "pss_anon_mb": max(r["pss_anon_mb"] for r in runs), "pss_file_mb": max(r["pss_file_mb"] for r in runs),
            "pss_shmem_mb": max(r["pss_shmem_mb"] for r in runs),
            "start_s": statistics.median(r["warmup_seconds"] for r in runs),
            "too_short": any(r.get("too_short", False) for r in runs), "runs": runs}


def row_result(row: dict[str, Any]) -> ThroughputResult:
    """The row's median run as a :class:`ThroughputResult` (what ``verification_checkpoint`` records)."""
    runs = sorted(row["runs"], key=lambda r: r["samples_per_s"])
    median = runs[len(runs) // 2]
    names = {f.name for f in fields(ThroughputResult)}
    return ThroughputResult(**{k: v for k, v in median.items() if k in names})


def best(rows: Iterable[dict[str, Any]], **where: Any) -> dict[str, Any] | None:
    """The fastest row (median samples/s) whose fields match ``where``; None when none does."""
    chosen = [r for r in rows if "error" not in r and all(r.get(k) == v for k, v in where.items())]
    return max(chosen, key=lambda r: r["samples_per_s"], default=None)
