"""Every loader pickles: DataLoader workers started with fork, spawn and forkserver each see every sample once.

(litdata switches a process to ``spawn``; Python 3.14 makes ``forkserver`` the Linux default.) Starting
workers with spawn costs seconds, so one DataLoader per start method runs all four loaders, each item tagged
with its loader's name, and every loader is checked on its own.
"""
from __future__ import annotations

import multiprocessing
import pickle

import pytest
from torch.utils.data import DataLoader, IterableDataset

from course_lib import MmapShardDataset, make_block_webdataset, make_webdataset
from course_lib.measure import arrival_order

LOADERS = {
    "mmap per sample": lambda d: MmapShardDataset(d, block_size=8, seed=1),
    "mmap batched": lambda d: MmapShardDataset(d, batch_size=8, block_size=8, seed=1),
    "make_webdataset": lambda d: make_webdataset(d, shuffle_buffer=10, seed=1),
    "make_block_webdataset": lambda d: make_block_webdataset(d, batch_size=8, window_blocks=2, seed=1),
}
METHODS = [m for m in ("fork", "spawn", "forkserver") if m in multiprocessing.get_all_start_methods()]


class Tagged(IterableDataset):
    """Each dataset's items in turn, as ``(name, item)``; each dataset splits itself across the workers."""

    def __init__(self, datasets: dict[str, IterableDataset]):
        self.datasets = datasets

    def __iter__(self):
        for name, dataset in self.datasets.items():
            for item in dataset:
                yield name, item


@pytest.mark.parametrize("method", METHODS)
def test_every_loader_gives_every_sample_once_under_each_start_method(small_data, method):
    datasets = {name: make(small_data) for name, make in LOADERS.items()}
    for dataset in datasets.values():
        pickle.loads(pickle.dumps(dataset))          # what spawn and forkserver do to it
    loader = DataLoader(Tagged(datasets), batch_size=None, num_workers=2, multiprocessing_context=method)
    got: dict[str, list] = {name: [] for name in datasets}
    for name, item in loader:
        got[name].append(item)
    for name, items in got.items():
        assert sorted(arrival_order(items).tolist()) == list(range(103)), f"{name} under {method}"
