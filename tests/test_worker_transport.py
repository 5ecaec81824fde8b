"""What DataLoader workers send: batches through reused shared-memory slots, samples inline in the message.

Every check compares against the 0-worker stream (same order for any number of workers), through real
DataLoader workers, and the slot protection is checked by holding batches (and views of them) while the
workers go on writing.
"""
from __future__ import annotations

import multiprocessing
import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from course_lib import MmapShardDataset
from course_lib.loaders.worker_transport import BatchRing, InlineSample, RingBatch, _rebuild_ring_batch, inline_sample

METHODS = [m for m in ("fork", "spawn", "forkserver") if m in multiprocessing.get_all_start_methods()]


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(torch.as_tensor(a[k]), torch.as_tensor(b[k])) for k in a)


@pytest.mark.parametrize("method", METHODS)
def test_held_batches_stay_intact_under_each_start_method(small_data, method):
    ds = MmapShardDataset(small_data, batch_size=8, block_size=8, seed=3, worker_slots=2)
    expected = list(ds)
    held = list(DataLoader(ds, batch_size=None, num_workers=2, multiprocessing_context=method))
    assert len(held) == len(expected)
    assert all(_same(a, b) for a, b in zip(expected, held))   # holding every batch: workers fell back, wrote nothing
    assert all(type(b) is dict for b in held)                 # the main process gets plain dicts


def test_a_view_of_a_batch_keeps_its_slot(small_data):
    """Keep only ``x[0]`` of each batch (a view of the slot) while more batches arrive: none is overwritten."""
    ds = MmapShardDataset(small_data, batch_size=4, block_size=4, seed=5, worker_slots=2)
    expected = [b["x"][0].clone() for b in ds]
    kept = [b["x"][0] for b in DataLoader(ds, batch_size=None, num_workers=2)]
    assert all(torch.equal(a, b) for a, b in zip(expected, kept, strict=True))


def test_streaming_reuses_slots_and_matches_zero_workers(small_data):
    ds = MmapShardDataset(small_data, batch_size=4, block_size=4, seed=1)
    expected = [{k: v.clone() for k, v in b.items()} for b in ds]
    got, storages = [], set()
    for batch in DataLoader(ds, batch_size=None, num_workers=2):
        storages.add(batch["x"].untyped_storage().data_ptr())
        got.append({k: v.clone() for k, v in batch.items()})
        del batch
    assert all(_same(a, b) for a, b in zip(expected, got, strict=True))
    assert len(storages) <= 2 * ds.worker_slots < len(got)   # the batches came through a few reused slots


def test_persistent_workers_resend_their_ring_each_epoch(small_data):
    ds = MmapShardDataset(small_data, batch_size=8, block_size=8, seed=2, shared_epoch=True)
    loader = DataLoader(ds, batch_size=None, num_workers=2, persistent_workers=True)
    for epoch in range(3):
        ds.set_epoch(epoch)
        alone = MmapShardDataset(small_data, batch_size=8, block_size=8, seed=2)
        alone.set_epoch(epoch)
        assert [b["idx"].tolist() for b in loader] == [b["idx"].tolist() for b in alone]


def test_a_collate_fn_that_changes_the_batch_gets_what_it_returned(small_data):
    ds = MmapShardDataset(small_data, batch_size=8, block_size=8, seed=4)
    expected = [(b["x"].float() / 255).sum().item() for b in ds]

    def to_float(batch):
        batch["x"] = batch["x"].float() / 255     # replaces a value: sent the usual way, not as a slot
        return batch

    got = [b["x"].sum().item() for b in DataLoader(ds, batch_size=None, num_workers=2, collate_fn=to_float)]
    assert got == pytest.approx(expected)


@pytest.mark.parametrize("method", METHODS)
def test_per_sample_items_carry_only_their_row(small_data, method):
    ds = MmapShardDataset(small_data, block_size=8, seed=6)
    expected = list(ds)
    got = list(DataLoader(ds, batch_size=None, num_workers=2, multiprocessing_context=method))
    assert [s["idx"] for s in got] == [s["idx"] for s in expected]
    assert all(torch.equal(a["x"], b["x"]) and a["y"] == b["y"] for a, b in zip(expected, got))
    row = expected[0]["x"].nbytes
    assert all(s["x"].untyped_storage().nbytes() == row for s in got)   # not the block's whole buffer


def test_per_sample_items_collated_in_workers(small_data):
    ds = MmapShardDataset(small_data, block_size=8, seed=6)
    expected = [s["idx"] for s in ds]
    got = [b for b in DataLoader(ds, batch_size=5, num_workers=2)]
    assert sorted(torch.cat([b["idx"] for b in got]).tolist()) == sorted(expected)   # each worker collates its own
    assert all(type(b) is dict and b["x"].shape[0] == len(b["idx"]) for b in got)


def test_worker_items_pickle_to_plain_dicts_and_refuse_unknown_rings():
    sample = inline_sample({"x": torch.arange(12, dtype=torch.uint8).reshape(3, 4)[1], "y": 3})
    assert isinstance(sample, InlineSample)
    back = pickle.loads(pickle.dumps(sample))
    assert type(back) is dict and back["y"] == 3 and back["x"].tolist() == [4, 5, 6, 7]
    assert back["x"].untyped_storage().nbytes() == 4
    ring = BatchRing(2, 64)
    slot = ring.acquire()
    assert ring.flags[slot] == 1 and ring.acquire() != slot and ring.acquire() is None   # both busy now
    batch = ring.message(slot, np.dtype(np.uint8), 8, _as_dict)
    assert isinstance(batch, RingBatch)
    with pytest.raises(RuntimeError, match="never received"):
        _rebuild_ring_batch("not-a-ring", None, *batch._ring[2:])


def _as_dict(records):
    return {"n": torch.tensor(len(records))}


def test_zero_slots_is_torchs_default_transport(small_data):
    ds = MmapShardDataset(small_data, batch_size=8, block_size=8, seed=1, worker_slots=0)
    expected = [b["idx"].tolist() for b in ds]
    assert [b["idx"].tolist() for b in DataLoader(ds, batch_size=None, num_workers=2)] == expected
    per_sample = MmapShardDataset(small_data, block_size=8, seed=1, worker_slots=0)
    got = list(DataLoader(per_sample, batch_size=None, num_workers=2))
    assert [s["idx"] for s in got] == [s["idx"] for s in per_sample]
    assert got[0]["x"].untyped_storage().nbytes() > got[0]["x"].nbytes   # a view drags its block's buffer along
    with pytest.raises(ValueError, match="worker_slots"):
        MmapShardDataset(small_data, worker_slots=-1)
