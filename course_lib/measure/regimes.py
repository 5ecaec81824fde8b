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
from .shuffle_quality import arrival_order, shuffle_quality
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
    ]


def _run_dict(result: ThroughputResult, pss: PeakPss) -> dict[str, Any]:
    return {**result.as_dict(), "pss_anon_mb": pss.peak.anon_mb - pss.start.anon_mb,
            "pss_file_mb": pss.peak.file_mb - pss.start.file_mb,
            "pss_shmem_mb": pss.peak.shmem_mb - pss.start.shmem_mb, "pss_processes": pss.peak.processes}


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
                  warmup: int = 1, step: TrainingStep | None = None, wait_workers: Sequence[int] = (),
                  wait_batches: int = 8, regime_workers: dict[str, Sequence[int]] | None = None,
                  progress: bool = False) -> list[dict[str, Any]]:
    """Every (spec, worker count) ``repeats`` times, alternating order; one row per pair (JSON-ready).

    Each run builds its loader afresh (its workers start, then are excluded from the rate as warm-up), so
    only the measured loader's processes are alive and counted. Specs with ``reuse`` (workers that take
    seconds to spawn) are built once per worker count and timed back to back instead. ``max_samples`` caps
    each timed run per regime (e.g. ``{"JPEG": 640}``) and ``max_seconds`` stops a run after that long (after
    at least 2 timed items). ``regime_workers`` overrides ``worker_counts`` per regime. A row has the median
    samples/s, its min and max, the median MB/s, the peak PSS growth (anonymous, file-backed, shared memory)
    and every run. With ``step``, pairs whose worker count is in ``wait_workers`` also get ``data_wait``.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    caps, per_regime = max_samples or {}, regime_workers or {}
    pairs = [(s, w) for s in specs for w in per_regime.get(s.regime, worker_counts)
             if s.worker_counts is None or w in s.worker_counts]
    runs: dict[int, list[dict[str, Any]]] = {i: [] for i in range(len(pairs))}
    waits: dict[int, dict[str, Any]] = {}

    def run_once(i: int, loader: Iterable) -> None:
        spec, w = pairs[i]
        with PeakPss() as pss:
            result = measure_throughput(timed(loader, max_seconds), bytes_per_sample=spec.bytes_per_sample,
                                        warmup=warmup, max_samples=caps.get(spec.regime), progress=False,
                                        label=spec.label(w))
        runs[i].append(_run_dict(result, pss))
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
        if step is not None and pairs[i][1] in wait_workers:
            wait_once(i, pairs[i][0].make(pairs[i][1]))
    for i, (spec, w) in enumerate(pairs):
        if spec.reuse:
            loader = spec.make(w)
            for _ in range(repeats):
                run_once(i, loader)
            if step is not None and w in wait_workers:
                wait_once(i, loader)
            del loader
            gc.collect()  # its workers stop before the next pair is measured
    rows = [_row(spec, w, runs[i]) for i, (spec, w) in enumerate(pairs)]
    for i, waited in waits.items():
        rows[i]["data_wait"] = waited
    return rows


def _row(spec: LoaderSpec, num_workers: int, runs: list[dict[str, Any]]) -> dict[str, Any]:
    rates = [r["samples_per_s"] for r in runs]
    return {"loader": spec.name, "library": spec.library, "regime": spec.regime, "num_workers": num_workers,
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


def regime_goals(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Chapter 05's goals, computed from measured rows (reported, never asserted):

    - ``decode_scaling``: the course's JPEG pipeline, 2 workers / 0 workers (goal >= 1.8 on 2 cores);
    - ``course_vs_seed``: per worker count, course JPEG / seed JPEG (goal >= 2 at equal workers);
    - ``course_vs_peers``: per (peer, worker count), course JPEG / peer JPEG (goal >= 1), and which peers won;
    - ``raw_vs_peers``: the course's fastest shuffled raw row / the fastest peer's shuffled raw row (goal >= 15).
    """
    out: dict[str, Any] = {}
    jpeg0 = _rate(rows, library="course", regime="JPEG", loader=COURSE_JPEG, num_workers=0)
    jpeg2 = _rate(rows, library="course", regime="JPEG", loader=COURSE_JPEG, num_workers=2)
    out["decode_scaling"] = jpeg2 / jpeg0 if jpeg0 and jpeg2 else None
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
            if ("error" not in r and r["regime"] == "JPEG" and r["num_workers"] == w and course
                    and r["library"] not in ("course", "seed")):
                out["course_vs_peers"].append({"peer": f"{r['library']}: {r['loader']}", "num_workers": w,
                                               "ratio": course / r["samples_per_s"]})
    out["peers_that_win_jpeg"] = [p for p in out["course_vs_peers"] if p["ratio"] < 1]
    raw_course = best(rows, library="course", regime="raw")
    peers_raw = [r for r in rows if "error" not in r and r["regime"] == "raw" and r["library"] not in ("course",
                                                                                                     "seed")]
    raw_peer = max(peers_raw, key=lambda r: r["samples_per_s"], default=None)
    out["raw_best"] = raw_course and raw_course["label"]
    out["raw_best_peer"] = raw_peer and raw_peer["label"]
    out["raw_vs_peers"] = raw_course["samples_per_s"] / raw_peer["samples_per_s"] if raw_course and raw_peer else None
    return out
