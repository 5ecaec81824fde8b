"""Chapter 06's exercise solutions (open this file when you are stuck; `make course` and CI run them)."""
from __future__ import annotations

import numpy as np
import torch.distributed as dist
from torch.utils.data import get_worker_info

from ..course.exercises import solution
from .ch02_mmap_streaming import ShardLoader


class RankShardLoader(ShardLoader):
    """Chapter 06's exercise: chapter 02's loader split by rank first, then by DataLoader worker.

    ``rank`` and ``world_size`` default to torch.distributed's (0 and 1 when no process group is running).
    Every rank computes the same ``block_order()`` (it depends on seed and epoch only) and keeps every
    ``world_size``-th block from position ``rank``; its workers then deal that share among themselves.
    """

    def __init__(self, data_dir, *, rank: int | None = None, world_size: int | None = None, **kwargs):
        super().__init__(data_dir, **kwargs)
        if rank is None or world_size is None:
            running = dist.is_available() and dist.is_initialized()
            rank, world_size = (dist.get_rank(), dist.get_world_size()) if running else (0, 1)
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
        self.rank, self.world_size = rank, world_size

    def my_blocks(self) -> np.ndarray:
        """This rank's share of the epoch's blocks, then this DataLoader worker's share of that."""
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info else (0, 1)
        return self.block_order()[self.rank::self.world_size][worker::num_workers]


@solution("06_rank_split")
def rank_shard_loader():
    """Chapter 06: the class above (at module level, so DataLoader workers can pickle it)."""
    return RankShardLoader


def rank_worker_split(counts, *, seed, epoch, batch_size, world_size, num_workers):
    """The ids each (rank, worker) of MmapShardDataset reads, in order, from its epoch plan (the library's split)."""

    import inspect

    from ..loaders.epoch_plan import EpochPlan
    from ..loaders.mmap_shards import MmapShardDataset, default_run_length

    readers = {}
    window_blocks = inspect.signature(MmapShardDataset).parameters["window_blocks"].default  # as ddp_stream builds it
    for rank in range(world_size):
        plan = EpochPlan(counts, seed=seed, epoch=epoch, rank=rank, world_size=world_size,
                         window_blocks=window_blocks, run_length=default_run_length(batch_size, window_blocks),
                         batch_size=batch_size)
        for worker in range(num_workers):
            units = list(plan.worker_units(worker, num_workers, batch_size))
            readers[(rank, worker)] = units if units else [np.empty(0, dtype=np.int64)]
    return readers


@solution("06_equal_batches")
def equal_batches(samples_per_rank, *, batch_size):
    """Chapter 06: the most full batches every rank can run without any rank repeating a sample."""
    return min(samples_per_rank) // batch_size
