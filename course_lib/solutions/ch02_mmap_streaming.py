"""Chapter 02's exercise solutions (open this file when you are stuck; `make course` and CI run them)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from ..course.exercises import solution
from ..teaching.naive import SeedStreamingDataset


class WorkerSplitSeedDataset(SeedStreamingDataset):
    """Chapter 02's exercise: the seed's dataset with bug 3 fixed, each DataLoader worker reading only the
    shards ``shards[worker::num_workers]`` (``get_worker_info()`` is None in the main process)."""

    def __iter__(self):
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info else (0, 1)
        for shard in self.shards[worker::num_workers]:
            data = np.load(shard, mmap_mode="r")
            for idx in np.random.permutation(len(data)):
                yield data[idx]


@solution("02_mmap_streaming")
def worker_split_seed_dataset():
    """Chapter 02: the class above (a class at module level, so DataLoader workers can pickle it)."""
    return WorkerSplitSeedDataset


class ShardLoader(IterableDataset):
    """Chapter 02's streaming loader, built in three steps; chapters 04 and 06 extend it.

    1. ``my_blocks``: the epoch's blocks split by DataLoader worker (``get_worker_info``), so each is read once.
    2. ``block_order``: a block order that is a function of (seed, epoch) only; ``set_epoch`` picks the epoch.
    3. ``__iter__``: each batch gathered from the memory-mapped records with one copy into tensors.
    The library's version of each step: ``course_lib/loaders/mmap_shards.py`` (its module docstring maps them).
    """

    def __init__(self, data_dir, *, batch_size: int = 256, block_size: int = 256, seed: int = 0):
        self.paths = sorted(Path(data_dir, "npy").glob("shard_*.npy"))
        if not self.paths:
            raise FileNotFoundError(f"no npy/shard_*.npy under {data_dir}")
        lengths = [len(np.load(p, mmap_mode="r")) for p in self.paths]   # reads the headers only
        self.blocks = [(shard, start, min(start + block_size, n))          # (shard, first record, stop)
                       for shard, n in enumerate(lengths) for start in range(0, n, block_size)]
        self.batch_size, self.seed, self.epoch = batch_size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order ``__iter__`` follows (call it before each epoch)."""
        self.epoch = epoch

    def block_order(self) -> np.ndarray:
        """Step 2: every block's number, permuted by a generator seeded with (seed, epoch)."""
        return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.blocks))

    def my_blocks(self) -> np.ndarray:
        """Step 1: this DataLoader worker's share of the epoch's blocks (all of them in the main process)."""
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info else (0, 1)
        return self.block_order()[worker::num_workers]

    def __iter__(self):
        """Step 3: batches of ``batch_size`` records from each of my blocks, one copy each."""
        maps = [np.load(p, mmap_mode="r") for p in self.paths]
        for block in self.my_blocks():
            shard, start, stop = self.blocks[block]
            for a in range(start, stop, self.batch_size):
                records = maps[shard][a:min(a + self.batch_size, stop)]   # a view: nothing read yet
                yield {"x": torch.from_numpy(np.ascontiguousarray(records["x"])),   # the one copy
                       "y": torch.from_numpy(records["y"].astype(np.int64)),
                       "idx": torch.from_numpy(records["idx"].astype(np.int64))}
