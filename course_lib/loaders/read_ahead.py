"""Read-ahead for memory-mapped shards: ask the kernel for the next window of the plan before it is gathered.

Gathering from a memory map on a cold page cache faults pages in one at a time, each fault a small read the
gather waits for. As each window of the plan begins, :class:`ReadAhead` calls ``madvise(MADV_WILLNEED)`` on
every run of records of the *next* window (the first window of an iteration asks for itself too), so the
kernel reads those ranges in large requests while the loader works on the current window. A run may skip up to
``GAP_RECORDS`` records: when world_size divides the plan's streams, the block a window's runs come from belongs
to one rank (README: Elastic determinism), so the few records advised in between are this rank's, read later in
the epoch.
"""
from __future__ import annotations

import mmap
from typing import Callable, Sequence

import numpy as np

from .shard_index import ShardHeader

GAP_RECORDS = 16  # a window's runs come from a few blocks: one call per block, not per run (each call ~10 us)


def advise_records(files: Sequence[mmap.mmap], headers: Sequence[ShardHeader], offsets: np.ndarray,
                   ids: np.ndarray, gap: int = GAP_RECORDS) -> int:
    """``madvise(MADV_WILLNEED)`` on the bytes of the records ``ids`` (global, any order), one call per run of
    records in one shard, a run allowed gaps of up to ``gap`` records. Returns the number of ranges advised."""
    if not len(ids):
        return 0
    ids = np.sort(ids)
    shard = np.searchsorted(offsets, ids, side="right") - 1
    local = ids - offsets[shard]
    cuts = (np.flatnonzero((np.diff(local) > gap + 1) | (np.diff(shard) != 0)) + 1).tolist()
    page = mmap.PAGESIZE
    for a, b in zip([0, *cuts], [*cuts, len(ids)]):
        h = headers[shard[a]]
        begin = h.data_offset + int(local[a]) * h.dtype.itemsize
        end = h.data_offset + (int(local[b - 1]) + 1) * h.dtype.itemsize
        aligned = begin - begin % page
        files[shard[a]].madvise(mmap.MADV_WILLNEED, aligned, end - aligned)
    return len(cuts) + 1


class ReadAhead:
    """The ``on_window`` hook of an epoch plan: as the window at rank position ``w`` begins, advise the window
    after it (and, the first time, ``w`` itself). ``advise(ids)`` is what asks the kernel (:func:`advise_records`
    on the dataset's maps)."""

    def __init__(self, ids: Callable[[int, int], np.ndarray], length: int, window: int,
                 advise: Callable[[np.ndarray], int]):
        self.ids, self.length, self.window, self.advise = ids, length, window, advise
        self.started = False

    def window_ids(self, w: int) -> np.ndarray:
        """The ids of the window at rank position ``w`` (none past the end)."""
        if not 0 <= w < self.length:
            return np.empty(0, dtype=np.int64)
        return self.ids(w, min(w + self.window, self.length))

    def __call__(self, w: int) -> int:
        """Advise the window after ``w`` (and ``w`` on the first call); returns the ranges advised."""
        ranges = 0
        if not self.started:
            self.started = True
            ranges += self.advise(self.window_ids(w))
        return ranges + self.advise(self.window_ids(w + self.window))
