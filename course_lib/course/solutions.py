"""Solutions to the chapters' exercises, one function each, registered by exercise name (see ``exercises``).

Open this file when you are stuck; ``make course`` and CI run every solution through its chapter's check.
"""
from __future__ import annotations

import numpy as np
from torch.utils.data import get_worker_info

from ..teaching.naive import SeedStreamingDataset
from .exercises import solution  # noqa: F401  (chapters add their solutions below)


@solution("07_your_own_data")
def class_counts(data_dir):
    """Samples per class name in a converted dataset: labels from its npy shards, names from its manifest."""
    from pathlib import Path

    import numpy as np

    from data_gen import read_manifest

    from ..loaders.shard_index import index_shards

    manifest = read_manifest(Path(data_dir))
    names = manifest["class_names"] or [str(i) for i in range(manifest["classes"])]
    counts = np.zeros(len(names), dtype=np.int64)
    for path in index_shards(data_dir).paths:
        counts += np.bincount(np.load(path, mmap_mode="r")["y"], minlength=len(names))
    return {name: int(n) for name, n in zip(names, counts)}


@solution("05_throughput_comparison")
def pick_num_workers(rows, loader="decode at crop size + batch transform", within=0.9):
    """Chapter 05: the smallest worker count whose measured rate is within 10% of the best one."""
    mine = [r for r in rows if r["loader"] == loader and r["regime"] == "JPEG"]
    top = max(r["samples_per_s"] for r in mine)
    return min(r["num_workers"] for r in mine if r["samples_per_s"] >= within * top)



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


@solution("06_rank_worker_split")
def rank_worker_split(counts, *, seed, epoch, batch_size, world_size, num_workers):
    """Chapter 06: the ids each (rank, worker) reads, in order, from the epoch plan MmapShardDataset follows."""
    import numpy as np

    from ..loaders.epoch_plan import EpochPlan

    readers = {}
    for rank in range(world_size):
        plan = EpochPlan(counts, seed=seed, epoch=epoch, rank=rank, world_size=world_size)
        for worker in range(num_workers):
            units = list(plan.worker_units(worker, num_workers, batch_size))
            readers[(rank, worker)] = units if units else [np.empty(0, dtype=np.int64)]
    return readers


@solution("06_equal_batches")
def equal_batches(samples_per_rank, *, batch_size):
    """Chapter 06: the most full batches every rank can run without any rank repeating a sample."""
    return min(samples_per_rank) // batch_size
