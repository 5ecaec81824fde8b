"""Planning an epoch as pure integer arithmetic: no file is opened here.

(seed, epoch) -> an order of all samples (the *epoch stream*) -> a contiguous slice per rank
(the *rank stream*) -> units of ``unit`` samples dealt round-robin to DataLoader workers.

Because worker ``w`` gets units ``w, w + W, w + 2W, ...`` and torch's DataLoader returns worker
results round-robin, the loader yields the rank stream in the same order for any number of workers.
Resuming is then one number: how many samples of the rank stream were already consumed.

Shuffle modes:
  ``none``   blocks in file order.
  ``block``  the order of contiguous blocks (``block_size`` samples, never crossing a shard) is
             permuted, then samples are permuted within windows of ``window_blocks`` blocks. Reads stay
             within a few MB at a time; samples mix within a window, not across the whole epoch.
             ``run_length`` > 1 permutes runs of that many consecutive samples instead of single ones: a
             batch is then a few long copies instead of many 12 KB ones (faster), and neighbours on disk
             arrive together (less mixed); ``measure.shuffle_frontier`` measures both.
  ``sample`` a full random permutation of every sample (the seed chapter's pattern): the best mixing,
             but each sample is a random read.
"""
from __future__ import annotations

from typing import Callable, Iterator, Sequence

import numpy as np

from .keyed_random import keyed_rng
from .runtime import check_positive

SHUFFLE_MODES = ("none", "block", "sample")
WINDOW_SALT = 1  # keyed_rng(seed, epoch): block order or sample permutation; (seed, epoch, 1, a): window at a


def block_table(shard_sizes: Sequence[int], block_size: int) -> np.ndarray:
    """Global ``[start, stop)`` of every block, in file order; a block never crosses a shard."""
    rows = []
    offset = 0
    for size in shard_sizes:
        for start in range(0, size, block_size):
            rows.append((offset + start, offset + min(start + block_size, size)))
        offset += size
    return np.array(rows, dtype=np.int64).reshape(-1, 2)


