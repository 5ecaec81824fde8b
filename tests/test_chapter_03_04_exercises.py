"""Chapters 03 and 04: the loader pieces the learner writes (stored solutions) and the checkers their checks use."""
from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from course_lib.loaders.shuffle_buffer import shuffled
from course_lib.loaders.webdataset_pipeline import make_webdataset, shard_urls
from course_lib.measure.buffer_held import held_while_shuffling
from course_lib.measure.class_orders import (
    FRESH,
    HERE,
    class_path,
    loader_orders,
    loader_orders_elsewhere,
    main,
)
from course_lib.measure.fingerprints import coverage, order_fingerprint
from course_lib.measure.shuffle_metrics import arrival_order, shuffle_quality
from course_lib.solutions.ch02_mmap_streaming import ShardLoader
from course_lib.solutions.ch03_webdataset import my_shards, shuffle_buffer
from course_lib.solutions.ch04_reproducible_epochs import (
    KeyedShardLoader,
    ResumableShardLoader,
)


# -- chapter 03: the shuffle buffer and its memory count -----------------------------------------------------
@pytest.mark.parametrize("size", [1, 7, 100, 500])
def test_the_learners_shuffle_buffer_holds_at_most_size_and_delivers_each_sample_once(size):
    order, held = held_while_shuffling(shuffle_buffer, 500, size)
    assert coverage(order, 500).exactly_once
    assert held == size


def test_held_count_sees_a_shuffle_that_holds_everything():
    """The memory check can fail: a 'buffer' that reads the whole source first holds all of it."""
    def hoarder(samples, size, rng):
        everything = list(samples)
        rng.shuffle(everything)
        yield from everything

    _, held = held_while_shuffling(hoarder, 300, 10)
    assert held == 300


def test_held_count_agrees_with_the_library_stage():
    _, held = held_while_shuffling(lambda s, size, rng: shuffled(s, size, size, rng), 400, 50)
    assert held == 50


def test_a_buffer_as_large_as_the_data_is_a_uniform_shuffle_and_a_small_one_mixes_locally():
    uniform = shuffle_quality(np.random.default_rng(5).permutation(5000))["displacement"]
    full = shuffle_quality(held_while_shuffling(shuffle_buffer, 5000, 5000)[0])
    small = shuffle_quality(held_while_shuffling(shuffle_buffer, 5000, 50)[0])
    assert abs(full["displacement"] - uniform) < 0.03
    assert 0 < small["displacement"] < 0.05 and small["neighbours"] < 0.1


# -- chapter 03: the shard split by rank and worker ----------------------------------------------------------
@pytest.mark.parametrize("n_shards, world_size, num_workers", [(16, 2, 2), (6, 2, 2), (7, 3, 2), (3, 2, 2)])
def test_the_learners_split_gives_each_shard_to_exactly_one_reader(n_shards, world_size, num_workers):
    shards = [f"s{i}" for i in range(n_shards)]
    lists = [my_shards(shards, r, world_size, w, num_workers) for r in range(world_size) for w in range(num_workers)]
    assert sorted(s for lst in lists for s in lst) == sorted(shards)
    assert max(map(len, lists)) - min(map(len, lists)) <= 1


def test_the_learners_split_matches_make_webdatasets_readers(small_data, monkeypatch):
    urls = shard_urls(small_data, "wds")
    total = sum(len(arrival_order(make_webdataset([u], shuffle_buffer=0))) for u in urls)
    mine = []
    for rank, worker in itertools.product(range(2), range(2)):
        monkeypatch.setenv("WORKER", str(worker))
        monkeypatch.setenv("NUM_WORKERS", "2")
        library = arrival_order(make_webdataset(urls, rank=rank, world_size=2, shuffle_buffer=0, shardshuffle=False))
        monkeypatch.delenv("WORKER")
        shards = my_shards(urls, rank, 2, worker, 2)
        ids = arrival_order(make_webdataset(shards, shuffle_buffer=0, shardshuffle=False))
        assert sorted(ids.tolist()) == sorted(library.tolist())
        mine.append(ids)
    assert coverage(np.concatenate(mine), total).exactly_once


# -- chapter 04: keyed block order, resume by skip ------------------------------------------------------------
def _order(cls, data, seed, epoch):
    loader = cls(data, batch_size=8, block_size=4, seed=seed)
    loader.set_epoch(epoch)
    return loader.block_order()


