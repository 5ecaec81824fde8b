"""Chapter 06's exercise solutions (open this file when you are stuck; `make course` and CI run them)."""
from __future__ import annotations

import numpy as np

from ..course.exercises import solution


@solution("06_rank_worker_split")
def rank_worker_split(counts, *, seed, epoch, batch_size, world_size, num_workers):
    """Chapter 06: the ids each (rank, worker) reads, in order, from the epoch plan MmapShardDataset follows."""

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
