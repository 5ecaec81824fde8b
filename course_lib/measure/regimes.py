"""Copy-bound vs decode-bound, side by side: the loaders of chapter 05, measured the same way.

A :class:`LoaderSpec` names a loader, its library and its regime (``raw``: uint8 arrays copied;
``JPEG``: encoded images decoded and augmented), and builds it for a worker count. :func:`measure_specs`
times every (loader, worker count) ``repeats`` times in alternating order (forward, then backward, ...), so
a slow moment of a shared machine does not always hit the same loader, and reports the median with the
spread (min-max) and the peak memory of the process group as PSS (workers included, shared pages counted
once). Peer libraries use the same functions inside their own subprocess (:mod:`.peer_runner`).
"""
from __future__ import annotations

import gc
import multiprocessing
import resource
import statistics
import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from torch.utils.data import DataLoader

from ..loaders.image_pipeline import ImageShardDataset
from ..loaders.image_transforms import TrainTransform
from ..loaders.mmap_shards import MmapShardDataset
from ..loaders.shard_index import index_shards
from ..teaching.seed_jpeg import seed_jpeg_pipeline
from .process_memory import PeakPss
from .shuffle_metrics import arrival_order, shuffle_quality
from .throughput import ThroughputResult, measure_throughput
from .training_step import TrainingStep, data_wait

IMAGE_DEFAULTS = dict(samples=2048, shard_size=256, shape=(3, 128, 128), jpeg_quality=90)
REGIMES = ("raw", "JPEG")


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


def image_data(data_dir: str | Path, out: str | Path | None = None, *, samples: int = IMAGE_DEFAULTS["samples"],
               shard_size: int = IMAGE_DEFAULTS["shard_size"], shape: Sequence[int] = IMAGE_DEFAULTS["shape"],
               jpeg_quality: int = IMAGE_DEFAULTS["jpeg_quality"], progress: bool = False) -> Path:
    """The decode-bound dataset (npy + wds + JPEG ``img`` shards of the same pixels), generated once.

    Default place: ``image_data`` beside ``data_dir`` (the course output); re-runs reuse intact shards.
    """
    from data_gen import generate

    out = Path(out) if out else Path(data_dir).resolve().parent / "image_data"
    generate(out, samples=samples, shard_size=shard_size, shape=tuple(shape), formats=["npy", "wds", "img"],
             jpeg_quality=jpeg_quality, progress=progress, report=None)
    return out


def jpeg_bytes_per_sample(image_dir: str | Path) -> float:
    """Mean encoded bytes per sample of the ``img`` shards (tar headers included): what a JPEG loader reads."""
    from data_gen import read_manifest

    manifest = read_manifest(Path(image_dir))
    shards = [e for e in manifest["formats"]["img"]["shards"] if e]
    return sum(e["bytes"] for e in shards) / sum(e["samples"] for e in shards)



class _Factory:
    """``num_workers -> DataLoader(dataset(), batch_size=None)``: a picklable closure."""

    def __init__(self, build: Callable[..., Any], *args: Any, **kwargs: Any):
        self.build, self.args, self.kwargs = build, args, kwargs

    def dataset(self) -> Any:
        return self.build(*self.args, **self.kwargs)

    def __call__(self, num_workers: int) -> DataLoader:
        return DataLoader(self.dataset(), batch_size=None, num_workers=num_workers)


class OneTorchThread:
    """A 0-worker loader iterated with torch limited to one intra-op thread (restored afterwards).

    DataLoader workers already run torch single-threaded; the main process uses every core, and between
    the many small ops of a per-sample transform its idle threads keep spinning on the cores the decoder needs.
    """

    def __init__(self, make: Callable[[int], Iterable]):
        self.make = make

    def __call__(self, num_workers: int) -> Iterable:
        if num_workers:
            raise ValueError("OneTorchThread is for the main process (num_workers=0)")
        return _OneThreadLoader(self.make(0))


class _OneThreadLoader:
    def __init__(self, loader: Iterable):
        self.loader = loader

    def __iter__(self):
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield from self.loader
        finally:
            torch.set_num_threads(before)


