"""Property tests of the pure resume arithmetic with the epoch plan: a DataLoader's workers, simulated on integers,
stopped anywhere (twice), resumed from the states a StatefulDataLoader would save, give exactly the epoch."""
from __future__ import annotations

from itertools import zip_longest

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.loaders.epoch_plan import SHUFFLE_MODES, EpochPlan
from course_lib.loaders.resume_position import ResumePosition, delivered_positions, skip_ids


def deliver(plan: EpochPlan, workers: int, unit: int, positions: list[ResumePosition], stop: int | None,
            first_worker: int = 0):
    """Units dealt round-robin from each worker starting at ``first_worker`` (as DataLoader does, and as
    StatefulDataLoader resumes), at most ``stop`` of them. Returns the ids delivered, each worker's state as of
    its last delivered unit (what StatefulDataLoader keeps) and the worker whose turn is next."""
    streams = []
    for w, pos in enumerate(positions):
        resume, skip = pos.begin()
        streams.append(list(skip_ids(plan.worker_units(w, workers, unit, resume), skip)))
    turn = list(range(first_worker, workers)) + list(range(first_worker))
    states = [pos.state(len(plan), w, workers) for w, pos in enumerate(positions)]
    out: list[int] = []
    delivered, next_worker = 0, first_worker
    for round_ in zip_longest(*[streams[w] for w in turn]):
        for w, units in zip(turn, round_):
            if units is None or (stop is not None and delivered == stop):
                continue
            positions[w].advance(len(units))
            states[w] = positions[w].state(len(plan), w, workers)
            out += units.tolist()
            delivered, next_worker = delivered + 1, (w + 1) % workers
    return out, states, next_worker


def resumed(states: list[dict], length: int, workers: int) -> list[ResumePosition]:
    positions = [ResumePosition() for _ in range(workers)]
    for w, (pos, state) in enumerate(zip(positions, states)):
        pos.load(state, length, w, workers)
    return positions


@settings(max_examples=150, deadline=None)
@given(sizes=st.lists(st.integers(0, 30), min_size=1, max_size=5).filter(lambda s: sum(s) > 0),
       mode=st.sampled_from(SHUFFLE_MODES), workers=st.integers(1, 3), unit=st.integers(1, 6),
       block=st.integers(1, 8), data=st.data())
