"""WebDataset shard-level resume across a change of world size: finished shards are not read again, the shards
in flight at the stop are replayed or skipped, and either way the cost is counted and said."""
from __future__ import annotations

import itertools
import warnings

import pytest

from course_lib.loaders.shard_index import ShardExpectation, manifest_shards
from course_lib.loaders.shard_resume import delivered_per_shard, merge_states, plan_resume
from course_lib.loaders.webdataset_pipeline import make_webdataset
from course_lib.measure.shuffle_metrics import arrival_order

ALL = list(range(103))          # conftest's SMALL data: shards of 20 samples (the last one 3)
SETTINGS = dict(seed=4, epoch=1, shuffle_buffer=10)


def first_run(data, world: int = 2, stop: int = 30):
    """Each of ``world`` ranks takes ``stop`` samples (lockstep) and saves its state: (ids seen, states)."""
    expected = manifest_shards(data)
    seen, states = [], []
    for rank in range(world):
        pipeline = make_webdataset(data, rank=rank, world_size=world, **SETTINGS)
        ids = arrival_order(itertools.islice(pipeline, stop)).tolist()
        seen += ids
        states.append(pipeline.state_dict(delivered_per_shard(ids, expected)))
    return seen, states


def resumed_run(data, states, world: int, in_flight: str):
    """Every rank of a ``world``-rank job resumes from ``states``: (ids, the plan)."""
    ids, plans = [], []
    for rank in range(world):
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            pipeline = make_webdataset(data, rank=rank, world_size=world, resume=states, in_flight=in_flight,
                                       **SETTINGS)
        plans.append(pipeline.resume_plan)
        assert any("in flight at the stop" in str(w.message) for w in said)      # said, never silent
        ids += arrival_order(pipeline).tolist()
    assert all(p == plans[0] for p in plans)
    return ids, plans[0]


@pytest.mark.parametrize("world", [1, 3])
def test_replay_in_flight_shards_after_2_ranks_become(small_data, world):
    seen, states = first_run(small_data)
    ids, plan = resumed_run(small_data, states, world, "replay")
    assert plan.in_flight and plan.samples_repeated > 0
    assert sorted(set(seen) | set(ids)) == ALL                        # nothing lost
    assert len(seen) + len(ids) - len(ALL) == plan.samples_repeated   # repeats: exactly the ones counted
    assert len(ids) == len(set(ids))                                  # the new ranks split the rest disjointly
    repeated = set(seen) & set(ids)
    assert set(delivered_per_shard(repeated, manifest_shards(small_data))) <= set(plan.in_flight)


@pytest.mark.parametrize("world", [1, 3])
def test_skip_in_flight_shards_after_2_ranks_become(small_data, world):
    seen, states = first_run(small_data)
    ids, plan = resumed_run(small_data, states, world, "skip")
    assert not set(seen) & set(ids) and len(ids) == len(set(ids))     # nothing repeated
    missing = set(ALL) - set(seen) - set(ids)
    assert len(missing) == plan.samples_skipped > 0                    # losses: exactly the ones counted
    assert set(delivered_per_shard(missing, manifest_shards(small_data))) <= set(plan.in_flight)


def test_finished_shards_are_not_read_again(small_data):
    seen, states = first_run(small_data, stop=45)
    ids, plan = resumed_run(small_data, states, 2, "skip")
    for name in plan.done:
        assert name not in delivered_per_shard(ids, manifest_shards(small_data))


def test_settings_that_differ_are_refused_naming_the_key(small_data):
    _, states = first_run(small_data)
    with pytest.raises(ValueError, match="'seed'"):
        make_webdataset(small_data, resume=states, **{**SETTINGS, "seed": 5})
    with pytest.raises(ValueError, match="'epoch'"):
        make_webdataset(small_data, resume=states, **{**SETTINGS, "epoch": 2})
    with pytest.raises(ValueError, match="disagree on 'seed'"):
        merge_states([states[0], {**states[1], "seed": 9}])
    with pytest.raises(ValueError, match="in_flight must be one of"):
        make_webdataset(small_data, resume=states, in_flight="maybe", **SETTINGS)


def test_plan_on_integers():
    expected = {"a.tar": ShardExpectation(10), "b.tar": ShardExpectation(10), "c.tar": ShardExpectation(5)}
    state = {"seed": 0, "epoch": 0, "shardshuffle": True, "shards": ["a.tar", "b.tar", "c.tar"],
             "delivered": {"a.tar": 10, "b.tar": 4}}
    kw = dict(seed=0, epoch=0, shardshuffle=True, shards=["a.tar", "b.tar", "c.tar"], expected=expected, warn=False)
    replay = plan_resume(state, **kw)
    assert (replay.done, replay.in_flight, replay.samples_repeated, replay.dropped) == (
        ("a.tar",), ("b.tar",), 4, frozenset({"a.tar"}))
    skip = plan_resume([state, {**state, "delivered": {"c.tar": 5}}], in_flight="skip", **kw)
    assert skip.samples_skipped == 6 and skip.dropped == {"a.tar", "b.tar", "c.tar"}
    with pytest.raises(ValueError, match="b.tar: 11 samples delivered"):
        plan_resume({**state, "delivered": {"b.tar": 11}}, **kw)
    assert delivered_per_shard([0, 9, 10, 24], expected) == {"a.tar": 2, "b.tar": 1, "c.tar": 1}


def test_the_next_epoch_reads_every_shard_again(small_data):
    _, states = first_run(small_data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipeline = make_webdataset(small_data, resume=states, in_flight="skip", **SETTINGS)
    assert len(arrival_order(pipeline)) < len(ALL)
    pipeline.set_epoch(SETTINGS["epoch"] + 1)
    assert sorted(arrival_order(pipeline).tolist()) == ALL


def test_block_path_resumes_from_2_ranks_on_3(small_data):
    from course_lib.loaders.webdataset_pipeline import make_block_webdataset

    expected = manifest_shards(small_data, "wdsb")
    kw = dict(batch_size=8, window_blocks=2, seed=4, epoch=1)
    seen, states = [], []
    for rank in range(2):
        pipeline = make_block_webdataset(small_data, rank=rank, world_size=2, **kw)
        ids = arrival_order(itertools.islice(pipeline, 2)).tolist()        # two batches per rank, lockstep
        seen += ids
        states.append(pipeline.state_dict(delivered_per_shard(ids, expected)))
    rest, plans = [], []
    for rank in range(3):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pipeline = make_block_webdataset(small_data, rank=rank, world_size=3, resume=states, **kw)
        plans.append(pipeline.resume_plan)
        rest += arrival_order(pipeline).tolist()
    assert sorted(set(seen) | set(rest)) == ALL and len(rest) == len(set(rest))
    assert len(seen) + len(rest) - len(ALL) == plans[0].samples_repeated
