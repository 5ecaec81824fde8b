"""MmapShardDataset on real shards: contents, DataLoader workers, ranks, resume, and bad input."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from course_lib import MmapShardDataset, ShardError
from course_lib.loaders import count_samples
from data_gen.samples import make_sample

from conftest import SMALL


def ids_of(items) -> list[int]:
    """Global indices in arrival order, from per-sample items (int idx) or batches (tensor idx)."""
    return [int(i) for item in items for i in torch.as_tensor(item["idx"]).reshape(-1)]


@pytest.mark.parametrize("batch_size", [None, 8])
@pytest.mark.parametrize("shuffle", ["none", "block", "sample"])
def test_samples_carry_their_generated_content(small_data, shuffle, batch_size):
    ds = MmapShardDataset(small_data, shuffle=shuffle, batch_size=batch_size, block_size=8, seed=1)
    items = list(ds)
    assert sorted(ids_of(items)) == list(range(103))
    item = items[1]
    x = item["x"][0] if batch_size else item["x"]
    i = ids_of([item])[0]
    expect_x, expect_y = make_sample(SMALL["seed"], i, SMALL["shape"], SMALL["classes"])
    assert isinstance(x, torch.Tensor) and x.dtype == torch.uint8 and tuple(x.shape) == SMALL["shape"]
    np.testing.assert_array_equal(x.numpy(), expect_x)
    assert int(torch.as_tensor(item["y"]).reshape(-1)[0]) == expect_y


@pytest.mark.parametrize("workers", [0, 1, 2, 3])
def test_dataloader_workers_yield_each_sample_once_in_the_same_order(small_data, workers):
    ds = MmapShardDataset(small_data, shuffle="block", batch_size=5, block_size=8, window_blocks=2, seed=4)
    reference = ids_of(ds)
    got = ids_of(DataLoader(ds, batch_size=None, num_workers=workers))
    assert got == reference and sorted(got) == list(range(103))


def test_per_sample_items_with_workers_and_loader_batching(small_data):
    ds = MmapShardDataset(small_data, shuffle="sample", seed=2)
    got = ids_of(DataLoader(ds, batch_size=7, num_workers=2))
    assert sorted(got) == list(range(103))


@pytest.mark.parametrize("drop_last", [False, True])
def test_ranks_split_the_epoch(small_data, drop_last):
    per_rank = [ids_of(MmapShardDataset(small_data, batch_size=4, rank=r, world_size=3, drop_last=drop_last))
                for r in range(3)]
    everything = sum(per_rank, [])
    assert len(set(everything)) == len(everything)
    if drop_last:
        assert [len(p) for p in per_rank] == [34, 34, 34]
    else:
        assert sorted(everything) == list(range(103))
    assert [len(MmapShardDataset(small_data, rank=r, world_size=3, drop_last=drop_last)) for r in range(3)] == \
        [len(p) for p in per_rank]


def test_set_epoch_changes_order_reproducibly(small_data):
    a = MmapShardDataset(small_data, batch_size=4, block_size=4, seed=9)
    b = MmapShardDataset(small_data, batch_size=4, block_size=4, seed=9)
    e0 = ids_of(a)
    a.set_epoch(1)
    e1 = ids_of(a)
    b.set_epoch(1)
    assert e0 != e1 and ids_of(b) == e1 and sorted(e1) == list(range(103))


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("stop_after", [1, 6, 13])
def test_resume_through_dataloader(small_data, workers, stop_after):
    def make():
        ds = MmapShardDataset(small_data, batch_size=4, block_size=8, window_blocks=2, seed=5)
        ds.set_epoch(3)
        return ds

    full = ids_of(DataLoader(make(), batch_size=None, num_workers=workers))
    ds, seen = make(), []
    for batch in DataLoader(ds, batch_size=None, num_workers=workers):
        seen += ids_of([batch])
        if len(seen) >= stop_after * 4:
            break
    state = json.loads(json.dumps(ds.state_dict(samples_seen=len(seen))))  # survives a JSON checkpoint
    resumed = make()
    resumed.load_state_dict(state)
    rest = ids_of(DataLoader(resumed, batch_size=None, num_workers=workers))
    assert seen + rest == full


def test_in_process_state_counts_what_was_yielded(small_data):
    ds = MmapShardDataset(small_data, shuffle="block", block_size=8, seed=1)
    it = iter(ds)
    first = [int(next(it)["idx"]) for _ in range(10)]
    state = ds.state_dict()
    assert state["samples_seen"] == 10 and state["epoch"] == 0
    again = MmapShardDataset(small_data, shuffle="block", block_size=8, seed=1)
    again.load_state_dict(state)
    assert first + ids_of(again) == ids_of(MmapShardDataset(small_data, shuffle="block", block_size=8, seed=1))


def test_state_from_other_settings_is_refused(small_data):
    state = MmapShardDataset(small_data, seed=1).state_dict()
    with pytest.raises(ValueError, match="seed"):
        MmapShardDataset(small_data, seed=2).load_state_dict(state)
    with pytest.raises(ValueError, match="samples_seen"):
        MmapShardDataset(small_data).state_dict(samples_seen=500)


def test_batches_view_x_without_copy(small_data):
    batch = next(iter(MmapShardDataset(small_data, batch_size=8, shuffle="none")))
    assert batch["x"].shape == (8, 3, 4, 4) and batch["y"].dtype == torch.int64
    # x is a strided view into the records just read (stride = one record), not a second copy
    assert batch["x"].stride()[0] == MmapShardDataset(small_data).bytes_per_sample


def test_count_samples_reads_headers(small_data):
    assert [count_samples(p) for p in sorted((small_data / "npy").glob("*.npy"))] == [20, 20, 20, 20, 20, 3]


# -- bad input ---------------------------------------------------------------------------------------
@pytest.fixture
def copy(small_data, tmp_path) -> Path:
    dst = tmp_path / "data"
    shutil.copytree(small_data, dst)
    return dst


def test_missing_directory(tmp_path):
    with pytest.raises(ShardError, match="no such directory"):
        MmapShardDataset(tmp_path / "nope")


def test_empty_directory(tmp_path):
    with pytest.raises(ShardError, match="no shard_"):
        MmapShardDataset(tmp_path)


def test_truncated_shard_is_named(copy):
    shard = copy / "npy/shard_0002.npy"
    shard.write_bytes(shard.read_bytes()[:-7])
    with pytest.raises(ShardError, match="shard_0002.npy.*truncated"):
        MmapShardDataset(copy)


def test_corrupt_header_is_named(copy):
    shard = copy / "npy/shard_0001.npy"
    shard.write_bytes(b"garbage!" + shard.read_bytes()[8:])
    with pytest.raises(ShardError, match="shard_0001.npy.*not a readable"):
        MmapShardDataset(copy)


def test_shard_with_other_dtype_is_named(copy):
    np.save(copy / "npy/shard_0003.npy", np.zeros(20, dtype=[("x", "u1", (3, 5, 5)), ("y", "<i8"), ("idx", "<i8")]))
    with pytest.raises(ShardError, match="shard_0003.npy.*differs"):
        MmapShardDataset(copy)


def test_plain_array_is_refused(copy):
    np.save(copy / "npy/shard_0000.npy", np.zeros((20, 3)))
    with pytest.raises(ShardError, match="shard_0000.npy"):
        MmapShardDataset(copy)


def test_manifest_disagreeing_with_shards_is_named(copy):
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["formats"]["npy"]["shards"][4]["samples"] = 21
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ShardError, match="shard_0004.npy.*says 21"):
        MmapShardDataset(copy)


def test_missing_shard_listed_in_manifest(copy):
    (copy / "npy/shard_0005.npy").unlink()
    with pytest.raises(ShardError, match="shard_0005.npy.*missing"):
        MmapShardDataset(copy)


@pytest.mark.parametrize("kwargs,word", [
    (dict(shuffle="random"), "shuffle"), (dict(block_size=0), "block_size"), (dict(batch_size=-1), "batch_size"),
    (dict(rank=1), "both"), (dict(rank=3, world_size=2), "rank"), (dict(rank=0, world_size=0), "world_size")])
def test_bad_arguments(small_data, kwargs, word):
    with pytest.raises(ValueError, match=word):
        MmapShardDataset(small_data, **kwargs)


def test_unreadable_manifest_is_named(copy):
    (copy / "manifest.json").write_text("{not json")
    with pytest.raises(ShardError, match="manifest.json: not a data_gen manifest"):
        MmapShardDataset(copy)


@pytest.mark.parametrize("batch_size", [None, 6])
def test_run_length_keeps_exactly_once_same_order_and_resume(small_data, batch_size):
    from course_lib.measure import arrival_order
    ds = MmapShardDataset(small_data, block_size=8, batch_size=batch_size, seed=4, run_length=3, window_blocks=2)
    alone = arrival_order(ds).tolist()
    assert sorted(alone) == list(range(103))
    assert arrival_order(DataLoader(ds, batch_size=None, num_workers=2)).tolist() == alone
    state = ds.state_dict(samples_seen=30)
    assert state["run_length"] == 3
    resumed = MmapShardDataset(small_data, block_size=8, batch_size=batch_size, seed=4, run_length=3, window_blocks=2)
    resumed.load_state_dict(state)
    assert arrival_order(resumed).tolist() == alone[30:]
    other = MmapShardDataset(small_data, block_size=8, batch_size=batch_size, seed=4, window_blocks=2, run_length=1)
    with pytest.raises(ValueError, match="run_length"):
        other.load_state_dict(state)


def test_read_ahead_advises_the_next_window_and_nothing_past_the_end(small_data):
    from course_lib.loaders.read_ahead import ReadAhead
    ds = MmapShardDataset(small_data, block_size=8, seed=4, window_blocks=2)
    plan = ds.plan()
    asked = []
    hook = ReadAhead(plan.ids, len(plan), plan.window, lambda ids: asked.append(ids.tolist()) or len(ids))
    assert hook(0) == 2 * plan.window                     # the first window asks for itself and the next
    assert asked == [plan.ids(0, plan.window).tolist(), plan.ids(plan.window, 2 * plan.window).tolist()]
    last = len(plan) - len(plan) % plan.window
    assert hook(last) == 0 and asked[-1] == []            # nothing past the end
    assert 1 <= ds._advise(plan.ids(0, plan.window)) <= plan.window   # madvise on the real maps: runs of records
    with_read_ahead = arrival_order_of(ds)
    without = arrival_order_of(MmapShardDataset(small_data, block_size=8, seed=4, window_blocks=2, read_ahead=False))
    assert with_read_ahead == without and sorted(without) == list(range(103))   # same order, unsorted


def arrival_order_of(ds):
    return [int(s["idx"]) for s in ds]


def test_default_run_length_gives_each_batch_window_blocks_runs(small_data):
    assert MmapShardDataset(small_data, batch_size=256).run_length == 16            # 256 // 16 windows
    assert MmapShardDataset(small_data, batch_size=8, window_blocks=4).run_length == 2
    assert MmapShardDataset(small_data, batch_size=8, window_blocks=16).run_length == 1
    assert MmapShardDataset(small_data).run_length == 1                             # per sample: single samples


def test_batch_ids_start_at_the_resume_point_and_change_no_state(small_data):
    ds = MmapShardDataset(small_data, batch_size=4, block_size=8, seed=3)
    every = np.concatenate(list(ds.batch_ids())).tolist()
    assert ds.state_dict()["samples_seen"] == 0                  # listing ids is not consuming them
    ds.load_state_dict(ds.state_dict(samples_seen=12))
    assert np.concatenate(list(ds.batch_ids())).tolist() == every[12:]
    assert np.concatenate(list(ds.batch_ids())).tolist() == every[12:]   # still pending: nothing consumed
    assert ids_of(ds) == ids_of(MmapShardDataset(small_data, batch_size=4, block_size=8, seed=3))[12:]


def test_state_without_a_setting_is_refused_naming_it(small_data):
    state = MmapShardDataset(small_data, batch_size=8).state_dict()
    del state["run_length"]                                      # no silent default for old states
    with pytest.raises(ValueError, match="run_length"):
        MmapShardDataset(small_data, batch_size=8).load_state_dict(state)


def test_a_killed_worker_is_named_with_how_to_resume(small_data):
    import os
    import signal

    from course_lib.loaders.worker_exits import WorkerExitError, WorkerExitGuard
    ds = MmapShardDataset(small_data, batch_size=4, block_size=8, seed=2)
    full = ids_of(ds)
    guard = WorkerExitGuard(DataLoader(ds, batch_size=None, num_workers=2))
    seen = []
    with pytest.raises(WorkerExitError) as caught:
        for batch in guard:
            seen += ids_of([batch])
            if len(seen) == 12:                       # three batches in: the OOM killer takes worker 1
                victim = guard.pids[1]
                os.kill(victim, signal.SIGKILL)
    message = str(caught.value)
    assert f"worker 1 of 2 (pid {victim})" in message and "load_state_dict" in message
    assert getattr(signal.getsignal(signal.SIGCHLD), "__name__", "") != "on_child_exit"   # the guard let go
    state = ds.state_dict(samples_seen=12)            # the checkpoint the loop took after 3 batches
    resumed = MmapShardDataset(small_data, batch_size=4, block_size=8, seed=2)
    resumed.load_state_dict(state)
    assert full[:12] + ids_of(DataLoader(resumed, batch_size=None, num_workers=2)) == full