def course_specs(image_dir: str | Path, *, batch_size: int = 64, crop_size: int = 64, seed: int = 0,
                 shuffle_buffer: int = 1000) -> list[LoaderSpec]:
    """The course's raw path, the seed's JPEG pipeline and the course's JPEG pipeline over one dataset."""
    raw_bytes = index_shards(image_dir).bytes_per_sample
    jpeg_bytes = jpeg_bytes_per_sample(image_dir)
    raw = _Factory(MmapShardDataset, image_dir, shuffle="block", batch_size=batch_size, seed=seed)
    seed_pipe = _Factory(seed_jpeg_pipeline, image_dir, TrainTransform(crop_size), batch_size=batch_size,
                         shuffle_buffer=shuffle_buffer, seed=seed)
    course = _Factory(ImageShardDataset, image_dir, batch_size=batch_size, size=crop_size, seed=seed)
    course_order = _Factory(ImageShardDataset, image_dir, batch_size=batch_size, size=crop_size, seed=seed,
                            decode=False)
    return [
        LoaderSpec("mmap block shuffle, batched", "course", "raw", raw, raw_bytes, raw.dataset),
        LoaderSpec("webdataset .decode('pil') + per-sample transform", "seed", "JPEG", seed_pipe, jpeg_bytes),
        LoaderSpec("the same, torch.set_num_threads(1)", "seed", "JPEG", OneTorchThread(seed_pipe), jpeg_bytes,
                   worker_counts=(0,)),
        LoaderSpec("decode at crop size + batch transform", "course", "JPEG", course, jpeg_bytes,
                   course_order.dataset),
        LoaderSpec("the same, torch.set_num_threads(1)", "course", "JPEG", OneTorchThread(course), jpeg_bytes,
                   worker_counts=(0,)),
    ]


def copy_bound_spec(data_dir: str | Path, *, batch_size: int = 256, shuffle: str = "block",
                    seed: int = 0) -> LoaderSpec:
    """The batched mmap path over the course dataset, as the GPU check measures it for worker counts
    (named like its rows: ``mmap block shuffle, batched 256``)."""
    make = _Factory(MmapShardDataset, data_dir, shuffle=shuffle, batch_size=batch_size, seed=seed)
    return LoaderSpec(f"mmap {shuffle} shuffle, batched {batch_size}", "course", "raw", make,
                      index_shards(data_dir).bytes_per_sample, make.dataset)


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


def timed(iterable: Iterable, seconds: float | None, min_items: int = 2) -> Iterable:
    """``iterable``, stopped once ``seconds`` have passed since its first item (after at least ``min_items``
    more): every run of a slow and a fast loader then costs about the same wall time."""
    if seconds is None:
        yield from iterable
        return
    deadline, n = None, 0
    for item in iterable:
        yield item
        n += 1
        now = time.perf_counter()
        if deadline is None:
            deadline = now + seconds
        elif n >= min_items and now > deadline:
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
        delivered = _Delivered(timed(loader, max_seconds))
        wall, main, children = time.perf_counter(), _cpu_s(resource.RUSAGE_SELF), _cpu_s(resource.RUSAGE_CHILDREN)
        with PeakPss() as pss:
            result = measure_throughput(delivered, bytes_per_sample=spec.bytes_per_sample,
                                        warmup=warmup, max_samples=caps.get(spec.regime), progress=False,
                                        label=spec.label(w))
        # the run's iterator is gone: a DataLoader's workers were joined, their CPU time is the children's
        wall, main = time.perf_counter() - wall, _cpu_s(resource.RUSAGE_SELF) - main
        reaped = not (w and multiprocessing.active_children())
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
            "start_s": statistics.median(r["warmup_seconds"] for r in runs), "runs": runs}


