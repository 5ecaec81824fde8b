"""Chapter 06's learner loader (RankShardLoader) and the in-process rank check that judges it."""
from __future__ import annotations

import numpy as np
import pytest
from torch.utils.data import DataLoader

from course_lib.distributed.rank_checks import gather_ranks_in_process
from course_lib.solutions.ch02_mmap_streaming import ShardLoader
from course_lib.solutions.ch06_beyond_one_machine import RankShardLoader


def _total(data_dir) -> int:
    return sum(stop - start for _, start, stop in ShardLoader(data_dir).blocks)


@pytest.mark.parametrize("world_size, num_workers", [(1, 0), (2, 2), (3, 1)])
def test_rank_then_worker_split_reads_every_sample_once(small_data, world_size, num_workers):
    def make(rank, world):
        return RankShardLoader(small_data, batch_size=8, block_size=8, seed=1, rank=rank, world_size=world)

    report = gather_ranks_in_process(make, world_size=world_size, num_workers=num_workers,
                                     total=_total(small_data), epoch=1)
    assert report["exactly_once"] and report["disjoint"], report["coverage"]
    assert max(report["batches"]) - min(report["batches"]) <= 1   # one block per batch here: blocks dealt evenly


def test_the_check_catches_a_loader_that_ignores_the_rank(small_data):
    """Chapter 02's loader has no rank split: on 2 ranks every sample arrives twice, and the report says so."""
    report = gather_ranks_in_process(lambda rank, world: ShardLoader(small_data, batch_size=8, block_size=8),
                                     world_size=2, num_workers=2, total=_total(small_data))
    assert not report["exactly_once"] and not report["disjoint"]
    assert report["repeated"] == _total(small_data) and report["dropped"] == 0


def test_a_rank_stream_does_not_depend_on_the_number_of_workers(small_data):
    def ids(num_workers):
        ds = RankShardLoader(small_data, batch_size=8, block_size=8, seed=1, rank=1, world_size=2)
        loader = DataLoader(ds, batch_size=None, num_workers=num_workers)
        return np.sort(np.concatenate([b["idx"].numpy() for b in loader]))
    assert np.array_equal(ids(0), ids(2))


def test_rank_defaults_and_bad_rank(small_data):
    ds = RankShardLoader(small_data)
    assert (ds.rank, ds.world_size) == (0, 1)          # no process group running
    with pytest.raises(ValueError, match="rank must be in"):
        RankShardLoader(small_data, rank=2, world_size=2)
