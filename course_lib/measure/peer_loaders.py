"""The peer libraries' loaders over chapter 05's dataset, each converted once (timed, not counted).

Built only inside a peer's own subprocess (:mod:`.peer_runner`): litdata switches the process to the
``spawn`` start method, and a library that crashes must not take the benchmark with it. Every builder
returns :class:`~.regimes.LoaderSpec` objects, measured exactly like the course's own loaders. On JPEG
each peer decodes with Pillow and applies the per-sample :class:`TrainTransform` (what its documentation
shows: a per-item transform), so the comparison with the course's batch path is at equal work.
"""
from __future__ import annotations

import io
import json
import shutil
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from ..loaders.image_pipeline import image_shards, read_image_shard
from ..loaders.image_transforms import TrainTransform
from ..loaders.shard_index import index_shards
from .lance_peer import lance_specs
from .peer_torchdata import SAME_PROCESS, torchdata_specs  # noqa: F401 (SAME_PROCESS: for callers)
from .regime_runs import LoaderSpec
from .regimes import jpeg_bytes_per_sample

SHUFFLE_BUFFER = 1000


def _stamp_ok(out: Path, source: dict[str, Any]) -> bool:
    stamp = out / "course_source.json"
    return stamp.exists() and json.loads(stamp.read_text()) == source


def _write_stamp(out: Path, source: dict[str, Any]) -> None:
    (out / "course_source.json").write_text(json.dumps(source))


def _raw_records(image_dir: Path) -> Iterator[dict[str, Any]]:
    for path in index_shards(image_dir).paths:
        records = np.load(path, mmap_mode="r", allow_pickle=False)
        for rec in records:
            yield {"x": np.array(rec["x"]), "y": int(rec["y"]), "idx": int(rec["idx"])}


def _jpeg_records(image_dir: Path) -> Iterator[dict[str, Any]]:
    paths, counts = image_shards(image_dir)
    for path in paths:
        for s in read_image_shard(path, counts.get(path.name)):
            yield {"jpg": s.data, "y": s.y, "idx": s.idx}


class DecodeTransform:
    """Pillow decode + the per-sample :class:`TrainTransform` of one item ``{"jpg": bytes, "y", "idx"}``."""

    def __init__(self, size: int):
        self.transform = TrainTransform(size)

    def __call__(self, item: dict[str, Any]) -> dict[str, Any]:
        from PIL import Image

        with Image.open(io.BytesIO(item["jpg"])) as image:
            x = self.transform(image.convert("RGB"))
        return {"x": x, "y": int(item["y"]), "idx": int(item["idx"])}


class DecodeTransformBatch(DecodeTransform):
    """The same for a Hugging Face ``with_transform`` batch (a dict of columns, images decoded by datasets)."""

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        return {"x": [self.transform(im.convert("RGB")) for im in batch["jpg"]], "y": batch["y"],
                "idx": batch["idx"]}


# --- litdata ------------------------------------------------------------------------------------------------

def litdata_specs(image_dir: Path, peers_dir: Path, *, batch_size: int, crop_size: int, seed: int = 0,
                  timings: dict[str, float]) -> list[LoaderSpec]:
    """litdata's StreamingDataset through its StreamingDataLoader, on raw arrays and on JPEG bytes."""
    import litdata

    specs = []
    for regime, records, bpp in [("raw", _raw_records, index_shards(image_dir).bytes_per_sample),
                                 ("JPEG", _jpeg_records, jpeg_bytes_per_sample(image_dir))]:
        out = peers_dir / f"litdata-{regime.lower()}"
        source = {"data": str(Path(image_dir).resolve()), "regime": regime, "samples": len(index_shards(image_dir))}
        if not (_stamp_ok(out, source) and (out / "index.json").exists()):
            started = time.perf_counter()
            shutil.rmtree(out, ignore_errors=True)
            litdata.optimize(fn=records, inputs=[Path(image_dir)], output_dir=str(out), chunk_bytes="64MB",
                             num_workers=1, mode="overwrite", verbose=False)
            _write_stamp(out, source)
            timings[f"litdata {regime} conversion"] = time.perf_counter() - started
        transform = DecodeTransform(crop_size) if regime == "JPEG" else None
        make = _LitdataFactory(out, batch_size, seed, transform)
        specs.append(LoaderSpec("StreamingDataset (shuffle) + StreamingDataLoader", "litdata", regime, make, bpp,
                                make.order if regime == "raw" else None, reuse=True))
    return specs


