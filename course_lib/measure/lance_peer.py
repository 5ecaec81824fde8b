"""Lance (``pylance``) as a peer: the same raw samples written as a Lance dataset, read three ways.

Lance is a columnar format with random access by row: a ``fixed_shape_tensor`` column holds the images, and
``take(rows)`` reads any rows. Its torch loader (``lance.torch.data.LanceDataset``) reads in a full scan, or in
an order of batches shuffled by ``ShardedBatchSampler(randomize=True)``. Measured here:

- ``full scan``: file order, no shuffle (the ceiling of this format on this machine);
- ``batch-order shuffle``: batches of consecutive rows in a shuffled order. In the installed version that order is
  seeded from ``seed`` alone (``set_epoch`` does not reach it) and it reseeds Python's global ``random``: every
  epoch repeats the same order (``tests/test_claims.py`` checks both). The fix a learner writes: a new sampler
  each epoch, seeded by :func:`epoch_seed` (keyed on (seed, epoch));
- ``take() of random rows``: a seeded permutation, one ``take`` of ``batch_size`` sorted rows per batch.

DataLoader workers are not measured: Lance's reader threads do not survive ``fork`` (the worker dies: tested),
and ``lance.torch.data.get_safe_loader`` spawns workers instead (seconds of start-up each epoch here).
"""
from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import IterableDataset

from ..loaders.keyed_random import keyed_rng
from ..loaders.shard_index import index_shards
from .regime_runs import LoaderSpec

COLUMNS = ["x", "y", "idx"]


def epoch_seed(seed: int, epoch: int) -> int:
    """A sampler seed for (seed, epoch): distinct per epoch, no collision of ``seed + epoch`` kind."""
    return int(keyed_rng(seed, epoch).integers(2**31))


def write_lance(image_dir: Path, out: Path) -> Path:
    """The raw records of ``image_dir``'s npy shards as a Lance dataset at ``out`` (kept while the data matches)."""
    os.environ.setdefault("LANCE_LOG", "error")   # its Rust log warns at INFO-like level that it creates a dataset
    import lance
    import pyarrow as pa

    index = index_shards(image_dir)
    source = {"shards": [p.name for p in index.paths], "samples": len(index)}
    stamp = out.with_suffix(".source.json")
    if out.exists() and stamp.exists() and json.loads(stamp.read_text()) == source:
        return out

    def batches() -> Iterator[pa.RecordBatch]:
        for path in index.paths:
            records = np.load(path, mmap_mode="r", allow_pickle=False)
            yield pa.record_batch([pa.FixedShapeTensorArray.from_numpy_ndarray(np.ascontiguousarray(records["x"])),
                                   pa.array(records["y"].astype(np.int64)), pa.array(records["idx"].astype(np.int64))],
                                  names=COLUMNS)

    first = next(batches())
    lance.write_dataset(pa.RecordBatchReader.from_batches(first.schema, batches()), str(out), mode="overwrite")
    stamp.write_text(json.dumps(source))
    return out


def lance_specs(image_dir: Path, peers_dir: Path, *, batch_size: int, crop_size: int, seed: int = 0,
                timings: dict[str, float]) -> list[LoaderSpec]:
    """The three ways of reading Lance above, raw regime, in the main process only (see the module docstring)."""
    started = time.perf_counter()
    uri = write_lance(Path(image_dir), Path(peers_dir) / "lance-raw.lance")
    timings["lance raw conversion"] = time.perf_counter() - started
    index = index_shards(image_dir)
    shape, bpp = index.sample_shape, float(index.bytes_per_sample)
    return [LoaderSpec(name, "lance", "raw", reader, bpp, order=reader.order, worker_counts=(0,))
            for name, reader in [("LanceDataset, full scan", _Scan(uri, batch_size, shape, seed, shuffled=False)),
                                 ("LanceDataset + ShardedBatchSampler (batch-order shuffle)",
                                  _Scan(uri, batch_size, shape, seed, shuffled=True)),
                                 ("take() of random rows", _Take(uri, batch_size, shape, seed))]]


