"""What DataLoader workers send: batches through reused shared-memory slots, samples inline in the message.

Every check compares against the 0-worker stream (same order for any number of workers), through real
DataLoader workers, and the slot protection is checked by holding batches (and views of them) while the
workers go on writing.
"""
from __future__ import annotations

import collections
import multiprocessing
import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from course_lib import MmapShardDataset, make_block_webdataset
from course_lib.loaders.item_sender import InlineSample, inline_sample
from course_lib.loaders.worker_transport import BatchRing, RecordLayout, RingBatch, SlotLayout, _rebuild_ring_batch

# fork, and spawn: what crosses to a spawn worker (the pickled dataset, the ring announced once) is what crosses to
# a forkserver worker, and each spawn worker imports torch afresh (seconds). tests/test_start_methods.py runs
# every loader, rings included, under all three methods, forkserver too.
METHODS = [m for m in ("fork", "spawn") if m in multiprocessing.get_all_start_methods()]


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
    assert all(s["x"].numpy().flags.writeable for s in got)              # its own bytes, not the message's


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
    ring = BatchRing(2, SlotLayout(8, {"n": (np.int64, ())}))
    slot = ring.acquire()
    assert ring.flags[slot] == 1 and ring.acquire() != slot and ring.acquire() is None   # both busy now
    ring.arrays(slot, 8)["n"][:] = np.arange(8)
    first = ring.message(slot, 8)
    assert isinstance(first, RingBatch) and first["n"].tolist() == list(range(8))
    later = ring.message(slot, 8)                       # after the announcement: a reference only
    assert later._ring[0] is _rebuild_ring_batch and len(pickle.dumps(later._ring[1])) < 100
    with pytest.raises(RuntimeError, match="never received"):
        _rebuild_ring_batch("not-a-ring", slot, 8)


def test_slot_layouts_place_contiguous_arrays_and_labels_beside_records():
    layout = SlotLayout(5, {"x": (np.uint8, (3, 7)), "y": (np.int64, ())})
    buffer = np.zeros(layout.nbytes, np.uint8)
    arrays = layout.arrays(buffer, 4)
    assert arrays["x"].shape == (4, 3, 7) and arrays["y"].shape == (4,)
    assert all(a.flags.c_contiguous and a.ctypes.data % 64 == buffer.ctypes.data % 64 for a in arrays.values())
    assert layout.fits({"x": (np.uint8, (3, 7)), "y": (np.int64, ())}, 5)
    assert not layout.fits({"x": (np.uint8, (3, 8)), "y": (np.int64, ())}, 5) and not layout.fits(
        {"x": (np.uint8, (3, 7)), "y": (np.int64, ())}, 6)
    dtype = np.dtype([("x", "u1", (2, 3)), ("y", "<i8"), ("idx", "<i8")])
    records = RecordLayout(4, dtype)
    buffer = np.zeros(records.nbytes, np.uint8)
    arrays = records.arrays(buffer, 3)
    arrays["records"]["x"] = np.arange(18).reshape(3, 2, 3)
    arrays["records"]["y"], arrays["records"]["idx"] = [7, 8, 9], [1, 2, 3]
    records.fill_scalars(arrays)
    batch = records.tensors(buffer, 3)
    assert list(batch) == ["x", "y", "idx"] and batch["y"].tolist() == [7, 8, 9] and batch["idx"].is_contiguous()
    assert batch["x"].tolist() == np.arange(18).reshape(3, 2, 3).tolist()


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


# -- the WebDataset block path (make_block_webdataset) through the same rings ---------------------------------

def _wds_blocks(data, **kw):
    return make_block_webdataset(data, batch_size=8, window_blocks=2, seed=7, **kw)


@pytest.mark.parametrize("method", METHODS)
def test_block_webdataset_through_rings_under_each_start_method(small_data, method):
    """One worker plays the 0-worker stream exactly (same worker key); two see every sample once, each sample's
    image the one the 0-worker stream gives it; batches held by the loop stay intact."""
    alone = [{k: v.clone() for k, v in b.items()} for b in _wds_blocks(small_data)]
    image = {int(i): x for b in alone for i, x in zip(b["idx"], b["x"])}
    one = list(DataLoader(_wds_blocks(small_data), batch_size=None, num_workers=1, multiprocessing_context=method))
    assert len(one) == len(alone) and all(_same(a, b) for a, b in zip(alone, one))
    assert all(type(b) is dict for b in one)
    two = list(DataLoader(_wds_blocks(small_data), batch_size=None, num_workers=2, multiprocessing_context=method))
    ids = torch.cat([b["idx"] for b in two]).tolist()
    assert sorted(ids) == list(range(103))
    assert all(torch.equal(x, image[int(i)]) for b in two for i, x in zip(b["idx"], b["x"]))


def test_block_webdataset_reuses_slots_and_keeps_views(small_data):
    ds = _wds_blocks(small_data)
    expected = {int(i): x.clone() for b in ds for i, x in zip(b["idx"], b["x"])}
    storages, batches = set(), 0
    for batch in DataLoader(ds, batch_size=None, num_workers=1):
        storages.add(batch["x"].untyped_storage().data_ptr())
        batches += 1
        del batch
    assert len(storages) <= 1 + 4 < batches                  # full batches through a few slots (+ the last one)
    kept = [(int(b["idx"][0]), b["x"][0]) for b in DataLoader(ds, batch_size=None, num_workers=1)]
    assert all(torch.equal(x, expected[i]) for i, x in kept)   # views held while more arrived: none overwritten
    plain = list(DataLoader(_wds_blocks(small_data, worker_slots=0), batch_size=None, num_workers=2))
    assert sorted(torch.cat([b["idx"] for b in plain]).tolist()) == list(range(103))
    with pytest.raises(ValueError, match="worker_slots"):
        _wds_blocks(small_data, worker_slots=-1)


def test_block_webdataset_rings_across_persistent_epochs(small_data):
    ds = _wds_blocks(small_data)
    loader = DataLoader(ds, batch_size=None, num_workers=2, persistent_workers=True)
    for _epoch in range(2):
        assert sorted(torch.cat([b["idx"] for b in loader]).tolist()) == list(range(103))


def test_a_worker_adds_rings_when_more_batches_are_in_flight(small_data):
    """prefetch_factor 4 keeps up to 4 batches per worker in flight and the loop holds the last HELD: a worker
    that started with two slots adds rings (up to GROWTH) instead of sending batches torch's slow way.

    By construction, not by scheduling: HELD batches alive at once need HELD distinct slots (> one ring of 2),
    and HELD + 4 in flight fit in GROWTH rings of 2, so every batch still comes through a ring."""
    from course_lib.loaders.worker_transport import GROWTH

    ds = MmapShardDataset(small_data, batch_size=4, block_size=4, seed=8, worker_slots=2)
    expected = [b["idx"].tolist() for b in ds]
    loader = DataLoader(ds, batch_size=None, num_workers=1, prefetch_factor=4)
    held, HELD = collections.deque(), 3
    assert 2 < HELD and HELD + 4 <= 2 * GROWTH
    got, storages = [], set()
    for batch in loader:
        storages.add(batch["x"].untyped_storage().data_ptr())
        got.append(batch["idx"].tolist())
        held.append(batch)
        if len(held) > HELD:
            held.popleft()
        del batch
    held.clear()
    assert got == expected
    assert 2 < len(storages) <= 2 * GROWTH < len(got)     # more than the first ring, all of them reused