class _LitdataFactory:
    def __init__(self, prepared: Path, batch_size: int, seed: int, transform: Any):
        self.prepared, self.batch_size, self.seed, self.transform = prepared, batch_size, seed, transform

    def dataset(self):
        import litdata

        return litdata.StreamingDataset(str(self.prepared.resolve()), shuffle=True, seed=self.seed,
                                        transform=self.transform)

    def __call__(self, num_workers: int):
        import litdata

        # persistent workers: litdata runs them under spawn (seconds to start), so start them once per loader
        return litdata.StreamingDataLoader(self.dataset(), batch_size=self.batch_size, num_workers=num_workers,
                                           persistent_workers=num_workers > 0)

    def order(self):
        return self(0)


# --- Hugging Face datasets ----------------------------------------------------------------------------------

def hf_specs(image_dir: Path, peers_dir: Path, *, batch_size: int, crop_size: int, seed: int = 0,
             timings: dict[str, float]) -> list[LoaderSpec]:
    """Hugging Face ``datasets`` (Arrow, memory-mapped): shuffled map-style through a DataLoader, batched
    ``ds[indices]`` access, ``to_iterable_dataset`` with a shuffle buffer; and map-style on JPEG."""
    import datasets

    index = index_shards(image_dir)
    shape = index.dtype["x"].shape
    raw_dir, jpeg_dir = peers_dir / "hf-raw", peers_dir / "hf-jpeg"
    source = {"data": str(Path(image_dir).resolve()), "samples": len(index)}
    labels = {"y": datasets.Value("int64"), "idx": datasets.Value("int64")}
    conversions = [("raw", raw_dir, _raw_records, {"x": datasets.Array3D(shape=shape, dtype="uint8"), **labels}),
                   ("JPEG", jpeg_dir, _hf_jpeg_records, {"jpg": datasets.Image(), **labels})]
    for regime, out, records, features in conversions:   # each converted once; a stamp says from what
        if _stamp_ok(out, source):
            continue
        started = time.perf_counter()
        ds = datasets.Dataset.from_generator(records, gen_kwargs={"image_dir": Path(image_dir)},
                                             features=datasets.Features(features),
                                             cache_dir=str(peers_dir / "hf-cache"))
        shutil.rmtree(out, ignore_errors=True)
        ds.save_to_disk(str(out))
        _write_stamp(out, source)
        timings[f"HF datasets {regime} conversion"] = time.perf_counter() - started
    shutil.rmtree(peers_dir / "hf-cache", ignore_errors=True)
    raw_bpp, jpeg_bpp = index.bytes_per_sample, jpeg_bytes_per_sample(image_dir)
    map_style = _HFMapStyle(raw_dir, batch_size, seed)
    batched = _HFFactory(_HFBatches, raw_dir, batch_size, seed)
    iterable = _HFIterable(raw_dir, batch_size, seed)
    jpeg = _HFMapStyle(jpeg_dir, batch_size, seed, crop_size)
    return [
        LoaderSpec("map-style, DataLoader(shuffle=True)", "HF datasets", "raw", map_style, raw_bpp, map_style.order),
        LoaderSpec("batched access ds[shuffled indices]", "HF datasets", "raw", batched, raw_bpp, batched.order),
        LoaderSpec(f"to_iterable_dataset().shuffle({SHUFFLE_BUFFER})", "HF datasets", "raw", iterable, raw_bpp,
                   iterable.order),
        LoaderSpec("map-style, DataLoader(shuffle=True)", "HF datasets", "JPEG", jpeg, jpeg_bpp),
    ]


def _hf_jpeg_records(image_dir: Path) -> Iterator[dict[str, Any]]:
    for r in _jpeg_records(image_dir):
        yield {"jpg": {"bytes": r["jpg"], "path": None}, "y": r["y"], "idx": r["idx"]}


def _load_hf(path: Path, crop_size: int | None = None):
    import datasets

    ds = datasets.load_from_disk(str(path))
    if crop_size is None:
        return ds.with_format("torch")
    return ds.with_transform(DecodeTransformBatch(crop_size))


class _HFMapStyle:
    """``DataLoader(hf_dataset, batch_size, shuffle=True)``: the way its documentation feeds PyTorch."""

    def __init__(self, path: Path, batch_size: int, seed: int, crop_size: int | None = None):
        self.path, self.batch_size, self.seed, self.crop_size = path, batch_size, seed, crop_size

    def __call__(self, num_workers: int) -> DataLoader:
        g = torch.Generator().manual_seed(self.seed)
        return DataLoader(_load_hf(self.path, self.crop_size), batch_size=self.batch_size, shuffle=True,
                          generator=g, num_workers=num_workers)

    def order(self) -> DataLoader:
        ds = _load_hf(self.path).select_columns(["idx"])
        return DataLoader(ds, batch_size=self.batch_size, shuffle=True,
                          generator=torch.Generator().manual_seed(self.seed))