def row_result(row: dict[str, Any]) -> ThroughputResult:
    """The row's median run as a :class:`ThroughputResult` (what ``verification_checkpoint`` records)."""
    runs = sorted(row["runs"], key=lambda r: r["samples_per_s"])
    median = runs[len(runs) // 2]
    names = {f.name for f in fields(ThroughputResult)}
    return ThroughputResult(**{k: v for k, v in median.items() if k in names})


def order_quality(specs: Sequence[LoaderSpec]) -> list[dict[str, Any]]:
    """Shuffle statistics of one epoch's arrival order for every spec that can give it cheaply."""
    rows = []
    for spec in specs:
        if spec.order is None:
            continue
        order = arrival_order(spec.order())
        rows.append({"loader": spec.name, "library": spec.library, "regime": spec.regime,
                     "samples": len(order), **shuffle_quality(order)})
    return rows


def best(rows: Iterable[dict[str, Any]], **where: Any) -> dict[str, Any] | None:
    """The fastest row (median samples/s) whose fields match ``where``; None when none does."""
    chosen = [r for r in rows if "error" not in r and all(r.get(k) == v for k, v in where.items())]
    return max(chosen, key=lambda r: r["samples_per_s"], default=None)


COURSE_JPEG = "decode at crop size + batch transform"
SEED_JPEG = "webdataset .decode('pil') + per-sample transform"


def _rate(rows: Iterable[dict[str, Any]], **where: Any) -> float | None:
    row = best(rows, **where)
    return None if row is None else row["samples_per_s"]


def _peer(row: dict[str, Any]) -> bool:
    """A peer library's own path (not the course's, the seed's, or a peer loader around the course's dataset)."""
    return "error" not in row and row["library"] not in ("course", "seed") and not row.get("wraps_course")


def regime_goals(rows: Sequence[dict[str, Any]], *, ceiling_mb_s: float | None = None, cores: int | None = None,
                 load: float | None = None) -> dict[str, Any]:
    """Chapter 05's goals, computed from measured rows (reported, never asserted):

    - ``decode_scaling``: the course's JPEG pipeline, 2 workers / 0 workers (goal >= 1.8 on 2 cores);
    - ``course_vs_seed``: per worker count, course JPEG / seed JPEG (goal >= 2 at equal workers);
    - ``course_vs_peers``: per (peer, worker count), course JPEG / peer JPEG (goal >= 1), and which peers won;
    - ``raw_vs_peers``: the course's fastest shuffled raw row / the fastest peer's shuffled raw row (goal >= 15).

    Peer rows that wrap the course's own datasets (torchdata's StatefulDataLoader) are not peers' paths here.
    ``report`` lists each goal with its target, the measured value, met or not, and where it is not met, the
    measurements that bound it (CPU cores busy and CPU per sample of the rows, ``ceiling_mb_s`` (the
    page-cache read), ``cores`` and the 1-minute ``load`` average of the machine).
    """
    out: dict[str, Any] = {}
    jpeg0 = best(rows, library="course", regime="JPEG", loader=COURSE_JPEG, num_workers=0)
    jpeg2 = best(rows, library="course", regime="JPEG", loader=COURSE_JPEG, num_workers=2)
    out["decode_scaling"] = jpeg2["samples_per_s"] / jpeg0["samples_per_s"] if jpeg0 and jpeg2 else None
    seed0 = _rate(rows, library="seed", regime="JPEG", loader=SEED_JPEG, num_workers=0)
    seed2 = _rate(rows, library="seed", regime="JPEG", loader=SEED_JPEG, num_workers=2)
    out["seed_decode_scaling"] = seed2 / seed0 if seed0 and seed2 else None
    workers = sorted({r["num_workers"] for r in rows if "error" not in r})
    out["course_vs_seed"] = {}
    out["course_vs_peers"] = []
    for w in workers:
        course = _rate(rows, library="course", regime="JPEG", loader=COURSE_JPEG, num_workers=w)
        seed = _rate(rows, library="seed", regime="JPEG", loader=SEED_JPEG, num_workers=w)
        if course and seed:
            out["course_vs_seed"][w] = course / seed
        for r in rows:
            if _peer(r) and r["regime"] == "JPEG" and r["num_workers"] == w and course:
                out["course_vs_peers"].append({"peer": f"{r['library']}: {r['loader']}", "num_workers": w,
                                               "ratio": course / r["samples_per_s"]})
    out["peers_that_win_jpeg"] = [p for p in out["course_vs_peers"] if p["ratio"] < 1]
    raw_course = best(rows, library="course", regime="raw")
    raw_peer = max((r for r in rows if _peer(r) and r["regime"] == "raw"), key=lambda r: r["samples_per_s"],
                   default=None)
    out["raw_best"] = raw_course and raw_course["label"]
    out["raw_best_peer"] = raw_peer and raw_peer["label"]
    out["raw_vs_peers"] = raw_course["samples_per_s"] / raw_peer["samples_per_s"] if raw_course and raw_peer else None
    out["report"] = _report(rows, out, raw_course, raw_peer, jpeg0, jpeg2, ceiling_mb_s, cores, load)
    return out


def _cores(row: dict[str, Any] | None, key: str = "cpu_cores") -> str:
    value = None if row is None else row.get(key)
    return "not measured" if value is None else f"{value:.2f}"


def _machine(cores: int | None, load: float | None) -> str:
    if cores is None or load is None:
        return ""
    return (f"; the 1-minute load average was {load:.1f} on {cores} cores"
            + (" (more runnable processes than cores: the runs shared them)" if load > cores else ""))


def _report(rows, out, raw_course, raw_peer, jpeg0, jpeg2, ceiling_mb_s, cores, load) -> list[dict[str, Any]]:
    report = []
    one = best(rows, library="course", regime="JPEG", loader="the same, torch.set_num_threads(1)", num_workers=0)
    bound = ""
    if out["decode_scaling"] is not None and out["decode_scaling"] < 1.8:
        main0, busy2 = jpeg0.get("main_cores"), jpeg2.get("cpu_cores")
        parts = [f"at 0 workers this process kept {_cores(jpeg0, 'main_cores')} cores busy"
                 + (" (the decoder plus torch's intra-op threads in the batch transform): the 0-worker baseline "
                    "already used more than one core" if main0 is not None and main0 > 1.05 else "")]
        if one:
            parts.append(f"over the one-thread 0-worker rate ({one['samples_per_s']:,.0f}/s) 2 workers gave "
                         f"{jpeg2['samples_per_s'] / one['samples_per_s']:.2f}x")
        parts.append(f"the 2-worker runs kept {_cores(jpeg2)} cores busy, {_cores(jpeg2, 'main_cores')} of them in "
                     "this process (collating, receiving batches)"
                     + (f": short of {cores} cores, so the runs also waited (worker start-up, transport), not only "
                        "computed" if busy2 is not None and cores and busy2 < 0.8 * cores else ""))
        ms0, ms2 = jpeg0.get("cpu_ms_per_sample"), jpeg2.get("cpu_ms_per_sample")
        if ms0 is not None and ms2 is not None:
            parts.append(f"CPU per delivered sample went from {ms0:.2f} ms at 0 workers to {ms2:.2f} ms at 2 (an upper "
                         "bound: the workers' start-up, the batches they prefetched for nothing and moving every "
                         "batch between processes count)")
        bound = "; ".join(parts) + _machine(cores, load)
    report.append({"goal": "course JPEG pipeline, 2 workers over 0 workers", "target": 1.8,
                   "measured": out["decode_scaling"], "bound": bound})
    missed = {w: v for w, v in out["course_vs_seed"].items() if v < 2}
    bound = "; ".join(
        f"at {w} workers the course pipeline cost {_ms(rows, 'course', COURSE_JPEG, w)} ms of CPU per delivered "
        f"sample and the seed's {_ms(rows, 'seed', SEED_JPEG, w)} ms (workers included, start-up and prefetched "
        f"batches too)" for w in missed)
    report.append({"goal": "course JPEG over the seed's pipeline, at equal workers (lowest)", "target": 2.0,
                   "measured": min(out["course_vs_seed"].values(), default=None),
                   "bound": bound + (_machine(cores, load) if bound else "")})
    bound = ""
    if out["raw_vs_peers"] is not None and out["raw_vs_peers"] < 15:
        kb = raw_course["mb_per_s"] / raw_course["samples_per_s"] * 1000
        bound = (f"the fastest peer ({out['raw_best_peer']}) ran {raw_peer['samples_per_s']:,.0f}/s and the course's "
                 f"row {raw_course['samples_per_s']:,.0f}/s ({raw_course['mb_per_s']:,.0f} MB/s, samples of "
                 f"{kb:,.1f} kB)")
        if ceiling_mb_s:
            at_ceiling = ceiling_mb_s / raw_course["mb_per_s"] * raw_course["samples_per_s"]
            bound += (f", {raw_course['mb_per_s'] / ceiling_mb_s:.0%} of the page-cache read measured here "
                      f"({ceiling_mb_s:,.0f} MB/s); at that rate the ratio would be "
                      f"{at_ceiling / raw_peer['samples_per_s']:.1f}x")
        runs = raw_course.get("runs") or []
        if runs:
            bound += (f"; a course run timed {statistics.median(r['samples'] for r in runs):,.0f} samples (one epoch "
                      f"of the image set after its first batch) in "
                      f"{statistics.median(r['seconds'] for r in runs) * 1000:.0f} ms")
        bound += _machine(cores, load)
    report.append({"goal": "course's fastest shuffled raw path over the fastest peer's", "target": 15.0,
                   "measured": out["raw_vs_peers"], "bound": bound})
    lowest = min(out["course_vs_peers"], key=lambda p: p["ratio"], default=None)
    bound = "; ".join(f"{p['peer']} at {p['num_workers']} workers" for p in out["peers_that_win_jpeg"])
    report.append({"goal": "course JPEG over every peer's JPEG, at equal workers (lowest)", "target": 1.0,
                   "measured": lowest and lowest["ratio"], "bound": bound and f"faster here: {bound}"})
    for item in report:
        m = item["measured"]
        item["met"] = None if m is None else m >= item["target"]
    return report


def _ms(rows: Sequence[dict[str, Any]], library: str, loader: str, w: int) -> str:
    row = best(rows, library=library, loader=loader, num_workers=w)
    value = row and row.get("cpu_ms_per_sample")
    return "not measured" if value is None else f"{value:.2f}"