def rank_bounds(total: int, rank: int, world_size: int, drop_last: bool) -> tuple[int, int]:
    """The ``[start, stop)`` positions of the epoch stream that ``rank`` reads.

    Without ``drop_last`` the ranks cover every sample once (counts differ by at most one); with it
    every rank gets ``total // world_size`` samples and the last ``total % world_size`` are skipped.
    """
    if drop_last:
        per = total // world_size
        return rank * per, (rank + 1) * per
    base, extra = divmod(total, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


class EpochPlan:
    """Which global sample ids one rank reads in one epoch, in which order."""

    def __init__(self, shard_sizes: Sequence[int], *, block_size: int = 256, shuffle: str = "block",
                 seed: int = 0, epoch: int = 0, rank: int = 0, world_size: int = 1,
                 drop_last: bool = False, window_blocks: int = 16, run_length: int = 1):
        if shuffle not in SHUFFLE_MODES:
            raise ValueError(f"shuffle must be one of {SHUFFLE_MODES}, got {shuffle!r}")
        for name, value in [("block_size", block_size), ("world_size", world_size), ("window_blocks", window_blocks),
                            ("run_length", run_length)]:
            check_positive(name, value)
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
        self.shuffle, self.seed, self.epoch, self.run_length = shuffle, seed, epoch, run_length
        self.total = int(sum(shard_sizes))
        self.start, self.stop = rank_bounds(self.total, rank, world_size, drop_last)
        self.window = block_size * window_blocks
        blocks = block_table(shard_sizes, block_size)
        if shuffle == "block":
            blocks = blocks[keyed_rng(seed, epoch).permutation(len(blocks))]
        self._blocks = blocks
        self._cum = np.concatenate([[0], np.cumsum(blocks[:, 1] - blocks[:, 0])])

    def __len__(self) -> int:
        return self.stop - self.start

    def ids(self, begin: int, end: int) -> np.ndarray:
        """Global ids at rank-stream positions ``[begin, end)`` (sample/block shuffle applied)."""
        out = [self._window_ids(w)[max(begin - w, 0):end - w]
               for w in range(begin - begin % self.window, end, self.window)]
        return np.concatenate(out) if out else np.empty(0, dtype=np.int64)

    def worker_chunks(self, worker: int = 0, num_workers: int = 1, unit: int = 1, resume: int = 0,
                      on_window: Callable[[int], None] | None = None) -> Iterator[np.ndarray]:
        """Per window, the ids ``worker`` reads, in stream order.

        The rank stream from position ``resume`` on is cut into units of ``unit`` samples; unit ``j``
        goes to worker ``j % num_workers``. ``on_window(w)`` is called as the window at rank position ``w``
        begins (a reader uses it to ask for the next window ahead of time).
        """
        if num_workers < 1 or not 0 <= worker < num_workers or unit < 1:
            raise ValueError(f"bad worker split: worker={worker}, num_workers={num_workers}, unit={unit}")
        if not 0 <= resume <= len(self):
            raise ValueError(f"resume position {resume} outside this rank's epoch of {len(self)} samples")
        for w in range(resume - resume % self.window, len(self), self.window):
            lo, hi = max(w, resume), min(w + self.window, len(self))
            if on_window is not None:
                on_window(w)
            mine = ((np.arange(lo, hi) - resume) // unit) % num_workers == worker
            yield self._window_ids(w)[lo - w:hi - w][mine]

    def worker_units(self, worker: int = 0, num_workers: int = 1, unit: int = 1, resume: int = 0,
                     on_window: Callable[[int], None] | None = None) -> Iterator[np.ndarray]:
        """The units (``unit`` ids each, the worker's last one maybe fewer) that ``worker`` reads, in order."""
        pending = np.empty(0, dtype=np.int64)
        for chunk in self.worker_chunks(worker, num_workers, unit, resume, on_window):
            pending = np.concatenate([pending, chunk])
            cut = len(pending) - len(pending) % unit
            for k in range(0, cut, unit):
                yield pending[k:k + unit]
            pending = pending[cut:]
        if len(pending):
            yield pending

    def _window_ids(self, w: int) -> np.ndarray:
        """Ids of the window starting at rank position ``w`` (shuffled within it in block mode)."""
        a, b = self.start + w, min(self.start + w + self.window, self.stop)
        if self.shuffle == "sample":
            perm = self._permutation()
            return perm[a:b]
        ids = self._positions_to_ids(a, b)
        if self.shuffle == "block":
            rng = keyed_rng(self.seed, self.epoch, WINDOW_SALT, a)
            if self.run_length == 1:
                return ids[rng.permutation(len(ids))]
            runs = np.split(ids, self._run_starts(a, b))      # runs never cross a block boundary
            ids = np.concatenate([runs[k] for k in rng.permutation(len(runs))])
        return ids

    def _run_starts(self, a: int, b: int) -> np.ndarray:
        """Where runs of ``run_length`` begin in the window ``[a, b)``: every run_length samples, restarted
        at each block, relative to ``a``."""
        first = int(np.searchsorted(self._cum, a, side="right")) - 1
        last = int(np.searchsorted(self._cum, b, side="left"))
        cuts = []
        for k in range(first, last):
            lo, hi = max(a, self._cum[k]), min(b, self._cum[k + 1])
            cuts.extend(range(lo - a, hi - a, self.run_length))
        return np.array(cuts[1:], dtype=np.int64)

    def _permutation(self) -> np.ndarray:
        if not hasattr(self, "_perm"):
            self._perm = keyed_rng(self.seed, self.epoch).permutation(self.total)
        return self._perm

    def _positions_to_ids(self, a: int, b: int) -> np.ndarray:
        if a >= b:
            return np.empty(0, dtype=np.int64)
        first = int(np.searchsorted(self._cum, a, side="right")) - 1
        last = int(np.searchsorted(self._cum, b, side="left"))
        parts = []
        for k in range(first, last):
            lo = max(a, self._cum[k]) - self._cum[k] + self._blocks[k, 0]
            hi = min(b, self._cum[k + 1]) - self._cum[k] + self._blocks[k, 0]
            parts.append(np.arange(lo, hi, dtype=np.int64))
        return np.concatenate(parts)
