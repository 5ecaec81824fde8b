"""Chapter 02's exercise solutions (open this file when you are stuck; `make course` and CI run them)."""
from __future__ import annotations

import numpy as np
from torch.utils.data import get_worker_info

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
