"""Planning an epoch as pure integer arithmetic: no file is opened here.

(seed, epoch) -> the *epoch order* of every sample, the same for any ``world_size`` and ``num_workers``
(:func:`epoch_order`) -> dealt to ranks in rounds of ``world_size`` pieces of ``batch_size`` samples
(:func:`deal`: piece ``r`` of each round to rank ``r``, the last round split evenly) -> the rank's stream cut
into units dealt round-robin to DataLoader workers (:meth:`EpochPlan.worker_units`).

So interleaving the ranks' batches in rank order (batch 0 of rank 0, of rank 1, ..., then batch 1 of each)
gives back the epoch order for every ``world_size``; and because worker ``w`` gets units ``w, w + W, ...`` and
the DataLoader returns worker results round-robin, a rank yields its stream in the same order for any number
of workers. Resuming in the same topology is one number (samples of the rank stream consumed); on another
topology, the positions of the epoch order already delivered (``done``, see resume_position.py).

Shuffle modes:
  ``none``   file order.
  ``block``  the order of contiguous blocks (``block_size`` samples, never crossing a shard) is permuted and cut
             into ``streams`` equal spans; each span's samples are permuted within windows of about
             ``window_blocks`` blocks (equal windows per span, 2/3 to 4/3 of it), in runs of ``run_length``
             consecutive samples; the spans' pieces are interleaved: rank ``r`` of ``world_size`` (dividing
             ``streams``) reads only spans ``r, r + W, ...``, about ``1/world_size`` of the blocks, whatever the
             world size (README: Elastic determinism).
  ``sample`` a full random permutation of every sample (the seed chapter's pattern): random reads.
"""
from __future__ import annotations

from typing import Callable, Iterator, Sequence

import numpy as np

from .keyed_random import keyed_rng
from .runtime import check_positive

SHUFFLE_MODES = ("none", "block", "sample")
STREAMS = 8      # spans interleaved in block mode: rank locality for every world_size dividing it (1, 2, 4, 8)
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


def epoch_order(shard_sizes: Sequence[int], *, block_size: int = 256, shuffle: str = "block", seed: int = 0,
                epoch: int = 0, window_blocks: int = 16, run_length: int = 1, piece: int = 1,
                streams: int = STREAMS) -> np.ndarray:
    """Every global sample id once, in the epoch's order: a function of the data, seed, epoch and the shuffle
    and batch settings only (``piece``: samples a rank takes at a time, the batch size or 1)."""
    total = int(sum(shard_sizes))
    if shuffle == "sample":
        return sort_pieces(keyed_rng(seed, epoch).permutation(total), piece)
    if shuffle == "none":
        return np.arange(total, dtype=np.int64)
    blocks = block_table(shard_sizes, block_size)
    blocks = blocks[keyed_rng(seed, epoch).permutation(len(blocks))]
    ids = np.concatenate([np.arange(a, b, dtype=np.int64) for a, b in blocks])
    window, cum = block_size * window_blocks, np.concatenate([[0], np.cumsum(blocks[:, 1] - blocks[:, 0])])
    bounds = span_bounds(total, piece, streams)     # windows restart at each span: no window spans two ranks
    parts = [_mix_window(ids[a:b], cum, a, run_length, keyed_rng(seed, epoch, WINDOW_SALT, a))
             for start, stop in zip(bounds, bounds[1:]) for a, b in _windows(start, stop, window)]
    return sort_pieces(interleave_spans(np.concatenate(parts), piece, streams), piece)