def test_stop_anywhere_twice_and_resume_gives_the_epoch_exactly(sizes, mode, workers, unit, block, data):
    plan = EpochPlan(sizes, block_size=block, shuffle=mode, seed=11, epoch=2, window_blocks=2)
    full, _, _ = deliver(plan, workers, unit, [ResumePosition() for _ in range(workers)], None)
    assert sorted(full) == list(range(sum(sizes)))
    units = -(-len(plan) // unit) + workers
    first_stop, second_stop = data.draw(st.integers(0, units)), data.draw(st.integers(0, units))
    first, states, turn = deliver(plan, workers, unit, [ResumePosition() for _ in range(workers)], first_stop)
    second, states, turn = deliver(plan, workers, unit, resumed(states, len(plan), workers), second_stop, turn)
    rest, _, _ = deliver(plan, workers, unit, resumed(states, len(plan), workers), None, turn)
    assert first + second + rest == full


@settings(max_examples=100, deadline=None)
@given(length=st.integers(0, 500), data=st.data())
def test_main_process_state_is_samples_seen(length, data):
    seen = data.draw(st.integers(0, length))
    pos = ResumePosition()
    pos.begin()
    pos.advance(seen)
    state = pos.state(length)
    assert state == {"samples_seen": seen}
    again = ResumePosition()
    again.load(state, length)
    assert again.begin() == (seen, 0)
    assert again.state(length) == state          # nothing yielded yet after a load: the same position


def test_restart_and_bad_states():
    pos = ResumePosition()
    pos.load({"samples_seen": 5}, 10)
    pos.restart()
    assert pos.begin() == (0, 0)
    with pytest.raises(ValueError, match="outside"):
        pos.load({"samples_seen": 11}, 10)
    with pytest.raises(ValueError, match="outside"):
        pos.state(10, samples_seen=-1)
    with pytest.raises(ValueError, match="worker 1 of 2"):
        pos.load({"samples_seen": 0, "worker": 1, "num_workers": 2, "worker_samples": 3}, 10, 0, 2)
    assert [p.tolist() for p in skip_ids(iter([np.arange(3), np.arange(3, 6)]), 4)] == [[4, 5]]


# -- resume on another topology (README: Elastic determinism) -----------------------------------------------
def rank_batches(plan: EpochPlan, piece: int) -> list[list[int]]:
    return [plan.ids(k, k + piece).tolist() for k in range(0, len(plan), piece)]


def in_rank_order(per_rank: list[list[list[int]]]) -> list[int]:
    """Batch 0 of rank 0, of rank 1, ..., then batch 1 of each: the global sequence of a job."""
    return [i for round_ in zip_longest(*per_rank) for batch in round_ if batch is not None for i in batch]


def job(sizes, world: int, piece: int, mode: str, done=(), drop_last=False) -> list[EpochPlan]:
    return [EpochPlan(sizes, block_size=4, shuffle=mode, seed=7, epoch=1, window_blocks=2, batch_size=piece,
                      streams=4, rank=r, world_size=world, drop_last=drop_last, done=done) for r in range(world)]


def states_after(plans: list[EpochPlan], taken: list[int], piece: int, done=()) -> list[dict]:
    """Each rank's state after it took ``taken[rank]`` batches."""
    return [{"rank": r, "world_size": len(plans), "epoch": 1, "drop_last": False, "done": list(done),
             "samples_seen": min(taken[r] * piece, len(p))} for r, p in enumerate(plans)]


@settings(max_examples=150, deadline=None)
@given(sizes=st.lists(st.integers(0, 40), min_size=1, max_size=5).filter(lambda s: sum(s) > 0),
       mode=st.sampled_from(SHUFFLE_MODES), before=st.integers(1, 4), after=st.integers(1, 4),
       piece=st.integers(1, 5), data=st.data())
def test_lockstep_state_resumes_on_any_world_size_in_the_same_global_order(sizes, mode, before, after, piece, data):
    first = job(sizes, before, piece, mode)
    full = in_rank_order([rank_batches(p, piece) for p in first])
    k = data.draw(st.integers(0, max(len(p) for p in first) // piece + 1), label="batches each rank took")
    taken = in_rank_order([rank_batches(p, piece)[:k] for p in first])
    rank0 = states_after(first, [k] * before, piece)[0]                  # saved on rank 0 only
    done = delivered_positions([rank0], sum(sizes), piece)
    second = job(sizes, after, piece, mode, done)
    rest = in_rank_order([rank_batches(p, piece) for p in second])
    assert taken + rest == full                                           # exactly once, in the uninterrupted order
    third_k = data.draw(st.integers(0, 3), label="batches taken in the second job")
    states = states_after(second, [third_k] * after, piece, done)         # and on again (a third topology)
    third = job(sizes, data.draw(st.integers(1, 4)), piece, mode, delivered_positions(states, sum(sizes), piece))
    again = in_rank_order([rank_batches(p, piece) for p in third])
    assert taken + in_rank_order([rank_batches(p, piece)[:third_k] for p in second]) + again == full


@settings(max_examples=150, deadline=None)
@given(sizes=st.lists(st.integers(0, 40), min_size=1, max_size=5).filter(lambda s: sum(s) > 0),
       mode=st.sampled_from(SHUFFLE_MODES), before=st.integers(1, 4), after=st.integers(1, 4),
       piece=st.integers(1, 5), drop_last=st.booleans(), data=st.data())
def test_every_ranks_state_resumes_ranks_not_in_lockstep_exactly_once(sizes, mode, before, after, piece, drop_last,
                                                                      data):
    first = job(sizes, before, piece, mode)
    taken = [data.draw(st.integers(0, len(p) // piece + 1)) for p in first]
    delivered = [i for p, k in zip(first, taken) for batch in rank_batches(p, piece)[:k] for i in batch]
    second = job(sizes, after, piece, mode, delivered_positions(states_after(first, taken, piece), sum(sizes), piece),
                 drop_last)
    rest = [i for p in second for i in p.ids(0, len(p)).tolist()]
    assert len(set(delivered + rest)) == len(delivered + rest)           # nothing twice
    missing = sum(sizes) - len(delivered) - len(rest)
    assert missing == 0 if not drop_last else 0 <= missing < after      # dropped: fewer than world_size
    if drop_last:
        assert len({len(p) for p in second}) == 1


def test_states_that_do_not_belong_together_are_refused():
    first = job([30], 2, 3, "block")
    states = states_after(first, [2, 2], 3)
    with pytest.raises(ValueError, match="one per rank"):
        delivered_positions([states[0], states[0]], 30, 3)
    with pytest.raises(ValueError, match="world_size"):
        delivered_positions([states[0], {**states[1], "world_size": 3}], 30, 3)
    with pytest.raises(ValueError, match="num_workers"):
        delivered_positions([{**states[0], "worker": 0, "num_workers": 2, "worker_samples": 1}], 30, 3)