def test_seed_plus_epoch_collides_and_the_keyed_order_does_not(small_data):
    n = len(ShardLoader(small_data, batch_size=8, block_size=4).blocks)
    naive = [np.random.default_rng(s + e).permutation(n) for s, e in [(42, 1), (43, 0)]]
    assert np.array_equal(*naive)
    assert not np.array_equal(_order(KeyedShardLoader, small_data, 42, 1), _order(KeyedShardLoader, small_data, 43, 0))
    # chapter 02's default_rng([seed, epoch]) draws default_rng(seed)'s stream at epoch 0; the keyed one does not
    assert np.array_equal(_order(ShardLoader, small_data, 42, 0), np.random.default_rng(42).permutation(n))
    assert not np.array_equal(_order(KeyedShardLoader, small_data, 42, 0), np.random.default_rng(42).permutation(n))


@pytest.mark.parametrize("stop_batches", [0, 1, 3, 13])
def test_resume_by_skip_delivers_exactly_the_rest_of_the_epoch(small_data, stop_batches):
    kwargs = {"batch_size": 8, "block_size": 4, "seed": 3}   # batches cut at block ends: the skip crosses them
    first = ResumableShardLoader(small_data, **kwargs)
    first.set_epoch(2)
    seen = arrival_order(itertools.islice(first, stop_batches))
    state = json.loads(json.dumps(first.state_dict(samples_seen=len(seen))))
    resumed = ResumableShardLoader(small_data, **kwargs)
    resumed.load_state_dict(state)
    whole = ResumableShardLoader(small_data, **kwargs)
    whole.set_epoch(2)
    whole = arrival_order(whole)
    assert np.array_equal(np.concatenate([seen, arrival_order(resumed)]), whole)
    resumed.set_epoch(3)                                   # a new epoch starts from its beginning
    assert coverage(arrival_order(resumed), 103).exactly_once


# -- the fresh-process checker ---------------------------------------------------------------------------------
def test_a_stored_class_is_checked_in_a_fresh_process_and_agrees_with_this_one(small_data):
    kwargs = {"batch_size": 8, "block_size": 4, "seed": 1}
    state = {"seed": 1, "epoch": 1, "samples_seen": 10}
    there, where = loader_orders_elsewhere(ResumableShardLoader, small_data, kwargs, [0, 1], state)
    assert where == FRESH
    assert there == loader_orders(ResumableShardLoader, small_data, kwargs, [0, 1], state)
    assert there["resumed"]["samples"] == 93 and there["orders"]["0"] != there["orders"]["1"]


def test_a_class_another_process_cannot_import_is_checked_here_and_says_so(small_data):
    class Local(KeyedShardLoader):
        pass

    assert class_path(Local) is None and class_path(KeyedShardLoader).endswith(":KeyedShardLoader")
    result, where = loader_orders_elsewhere(Local, small_data, {"batch_size": 8, "block_size": 4}, [0])
    assert where == HERE
    ds = Local(small_data, batch_size=8, block_size=4)
    assert result["orders"]["0"] == order_fingerprint(arrival_order(ds))


def test_the_cli_names_a_class_it_cannot_import(small_data, capsys):
    with pytest.raises(SystemExit):
        main(["--class", "course_lib.solutions:NoSuchLoader", "--data-dir", str(small_data)])
    assert "NoSuchLoader" in capsys.readouterr().err


# -- chapter 04: epoch timings (its two-process resume runs in the CI execution of chapter 04) ---------------------
def test_time_epochs_fingerprints_each_epochs_order_and_times_its_first_item(small_data):
    from course_lib import MmapShardDataset
    from course_lib.measure.epoch_boundaries import time_epochs
    from course_lib.measure.fingerprints import epoch_order

    ds = MmapShardDataset(small_data, batch_size=8, seed=4)
    timings = time_epochs(ds, [0, 1], ds.set_epoch)
    for t in timings:
        expected = epoch_order(MmapShardDataset(small_data, batch_size=8, seed=4), t.epoch)
        assert t.fingerprint == order_fingerprint(expected)
        assert t.samples == 103 and 0 < t.first_item_seconds <= t.seconds
    assert timings[0].fingerprint != timings[1].fingerprint