def _windows(start: int, stop: int, window: int) -> list[tuple[int, int]]:
    """``[start, stop)`` cut into equal windows as close to ``window`` samples as can be (between 2/3 and 4/3 of
    it, or the whole span when shorter): a span of 20 blocks is one window of 20, not 16 and a 4-block window whose
    batches would mix only 4 blocks."""
    n = max(1, round((stop - start) / window))
    edges = [start + k * (stop - start) // n for k in range(n + 1)]
    return list(zip(edges, edges[1:]))


def sort_pieces(ids: np.ndarray, piece: int) -> np.ndarray:
    """Each piece's ids ascending: a batch is read in file order with one copy, and that *is* the epoch order
    (so the ranks' batches in rank order give it back exactly, whatever the world size)."""
    out = ids.copy()
    full = len(ids) - len(ids) % piece
    out[:full] = np.sort(out[:full].reshape(-1, piece), axis=1).ravel()
    out[full:] = np.sort(out[full:])
    return out


def _mix_window(ids: np.ndarray, cum: np.ndarray, a: int, run_length: int, rng: np.random.Generator) -> np.ndarray:
    """The window of ids starting at position ``a`` of the block sequence, permuted in runs of ``run_length``
    (a run never crosses a block boundary; ``cum``: where each block starts)."""
    if run_length == 1:
        return ids[rng.permutation(len(ids))]
    runs = np.split(ids, _run_starts(cum, a, a + len(ids), run_length))
    return np.concatenate([runs[k] for k in rng.permutation(len(runs))])


def _run_starts(cum: np.ndarray, a: int, b: int, run_length: int) -> np.ndarray:
    """Where runs begin in the window ``[a, b)`` of the block sequence, relative to ``a``: every
    ``run_length`` samples, restarted at each block."""
    first, last = int(np.searchsorted(cum, a, side="right")) - 1, int(np.searchsorted(cum, b, side="left"))
    cuts = [c for k in range(first, last)
            for c in range(max(a, cum[k]) - a, min(b, cum[k + 1]) - a, run_length)]
    return np.array(cuts[1:], dtype=np.int64)


def span_layout(length: int, piece: int, streams: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``streams`` spans of a sequence of ``length``: where each contiguous range begins, in pieces (and the
    piece count after the last), and which span each range is. Counts differ by at most one; the longer spans are
    ``0, 1, ...`` and the last range (holding the one short piece) is the last span of the last round, so that
    short piece is the last of the interleaved order and every other piece keeps its place on the batch grid."""
    per, extra = divmod(-(-length // piece), streams)
    span = (np.arange(streams) + extra) % streams
    firsts = np.concatenate([[0], np.cumsum(per + (span < extra))]).astype(np.int64)
    return firsts, span


def span_bounds(length: int, piece: int, streams: int) -> list[int]:
    """Where each contiguous range of :func:`span_layout` begins in samples (and the last ends)."""
    return [min(int(f) * piece, length) for f in span_layout(length, piece, streams)[0]]


def interleave_spans(ids: np.ndarray, piece: int, streams: int) -> np.ndarray:
    """``ids`` cut into ``streams`` spans (:func:`span_layout`), then taken one ``piece`` from each span in
    turn: piece ``g`` of the result comes from span ``g % streams``."""
    firsts, span = span_layout(len(ids), piece, streams)
    piece_of = np.arange(len(ids)) // piece                        # which piece each position is in
    part = np.searchsorted(firsts, piece_of, side="right") - 1
    key = (piece_of - firsts[part]) * streams + span[part]         # (round, span): the interleaved order
    return ids[np.argsort(key, kind="stable")]


def deal(length: int, piece: int, rank: int, world_size: int, drop_last: bool) -> np.ndarray:
    """The positions ``[0, length)`` of a sequence that ``rank`` reads, in order: rounds of ``world_size``
    pieces of ``piece`` (piece ``r`` to rank ``r``), then the last, shorter round split into ``world_size``
    consecutive parts differing by at most one. ``drop_last`` first drops the last ``length % world_size``
    positions, so every rank gets the same count."""
    kept = length - length % world_size if drop_last else length
    rounds = kept // (world_size * piece)
    full = (np.arange(rounds)[:, None] * (world_size * piece) + rank * piece + np.arange(piece)).ravel()
    start, stop = _last_round_part(kept, piece, rank, world_size)
    return np.concatenate([full, np.arange(start, stop)]).astype(np.int64)


def _last_round_part(kept: int, piece: int, rank: int, world_size: int) -> tuple[int, int]:
    base = kept // (world_size * piece) * (world_size * piece)
    per, extra = divmod(kept - base, world_size)
    start = base + rank * per + min(rank, extra)
    return start, start + per + (rank < extra)


def rank_length(length: int, piece: int, rank: int, world_size: int, drop_last: bool) -> int:
    """``len(deal(...))`` without building it."""
    kept = length - length % world_size if drop_last else length
    start, stop = _last_round_part(kept, piece, rank, world_size)
    return kept // (world_size * piece) * piece + stop - start


def remaining_positions(total: int, done: Sequence[int] = ()) -> np.ndarray:
    """Positions ``[0, total)`` of the epoch order not in ``done`` (flat ``[start, stop, start, stop, ...]``)."""
    keep = np.ones(total, dtype=bool)
    for a, b in zip(done[0::2], done[1::2]):
        keep[a:b] = False
    return np.flatnonzero(keep)


class EpochPlan:
    """Which global sample ids one rank reads in one epoch, in which order.

    ``batch_size``: the piece a rank takes at a time (its batches; default 1, per sample). ``done``: positions
    of the epoch order delivered before a resume on another topology (flat ``[start, stop, ...]``)."""

    def __init__(self, shard_sizes: Sequence[int], *, block_size: int = 256, shuffle: str = "block",
                 seed: int = 0, epoch: int = 0, rank: int = 0, world_size: int = 1,
                 drop_last: bool = False, window_blocks: int = 16, run_length: int = 1,
                 batch_size: int | None = None, streams: int = STREAMS, done: Sequence[int] = ()):
        if shuffle not in SHUFFLE_MODES:
            raise ValueError(f"shuffle must be one of {SHUFFLE_MODES}, got {shuffle!r}")
        piece = batch_size or 1
        for name, value in [("block_size", block_size), ("world_size", world_size), ("window_blocks", window_blocks),
                            ("run_length", run_length), ("batch_size", piece), ("streams", streams)]:
            check_positive(name, value)
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
        self.shuffle, self.seed, self.epoch, self.run_length = shuffle, seed, epoch, run_length
        self.total = int(sum(shard_sizes))
        self.window = block_size * window_blocks
        self.order = epoch_order(shard_sizes, block_size=block_size, shuffle=shuffle, seed=seed, epoch=epoch,
                                 window_blocks=window_blocks, run_length=run_length, piece=piece, streams=streams)
        rest = remaining_positions(self.total, done)
        self.positions = rest[deal(len(rest), piece, rank, world_size, drop_last)]   # in the epoch order
        self._ids = self.order[self.positions]

    def __len__(self) -> int:
        return len(self._ids)

    def ids(self, begin: int, end: int) -> np.ndarray:
        """Global ids at rank-stream positions ``[begin, end)``."""
        return self._ids[max(begin, 0):max(end, 0)]

    def worker_chunks(self, worker: int = 0, num_workers: int = 1, unit: int = 1, resume: int = 0,
                      on_window: Callable[[int], None] | None = None) -> Iterator[np.ndarray]:
        """Per window of the rank stream, the ids ``worker`` reads, in stream order.

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
            yield self._ids[lo:hi][mine]

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