class _Scan:
    """``LanceDataset`` batches, in file order or in a shuffled batch order, as the documentation builds it."""

    def __init__(self, uri: Path, batch_size: int, shape: tuple[int, ...], seed: int, shuffled: bool):
        self.uri, self.batch_size, self.shape, self.seed, self.shuffled = uri, batch_size, shape, seed, shuffled

    def batches(self, columns: list[str]) -> Iterator[dict[str, torch.Tensor]]:
        """One epoch of batches with ``columns`` (``x`` reshaped to the samples' shape)."""
        from lance.sampler import ShardedBatchSampler
        from lance.torch.data import LanceDataset

        sampler = ShardedBatchSampler(0, 1, randomize=True, seed=self.seed) if self.shuffled else None
        with warnings.catch_warnings():   # its arrays are read-only: torch warns once about that
            warnings.simplefilter("ignore", UserWarning)
            for batch in LanceDataset(str(self.uri), batch_size=self.batch_size, columns=columns, sampler=sampler,
                                      auto_detect_rank=False):
                yield _shaped(batch, self.shape)

    def __call__(self, num_workers: int) -> Iterator[dict[str, torch.Tensor]]:
        return self.batches(COLUMNS)

    def order(self) -> Iterator[dict[str, torch.Tensor]]:
        return self.batches(["idx", "y"])


class _Take(IterableDataset):
    """A seeded permutation of rows; each batch one ``take`` of its rows, sorted (read in file order)."""

    def __init__(self, uri: Path, batch_size: int, shape: tuple[int, ...], seed: int, columns: list[str] = COLUMNS):
        super().__init__()
        self.uri, self.batch_size, self.shape, self.seed, self.columns = uri, batch_size, shape, seed, columns

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        import lance

        ds = lance.dataset(str(self.uri))
        perm = np.random.default_rng(self.seed).permutation(ds.count_rows())
        for a in range(0, len(perm), self.batch_size):
            table = ds.take(np.sort(perm[a:a + self.batch_size]), columns=self.columns)
            batch = {name: _column(table.column(name)) for name in self.columns}
            yield _shaped(batch, self.shape)

    def __call__(self, num_workers: int) -> "_Take":
        return self

    def order(self) -> "_Take":
        return _Take(self.uri, self.batch_size, self.shape, self.seed, ["idx", "y"])


def _column(column) -> torch.Tensor:
    """An Arrow column as a tensor (a tensor column as (rows, *shape))."""
    import pyarrow as pa

    array = column.combine_chunks()
    if isinstance(array.type, pa.FixedShapeTensorType):
        return torch.from_numpy(array.to_numpy_ndarray())
    return torch.from_numpy(array.to_numpy(zero_copy_only=False))


def _shaped(batch: Any, shape: tuple[int, ...]) -> dict[str, torch.Tensor]:
    """``x`` as (batch, *shape) (Lance's loader returns it flat), other columns as they are."""
    if "x" in batch:
        batch = {**batch, "x": batch["x"].reshape(-1, *shape)}
    return batch


def lance_epoch_orders(image_dir: str | Path, peers_dir: str | Path, *, batch_size: int = 64,
                       seed: int = 0) -> dict[str, bool]:
    """Lance's batch-order shuffle over two epochs, in a spawned process (Lance's threads must not meet ``fork``).

    ``shuffled``: epoch 0 is not in storage order; ``repeats_with_set_epoch``: epochs 0 and 1 give the same
    order although ``set_epoch`` was called;
    ``reseeds_python_random``: it reseeded Python's global ``random``; ``differs_with_epoch_seed``: a sampler per
    epoch seeded by :func:`epoch_seed` gives each epoch its own order (the fix), each an order of every sample.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_epoch_orders, str(image_dir), str(peers_dir), batch_size, seed).result(timeout=300)


def _epoch_orders(image_dir: str, peers_dir: str, batch_size: int, seed: int) -> dict[str, bool]:
    import random

    from lance.sampler import ShardedBatchSampler

    uri = write_lance(Path(image_dir), Path(peers_dir) / "lance-raw.lance")
    scan = _Scan(uri, batch_size, index_shards(image_dir).sample_shape, seed, shuffled=True)

    def order(sampler) -> list[int]:
        from lance.torch.data import LanceDataset

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return torch.cat([b["idx"] for b in LanceDataset(str(scan.uri), batch_size=batch_size, columns=["idx", "y"],
                                                             sampler=sampler, auto_detect_rank=False)]).tolist()

    samplers = [ShardedBatchSampler(0, 1, randomize=True, seed=seed) for _ in range(2)]
    samplers[1].set_epoch(1)
    random.seed(12345)
    expected = random.random()
    random.seed(12345)
    plain = [order(s) for s in samplers]
    reseeded = random.random() != expected
    fixed = [order(ShardedBatchSampler(0, 1, randomize=True, seed=epoch_seed(seed, e))) for e in (0, 1)]
    return {"shuffled": plain[0] != sorted(plain[0]), "repeats_with_set_epoch": plain[0] == plain[1],
            "reseeds_python_random": reseeded,
            "differs_with_epoch_seed": fixed[0] != fixed[1] and sorted(fixed[0]) == sorted(fixed[1])}
