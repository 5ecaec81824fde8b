"""Resume on another topology (README: Elastic determinism): a state saved by a job with one world_size /
num_workers loads on
every rank of a job with another; together the two jobs deliver the epoch exactly once, in the epoch's order."""
from __future__ import annotations

import json
from itertools import zip_longest

import pytest
import torch
from torch.utils.data import DataLoader

from course_lib.loaders.mmap_shards import MmapShardDataset

SETTINGS = dict(block_size=8, window_blocks=2, seed=5, streams=4)


def ids_of(batch) -> list[int]:
    return torch.as_tensor(batch["idx"]).reshape(-1).tolist()


def rank_batches(data_dir, world: int, *, shuffle="block", batch_size=4, drop_last=False, state=None,
                 num_workers=0) -> list[list[list[int]]]:
    """Every rank's batches (as id lists) for the rest of the epoch, each rank loading ``state`` first."""
    out = []
    for rank in range(world):
        ds = MmapShardDataset(data_dir, shuffle=shuffle, batch_size=batch_size, rank=rank, world_size=world,
                              drop_last=drop_last, **SETTINGS)
        ds.set_epoch(2)
        if state is not None:
            ds.load_state_dict(json.loads(json.dumps(state)))           # through a JSON checkpoint
        out.append([ids_of(b) for b in DataLoader(ds, batch_size=None, num_workers=num_workers)])
    return out


def in_rank_order(per_rank: list[list[list[int]]]) -> list[int]:
    return [i for round_ in zip_longest(*per_rank) for batch in round_ if batch is not None for i in batch]


def saved(data_dir, world: int, steps: list[int], *, shuffle="block", batch_size=4, num_workers=0,
          drop_last=False) -> list[dict]:
    """Each rank's ``state_dict(samples_seen=...)`` after ``steps[rank]`` batches (what a training loop saves)."""
    states = []
    for rank, k in enumerate(steps):
        ds = MmapShardDataset(data_dir, shuffle=shuffle, batch_size=batch_size, rank=rank, world_size=world,
                              drop_last=drop_last, **SETTINGS)
        ds.set_epoch(2)
        seen = sum(len(ids_of(b)) for _, b in zip(range(k), DataLoader(ds, batch_size=None, num_workers=num_workers)))
        states.append(ds.state_dict(samples_seen=seen))
    return states


@pytest.mark.parametrize("shuffle", ["block", "none"])
@pytest.mark.parametrize("before,after", [(2, 1), (2, 3), (4, 2)])
def test_lockstep_state_from_rank_0_resumes_on_another_world_size(small_data, shuffle, before, after):
    full = in_rank_order(rank_batches(small_data, before, shuffle=shuffle))
    assert sorted(full) == list(range(103))
    assert in_rank_order(rank_batches(small_data, after, shuffle=shuffle)) == full    # elastic determinism
    steps = 3
    first = in_rank_order([b[:steps] for b in rank_batches(small_data, before, shuffle=shuffle)])
    state = saved(small_data, before, [steps], shuffle=shuffle)[0]                   # rank 0's, in lockstep
    rest = in_rank_order(rank_batches(small_data, after, shuffle=shuffle, state=state))
    assert first + rest == full                        # exactly once, and the uninterrupted run's order


@pytest.mark.parametrize("before,after", [(2, 1), (2, 3), (4, 2)])
def test_every_ranks_state_resumes_ranks_not_in_lockstep(small_data, before, after):
    steps = [3, 1, 4, 2][:before]
    per_rank = rank_batches(small_data, before)
    delivered = [i for rank, k in enumerate(steps) for batch in per_rank[rank][:k] for i in batch]
    rest = [i for batches in rank_batches(small_data, after, state=saved(small_data, before, steps))
            for batch in batches for i in batch]
    assert sorted(delivered + rest) == list(range(103))


def test_drop_last_after_a_resume_drops_fewer_than_world_size_batches(small_data):
    state = saved(small_data, 2, [3, 5])
    per_rank = rank_batches(small_data, 3, drop_last=True, state=state)
    delivered = [i for rank, k in enumerate([3, 5]) for b in rank_batches(small_data, 2)[rank][:k] for i in b]
    rest = [i for batches in per_rank for b in batches for i in b]
    assert len(set(delivered + rest)) == len(delivered + rest)
    assert 0 <= 103 - len(delivered) - len(rest) < 3 * 4
    assert len({sum(len(b) for b in batches) for batches in per_rank}) == 1          # every rank the same count


def test_two_workers_to_none_and_another_world_size(small_data):
    full = in_rank_order(rank_batches(small_data, 2, num_workers=2))
    assert full == in_rank_order(rank_batches(small_data, 2))                       # num_workers changes nothing
    state = saved(small_data, 2, [2], num_workers=2)[0]
    first = in_rank_order([b[:2] for b in rank_batches(small_data, 2)])
    assert first + in_rank_order(rank_batches(small_data, 2, state=state)) == full   # 2 -> 0 workers, same ranks
    assert first + in_rank_order(rank_batches(small_data, 3, state=state, num_workers=2)) == full


def test_a_resumed_job_resumes_again(small_data):
    full = in_rank_order(rank_batches(small_data, 2))
    first = in_rank_order([b[:2] for b in rank_batches(small_data, 2)])
    state = saved(small_data, 2, [2])[0]
    second_job = rank_batches(small_data, 3, state=state)
    second = in_rank_order([b[:1] for b in second_job])
    ds = MmapShardDataset(small_data, batch_size=4, rank=0, world_size=3, **SETTINGS)
    ds.set_epoch(2)
    ds.load_state_dict(state)
    again = ds.state_dict(samples_seen=len(second_job[0][0]))                       # rank 0 of 3, one batch later
    assert first + second + in_rank_order(rank_batches(small_data, 1, state=again)) == full


@pytest.mark.parametrize("key,value", [("seed", 6), ("shuffle", "none"), ("batch_size", 8), ("streams", 2),
                                       ("total", 99)])
def test_other_data_or_settings_are_refused_naming_the_key(small_data, key, value):
    state = saved(small_data, 2, [1])[0]
    ds = MmapShardDataset(small_data, batch_size=4, rank=0, world_size=3, **SETTINGS)
    with pytest.raises(ValueError, match=key):
        ds.load_state_dict({**state, key: value})


def test_torchrun_two_ranks_checkpoint_then_resume_on_one_and_three(small_data, tmp_path):
    from course_lib.distributed.elastic_demo import elastic_resume
    demo = elastic_resume(small_data, tmp_path, before=2, after=(1, 3), steps=3, batch_size=8)
    assert sorted(demo.uninterrupted) == list(range(103))
    assert len(demo.before_checkpoint) == 2 * 3 * 8                   # 3 steps of 8 on each of 2 ranks
    for world in (1, 3):
        assert demo.exactly_once(world) and demo.same_order(world), (world, demo.rows())
    assert [r["same order"] for r in demo.rows()] == [True, True]
