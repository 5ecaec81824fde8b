"""measure_warm times enough whole epochs; measure_cold times single epochs after evicting the files."""
from __future__ import annotations

import pytest
from torch.utils.data import DataLoader

from course_lib import MmapShardDataset
from course_lib.measure.long_runs import measure_cold, measure_warm


def test_warm_runs_chain_epochs_until_enough_samples(small_data):
    ds = MmapShardDataset(small_data, batch_size=8)
    n = len(ds.index)
    result = measure_warm(ds, min_seconds=1e-6, min_samples=5 * n, files=ds.index.paths, label="mmap")
    assert result.samples >= 5 * n - 8            # 5 epochs or more, the first batch discarded


def test_warm_runs_keep_persistent_workers_going(small_data):
    loader = DataLoader(MmapShardDataset(small_data, batch_size=8), batch_size=None, num_workers=2,
                        persistent_workers=True)
    result = measure_warm(loader, min_seconds=1e-6, min_samples=300)
    assert result.samples >= 300 - 8


def test_cold_runs_add_up_whole_epochs_each_after_eviction(small_data):
    ds = MmapShardDataset(small_data, batch_size=8)
    n = len(ds.index)
    result = measure_cold(ds, ds.index.paths, repeat=3, label="cold")
    assert result.samples == 3 * n                 # nothing discarded, three epochs
    assert len(result.runs_samples_per_s) == 3 and len(result.runs_resident_before) == 3
    more = measure_cold(lambda: MmapShardDataset(small_data, batch_size=8), ds.index.paths, repeat=2,
                        min_samples=4 * n + 1)
    assert more.samples == 5 * n and len(more.runs_samples_per_s) == 5   # epochs added until min_samples


def test_bad_arguments_are_refused(small_data):
    ds = MmapShardDataset(small_data, batch_size=8)
    with pytest.raises(ValueError, match="needs the loader's files"):
        measure_cold(ds, [])
    with pytest.raises(ValueError, match="repeat"):
        measure_cold(ds, ds.index.paths, repeat=0)
    with pytest.raises(ValueError, match="min_seconds"):
        measure_warm(ds, min_seconds=0)
