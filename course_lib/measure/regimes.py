"""Copy-bound vs decode-bound: chapter 05's loaders over one image set, and the ratios between their rows.

The specs (:func:`course_specs`, :func:`copy_bound_spec`) are timed by :mod:`.regime_runs`
(``measure_specs``, imported here too); peer libraries use the same functions in their own subprocess
(:mod:`.peer_runner`). What bounds each ratio is written by :mod:`course_lib.course.regime_report`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from torch.utils.data import DataLoader, IterableDataset

from ..loaders.image_pipeline import ImageShardDataset
from ..loaders.image_transforms import TrainTransform
from ..loaders.mmap_shards import MmapShardDataset
from ..loaders.shard_index import index_shards
from ..teaching.seed_jpeg import seed_jpeg_pipeline
from .regime_runs import LoaderSpec, best
from .shuffle_metrics import arrival_order, shuffle_quality

IMAGE_DEFAULTS = dict(samples=2048, shard_size=256, shape=(3, 128, 128), jpeg_quality=90)
REGIMES = ("raw", "JPEG")
RAW_EPOCHS = 16  # the raw path runs an epoch of the image set in milliseconds: up to 16 back to back per timed run


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
    """``num_workers -> DataLoader(dataset(), batch_size=None)``: a picklable closure. With ``epochs`` > 1 the
    loader runs that many epochs back to back (``set_epoch`` between them), so a fast loader over a small set
    is timed for long enough (``measure_throughput``'s minimum duration) before ``timed`` stops it."""

    def __init__(self, build: Callable[..., Any], *args: Any, epochs: int = 1, **kwargs: Any):
        self.build, self.args, self.kwargs, self.epochs = build, args, kwargs, epochs

    def dataset(self) -> Any:
        return self.build(*self.args, **self.kwargs)

    def __call__(self, num_workers: int) -> DataLoader:
        data = self.dataset() if self.epochs == 1 else _Epochs(self.dataset(), self.epochs)
        return DataLoader(data, batch_size=None, num_workers=num_workers)


class _Epochs(IterableDataset):
    """``dataset``'s epochs 0..epochs-1, one after another (each worker iterates its own share of each)."""

    def __init__(self, dataset: Any, epochs: int):
        self.dataset, self.epochs = dataset, epochs

    def __iter__(self):
        for epoch in range(self.epochs):
            self.dataset.set_epoch(epoch)
            yield from self.dataset


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
    raw = _Factory(MmapShardDataset, image_dir, shuffle="block", batch_size=batch_size, seed=seed, epochs=RAW_EPOCHS)
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


COURSE_JPEG = "decode at crop size + batch transform"
SEED_JPEG = "webdataset .decode('pil') + per-sample transform"


def _rate(rows: Iterable[dict[str, Any]], **where: Any) -> float | None:
    row = best(rows, **where)
    return None if row is None else row["samples_per_s"]


def _peer(row: dict[str, Any]) -> bool:
    """A peer library's own path (not the course's, the seed's, or a peer loader around the course's dataset)."""
    return "error" not in row and row["library"] not in ("course", "seed") and not row.get("wraps_course")


def regime_goals(rows: Sequence[dict[str, Any]], **_unused: Any) -> dict[str, Any]:
    """Chapter 05's goals, computed from measured rows (reported, never asserted):

    - ``decode_scaling``: the course's JPEG pipeline, 2 workers / 0 workers (goal >= 1.8 on 2 cores);
    - ``course_vs_seed``: per worker count, course JPEG / seed JPEG (goal >= 2 at equal workers);
    - ``course_vs_peers``: per (peer, worker count), course JPEG / peer JPEG (goal >= 1), and which peers won;
    - ``raw_vs_peers``: the course's fastest shuffled raw row / the fastest peer's shuffled raw row (goal >= 15).

    Peer rows that wrap the course's own datasets (torchdata's StatefulDataLoader) are not peers' paths here.
    The text of what bounds each ratio is :func:`course_lib.course.regime_report.goal_report`'s.
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
    return out


