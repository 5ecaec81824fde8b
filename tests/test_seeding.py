"""Chapter 04's helpers: per-worker RNGs, order fingerprints across processes, shared epochs with persistent
workers, mid-epoch resume through torchdata's StatefulDataLoader, resampled streams."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader
from torchdata.stateful_dataloader import StatefulDataLoader

from course_lib import MmapShardDataset, make_webdataset
from course_lib.course import resume_in_fresh_process
from course_lib.course.resume_run import main as resume_main
from course_lib.loaders.seeding import SharedEpoch, seed_everything, seed_worker, worker_rng, worker_seed_sequence
from course_lib.measure import arrival_order, epoch_order
from course_lib.measure.epoch_boundaries import time_epochs
from course_lib.measure.fingerprints import coverage, epoch_orders, fingerprints_in_fresh_process, order_fingerprint
from course_lib.measure.fingerprints import main as fingerprint_main
from course_lib.teaching import draws_by_worker
from course_lib.teaching.naive import SEED_EPOCH_ITERATOR_SOURCE, SeedStreamingDataset, exec_seed_code

TOTAL = 103  # samples in the small_data fixture


def test_one_generator_copied_into_workers_repeats_numbers():
    shared = np.random.default_rng(0)           # built once, copied into every worker: the failure
    draws = draws_by_worker(lambda w: shared)
    assert draws[0] == draws[1]


def test_worker_rng_is_distinct_per_worker_and_reproducible():
    first = draws_by_worker(lambda w: worker_rng(42, epoch=0))
    again = draws_by_worker(lambda w: worker_rng(42, epoch=0))
    epoch1 = draws_by_worker(lambda w: worker_rng(42, epoch=1))
    assert first[0] != first[1]
    assert first == again
    assert epoch1[0] != first[0] and epoch1[1] != first[1]


def test_worker_seed_sequence_keys_and_bad_input():
    keys = [(s, e, r, w) for s in (0, 1) for e in (0, 1) for r in (0, 1) for w in (0, 1)]
    states = {tuple(worker_seed_sequence(*k).generate_state(2)) for k in keys}
    assert len(states) == len(keys)
    with pytest.raises(ValueError, match="worker"):
        worker_seed_sequence(0, 0, 0, -1)
    with pytest.raises(ValueError, match="epoch"):
        worker_seed_sequence(0, 1.5)


def test_seed_everything_and_seed_worker():
    seed_everything(3)
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    seed_everything(3)
    assert a == (random.random(), np.random.rand(), torch.rand(1).item())
    torch.manual_seed(11)
    seed_worker(0)
    b = np.random.rand()
    torch.manual_seed(12)
    seed_worker(0)
    assert np.random.rand() != b


def test_fingerprint_and_coverage():
    order = np.random.default_rng(0).permutation(50)
    assert order_fingerprint(order) == order_fingerprint(list(order))
    assert order_fingerprint(order) != order_fingerprint(order[::-1])
    assert len(order_fingerprint(order)) == 16
    assert coverage(order, 50).exactly_once
    c = coverage(np.array([0, 1, 1, 3]), 5)
    assert (c.samples, c.distinct, c.duplicates, c.missing, c.exactly_once) == (4, 3, 1, 2, False)
    with pytest.raises(ValueError, match="outside"):
        coverage(np.array([0, 7]), 5)


def test_seed_epoch_iterator_is_not_reproducible(small_data):
    epoch_iterator = exec_seed_code(SEED_EPOCH_ITERATOR_SOURCE, torch=torch)["epoch_iterator"]
    ds = SeedStreamingDataset(small_data / "npy")
    runs = [[int(s["idx"]) for s in epoch_iterator(ds, seed=42)] for _ in range(2)]
    assert sorted(runs[0]) == sorted(runs[1]) == list(range(TOTAL))
    assert runs[0] != runs[1]  # the seeded generator reaches nothing; the global RNG decides


@pytest.mark.parametrize("loader", ["mmap", "webdataset"])
def test_order_is_a_function_of_seed_and_epoch_across_processes(small_data, loader):
    a = fingerprints_in_fresh_process(small_data, loader, seed=42)
    b = fingerprints_in_fresh_process(small_data, loader, seed=42, num_workers=2 if loader == "mmap" else 0)
    assert a == b                      # a fresh process (and, for mmap, any worker count) plays the same order
    assert len(set(a.values())) == 3   # each epoch differs
    ds = MmapShardDataset(small_data, seed=42) if loader == "mmap" else make_webdataset(small_data, seed=42,
                                                                                         shuffle_buffer=100)
    here = {str(e): order_fingerprint(o) for e, o in epoch_orders(ds, [0, 1, 2], ds.set_epoch).items()}
    assert here == a


def test_fingerprint_cli_rejects_bad_arguments(small_data, capsys):
    # in this process: argparse's exit is the same here and under `python -m` (which the fresh-process tests run)
    with pytest.raises(SystemExit) as stop:
        fingerprint_main(["--data-dir", str(small_data), "--num-workers", "-1"])
    assert stop.value.code == 2 and "--num-workers" in capsys.readouterr().err


def test_cli_old_flags_are_refused(small_data, capsys):
    with pytest.raises(SystemExit) as stop:
        fingerprint_main(["--data-dir", str(small_data), "--workers", "0"])
    assert stop.value.code == 2 and "unrecognized arguments: --workers" in capsys.readouterr().err


@pytest.mark.parametrize("shared", [False, True])
def test_persistent_workers_need_a_shared_epoch(small_data, shared):
    ds = MmapShardDataset(small_data, seed=4, batch_size=8, block_size=8, shared_epoch=shared)
    loader = DataLoader(ds, batch_size=None, num_workers=2, persistent_workers=True)
    timings = time_epochs(loader, [0, 1, 2], ds.set_epoch)
    assert [t.samples for t in timings] == [TOTAL] * 3
    plain = MmapShardDataset(small_data, seed=4, batch_size=8, block_size=8)
    expected = [order_fingerprint(o) for o in epoch_orders(plain, [0, 1, 2], plain.set_epoch).values()]
    got = [t.fingerprint for t in timings]
    if shared:
        assert got == expected
    else:
        assert got == [expected[0]] * 3   # the workers' copy never saw set_epoch: the epoch repeats


def test_shared_epoch_get_and_set():
    box = SharedEpoch(2)
    box.set(7)
    assert box.get() == 7


def ids(loader) -> list[int]:
    return arrival_order(loader).tolist()


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("batched", [False, True])
def test_stateful_dataloader_resumes_at_random_points(small_data, workers, batched):
    def make():
        ds = MmapShardDataset(small_data, seed=8, block_size=8, batch_size=10 if batched else None)
        ds.set_epoch(2)
        return StatefulDataLoader(ds, batch_size=None if batched else 6, num_workers=workers)

    full = ids(make())
    assert sorted(full) == list(range(TOTAL))
    batches = len(full) // (10 if batched else 6)
    for stop in sorted(np.random.default_rng(workers + 2 * batched).choice(np.arange(1, batches), 3,
                                                                          replace=False).tolist()):
        loader, seen = make(), []
        for k, batch in enumerate(loader):
            seen += ids([batch])
            if k + 1 == stop:
                break
        state = loader.state_dict()
        resumed = make()
        resumed.load_state_dict(state)
        assert seen + ids(resumed) == full, f"stop after {stop} batches"


def test_worker_state_loaded_in_another_worker_is_refused(small_data):
    ds = MmapShardDataset(small_data)
    state = {**ds.state_dict(), "worker": 1, "num_workers": 2, "worker_samples": 4}
    with pytest.raises(ValueError, match="worker 1 of 2"):
        ds.load_state_dict(state)


def test_resampled_stream_repeats_and_misses_samples_reproducibly(small_data):
    def epoch(e):
        return epoch_order(make_webdataset(small_data, seed=1, shuffle_buffer=20, resampled=True).with_epoch(TOTAL), e)

    a, b, c = epoch(0), epoch(0), epoch(1)
    assert len(a) == TOTAL and np.array_equal(a, b) and not np.array_equal(a, c)
    cov = coverage(a, TOTAL)
    assert cov.duplicates == cov.missing > 0   # same length as an epoch, yet not each sample once
    exact = coverage(arrival_order(make_webdataset(small_data, seed=1, shuffle_buffer=20)), TOTAL)
    assert exact.exactly_once


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_in_a_fresh_process(small_data, tmp_path, workers):
    def part(name, stop_after=None):
        return resume_in_fresh_process(small_data, tmp_path / "state.json", tmp_path / name, batch_size=8,
                                       num_workers=workers, seed=3, epoch=1, stop_after=stop_after).tolist()

    first = part("a.npy", stop_after=5)
    rest = part("b.npy")
    ds = MmapShardDataset(small_data, seed=3, batch_size=8)
    ds.set_epoch(1)
    assert len(first) == 40 and first + rest == arrival_order(ds).tolist()


def test_resume_run_rejects_bad_arguments(small_data, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        resume_main(["--data-dir", str(small_data), "--state", str(tmp_path / "s.json"), "--ids",
                     str(tmp_path / "i.npy"), "--stop-after", "0"])
    assert stop.value.code == 2 and "--stop-after" in capsys.readouterr().err


def test_worker_zero_does_not_replay_the_plain_seed():
    plain = np.random.default_rng(42).random(4)
    assert not np.array_equal(worker_rng(42, 0, rank=0, worker=0).random(4), plain)


def test_several_loaders_fingerprinted_in_one_fresh_process_match_this_one(small_data):
    from course_lib.measure import fingerprint_runs, fingerprint_runs_in_fresh_process
    runs = {"mmap": {"loader": "mmap-batched"}, "mmap, 2 workers": {"loader": "mmap-batched", "num_workers": 2},
            "webdataset": {"loader": "webdataset", "shards": 2}}
    fresh = fingerprint_runs_in_fresh_process(small_data, runs, seed=3, reverse=True)
    assert fresh == fingerprint_runs(small_data, runs, seed=3)
    assert fresh["mmap"] == fresh["mmap, 2 workers"] and len(set(fresh["webdataset"].values())) == 3
