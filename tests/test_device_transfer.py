"""DeviceLoader: the same batches on the device as on the host, in every transfer mode.

The CUDA tests run where torch sees a GPU (the course's GPU check); on CPU-only machines the CPU path runs."""
from __future__ import annotations

import pytest
import torch

from course_lib import MmapShardDataset
from course_lib.device_transfer import MODES, DeviceLoader, compare_modes

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def host_batches(small_data, batch_size=16):
    return list(MmapShardDataset(small_data, batch_size=batch_size, seed=2))


def test_compare_modes_on_this_machine(small_data):
    rows = compare_modes(small_data, batch_size=8, repeat=3)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    assert [r.label for r in rows] == [f"{m} -> {device}" for m in MODES]
    assert all(r.samples == 103 - 8 and r.warmup_items == 1 for r in rows), [r.as_dict() for r in rows]


@pytest.mark.parametrize("mode", MODES)
def test_cpu_device_yields_the_same_batches(small_data, mode):
    got = list(DeviceLoader(MmapShardDataset(small_data, batch_size=16, seed=2), "cpu", mode=mode))
    want = host_batches(small_data)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.keys() == w.keys() and all(torch.equal(g[k], w[k]) for k in w)


def test_bad_arguments_are_named(small_data):
    ds = MmapShardDataset(small_data, batch_size=16)
    with pytest.raises(ValueError, match="mode"):
        DeviceLoader(ds, "cpu", mode="fast")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA device"):
            DeviceLoader(ds, "cuda")


@cuda
@pytest.mark.parametrize("mode", MODES)
def test_cuda_batches_equal_the_host_batches(small_data, mode):
    want = host_batches(small_data, batch_size=8)
    seen = 0
    for g, w in zip(DeviceLoader(MmapShardDataset(small_data, batch_size=8, seed=2), "cuda", mode=mode), want):
        assert g["x"].is_cuda and g["x"].is_contiguous()
        torch.cuda._sleep(2_000_000)            # a slow consumer: a reused pinned buffer must not be overwritten early
        assert all(torch.equal(g[k].cpu(), w[k]) for k in w)
        seen += 1
    assert seen == len(want)


@cuda
def test_compare_modes_measures_every_mode(small_data):
    rows = compare_modes(small_data, batch_size=8, repeat=1)
    assert [r.label for r in rows] == [f"{m} -> cuda" for m in MODES]
    assert all(r.samples == 103 - 8 and r.samples_per_s > 0 for r in rows)
