"""DeviceLoader: the same batches on the device as on the host, in every transfer mode.

The CUDA tests run where torch sees a GPU (tools/gpu_check.sh). On CPU every mode takes DeviceLoader's one CPU
fallback (a plain ``.to("cpu")``: no pinned buffer, no stream, no copy thread), so the tests named ``cpu_fallback``
check that fallback only, not the four transfer paths."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from course_lib import MmapShardDataset
from course_lib.loaders.device_transfer import MODES, DeviceLoader, record_fields
from course_lib.loaders.mmap_shards import batch_tensors
from course_lib.measure.transfer_modes import compare_modes

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def host_batches(small_data, batch_size=16):
    return list(MmapShardDataset(small_data, batch_size=batch_size, seed=2))


def test_compare_modes_on_this_machine(small_data):
    """Every mode is run and labelled; on a CPU-only machine that is the CPU fallback four times."""
    rows = compare_modes(small_data, batch_size=8, repeat=3)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    assert [r.label for r in rows] == [f"{m} -> {device}" for m in MODES]
    assert all(r.samples == 103 - 8 and r.warmup_items == 1 for r in rows), [r.as_dict() for r in rows]


@pytest.mark.parametrize("mode", MODES)
def test_cpu_fallback_yields_the_same_batches(small_data, mode):
    """CPU fallback only: ``mode`` is accepted, but on "cpu" every mode takes the same ``.to()`` path."""
    got = list(DeviceLoader(MmapShardDataset(small_data, batch_size=16, seed=2), "cpu", mode=mode))
    want = host_batches(small_data)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.keys() == w.keys() and all(torch.equal(g[k], w[k]) for k in w)


def test_record_fields_cut_the_same_tensors_out_of_raw_bytes(small_data):
    ds = MmapShardDataset(small_data, batch_size=16)
    ids = np.array([0, 5, 6, 40, 101])
    records = ds.read_records(ids)
    raw = torch.from_numpy(records.view(np.uint8).reshape(len(ids), -1).copy())
    got, want = record_fields(raw, records.dtype), batch_tensors(records)
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
    assert want["idx"].tolist() == ids.tolist()


def test_read_records_into_a_given_buffer_and_bad_ids(small_data):
    ds = MmapShardDataset(small_data, batch_size=16)
    ids = np.array([3, 4, 50])
    out = np.zeros(3, dtype=ds.index.dtype)
    assert ds.read_records(ids, out=out) is out and out["idx"].tolist() == [3, 4, 50]
    with pytest.raises(ValueError, match="sorted"):
        ds.read_records(np.array([4, 3]))
    with pytest.raises(ValueError, match="within"):
        ds.read_records(np.array([1, 103]))
    with pytest.raises(ValueError, match="out must be"):
        ds.read_records(ids, out=np.zeros(2, dtype=ds.index.dtype))
    frozen = np.zeros(3, dtype=ds.index.dtype)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="writable=False"):
        ds.read_records(ids, out=frozen)
    assert len(ds.read_records(np.array([], dtype=np.int64))) == 0


def test_batch_ids_are_what_the_dataset_reads(small_data):
    ds = MmapShardDataset(small_data, batch_size=16, seed=4)
    via_ids = np.concatenate(list(ds.batch_ids()))
    via_iter = np.concatenate([b["idx"].numpy() for b in ds])
    assert sorted(via_ids.tolist()) == list(range(103)) and np.array_equal(via_ids, via_iter)
    with pytest.raises(ValueError, match="batch_size"):
        next(MmapShardDataset(small_data).batch_ids())


def test_bad_arguments_are_named(small_data):
    ds = MmapShardDataset(small_data, batch_size=16)
    with pytest.raises(ValueError, match="mode"):
        DeviceLoader(ds, "cpu", mode="fast")
    with pytest.raises(ValueError, match="direct"):
        DeviceLoader(MmapShardDataset(small_data), "cpu", mode="direct")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA device"):
            DeviceLoader(ds, "cuda")


@cuda
@pytest.mark.parametrize("mode", MODES)
def test_cuda_batches_equal_the_host_batches(small_data, mode):
    want = host_batches(small_data, batch_size=8)
    seen = 0
    for g, w in zip(DeviceLoader(MmapShardDataset(small_data, batch_size=8, seed=2), "cuda", mode=mode), want):
        assert g["x"].is_cuda and g["x"].is_contiguous() == (mode != "direct")  # direct: a view into the records
        torch.cuda._sleep(2_000_000)            # a slow consumer: a reused pinned buffer must not be overwritten early
        assert all(torch.equal(g[k].cpu(), w[k]) for k in w)
        seen += 1
    assert seen == len(want)


@cuda
def test_compare_modes_measures_every_mode(small_data):
    rows = compare_modes(small_data, batch_size=8, repeat=1)
    assert [r.label for r in rows] == [f"{m} -> cuda" for m in MODES]
    assert all(r.samples == 103 - 8 and r.samples_per_s > 0 for r in rows)
