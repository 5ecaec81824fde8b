"""Property tests of the pure resume arithmetic with the epoch plan: a DataLoader's workers, simulated on integers,
stopped anywhere (twice), resumed from the states a StatefulDataLoader would save, give exactly the epoch."""
from __future__ import annotations

from itertools import zip_longest

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.loaders.epoch_plan import SHUFFLE_MODES, EpochPlan
from course_lib.loaders.resume_position import ResumePosition, skip_ids


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