class _HFBatches(IterableDataset):
    """Batches ``ds[indices]`` of a seeded permutation (one Arrow ``take`` per batch), split by worker."""

    def __init__(self, path: Path, batch_size: int, seed: int, columns: list[str] | None = None):
        self.path, self.batch_size, self.seed, self.columns = path, batch_size, seed, columns

    def __iter__(self):
        ds = _load_hf(self.path)
        if self.columns:
            ds = ds.select_columns(self.columns)
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        perm = np.random.default_rng(self.seed).permutation(len(ds))
        starts = range(0, len(perm), self.batch_size)
        for b in list(starts)[worker::workers]:
            yield ds[perm[b:b + self.batch_size]]


class _HFFactory:
    def __init__(self, cls, path: Path, batch_size: int, seed: int):
        self.cls, self.path, self.batch_size, self.seed = cls, path, batch_size, seed

    def __call__(self, num_workers: int) -> DataLoader:
        return DataLoader(self.cls(self.path, self.batch_size, self.seed), batch_size=None, num_workers=num_workers)

    def order(self):
        return self.cls(self.path, self.batch_size, self.seed, ["idx"])


class _HFIterable:
    """``to_iterable_dataset(num_shards=...)``, shuffled with a buffer, then ``with_format("torch")`` (as the
    datasets documentation orders it for an IterableDataset: the buffer holds Arrow rows, and only yielded rows
    are formatted; formatting first made every run format the whole buffer before its first sample)."""

    def __init__(self, path: Path, batch_size: int, seed: int):
        self.path, self.batch_size, self.seed = path, batch_size, seed

    def dataset(self, columns: list[str] | None = None):
        import datasets

        ds = datasets.load_from_disk(str(self.path))
        if columns:
            ds = ds.select_columns(columns)
        return (ds.to_iterable_dataset(num_shards=8).shuffle(seed=self.seed, buffer_size=SHUFFLE_BUFFER)
                .with_format("torch"))

    def __call__(self, num_workers: int) -> DataLoader:
        return DataLoader(self.dataset(), batch_size=self.batch_size, num_workers=num_workers)

    def order(self) -> DataLoader:
        return DataLoader(self.dataset(["idx"]), batch_size=self.batch_size)


# --- stock webdataset ---------------------------------------------------------------------------------------

def webdataset_specs(image_dir: Path, peers_dir: Path, *, batch_size: int, crop_size: int, seed: int = 0,
                     timings: dict[str, float]) -> list[LoaderSpec]:
    """Stock webdataset as the seed writes it, on the per-sample ``wds`` tars (raw arrays as ``.npy``).
    (Its JPEG twin is the seed's pipeline itself, measured with the course's loaders.)"""
    make = _StockWebDataset(image_dir, batch_size, seed)
    return [LoaderSpec(f"WebDataset .shuffle({SHUFFLE_BUFFER}).decode().batched()", "webdataset", "raw", make,
                       index_shards(image_dir).bytes_per_sample, make.order)]


class _StockWebDataset:
    def __init__(self, image_dir: Path, batch_size: int, seed: int):
        self.image_dir, self.batch_size, self.seed = image_dir, batch_size, seed

    def pipeline(self, decode: bool = True):
        import webdataset as wds

        urls = [str(p) for p in sorted((Path(self.image_dir) / "wds").glob("shard_*.tar"))]
        ds = wds.WebDataset(urls, shardshuffle=len(urls), seed=self.seed, empty_check=False).shuffle(SHUFFLE_BUFFER)
        if decode:
            return ds.decode().to_tuple("x.npy", "cls", "idx").map_tuple(_keep, _keep, int).batched(self.batch_size)
        return ds.to_tuple("idx").map(_idx_dict)

    def __call__(self, num_workers: int):
        return DataLoader(self.pipeline(), batch_size=None, num_workers=num_workers)

    def order(self):
        return self.pipeline(decode=False)


def _keep(value: Any) -> Any:
    return value


def _idx_dict(row: tuple) -> dict[str, int]:
    return {"idx": int(row[0])}


PEERS = {"litdata": litdata_specs, "HF datasets": hf_specs, "torchdata": torchdata_specs,
         "webdataset": webdataset_specs, "lance": lance_specs}
