"""Mixing pre-batched blocks: windows of ``window_blocks`` blocks, rows permuted, each batch one copy."""
from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch
from torch.utils.data import get_worker_info

from .item_sender import send_batch
from .mapped_blocks import LazyBlock
from .row_gather import gather_rows
from .worker_transport import RING_SLOTS, RingSet


def mix_blocks(blocks: Iterable[dict[str, Any]], window_blocks: int, batch_size: int, rng: np.random.Generator,
               partial: bool = True, ring: RingSet | None = None) -> Iterator[dict[str, torch.Tensor]]:
    """Batches drawn from windows of ``window_blocks`` blocks: each window's images are read (or copied) into
    one reused buffer, its rows permuted, and every batch gathered from it with one copy; leftovers carry
    into the next window. With ``ring`` (inside a DataLoader worker) each full batch is gathered straight
    into a reused shared-memory slot (``worker_transport``) instead of a new array."""
    window = BlockWindow(ring)
    held: list[dict[str, Any]] = []
    for block in blocks:
        held.append(block)
        if len(held) >= window_blocks:
            held = yield from window.emit(held, batch_size, rng)
    if held:
        rest = yield from window.emit(held, batch_size, rng)
        if rest and partial:
            yield {k: torch.from_numpy(np.asarray(v)) for k, v in rest[0].items()}


class MixBlocks:
    """Pipeline stage running :func:`mix_blocks` with the generator ``rng()`` returns when iteration starts
    (inside the worker that iterates). A plain object, so the pipeline pickles under any start method.
    Inside a DataLoader worker, batches go through ``worker_slots`` reused shared-memory slots (0: torch's
    default transport, a fresh shared-memory segment per tensor)."""

    def __init__(self, window_blocks: int, batch_size: int, rng: Callable[[], np.random.Generator],
                 partial: bool = True, worker_slots: int = RING_SLOTS):
        self.window_blocks, self.batch_size, self.rng, self.partial = window_blocks, batch_size, rng, partial
        self.ring = RingSet(worker_slots, capacity=batch_size)   # kept by a persistent worker across epochs

    def __call__(self, blocks: Iterable[dict[str, Any]]) -> Iterator[dict[str, torch.Tensor]]:
        ring = None
        if get_worker_info() is not None:
            ring = self.ring
            ring.restart()
        return mix_blocks(blocks, self.window_blocks, self.batch_size, self.rng(), self.partial, ring)


class BlockWindow:
    """One reusable buffer holding a window's images as ``(rows, row_bytes)`` uint8; batches gathered from it go
    into ``ring`` slots when one is given and free, else into new arrays."""

    def __init__(self, ring: RingSet | None = None):
        self.buffer = np.empty((0, 0), dtype=np.uint8)
        self.ring = ring

    def fill(self, held: list[dict[str, Any]]) -> "WindowRows":
        """The images of ``held`` blocks as rows: a local shard's blocks are read in place (memory-mapped, the
        kernel asked to read them ahead), others are copied into the reused buffer."""
        first = held[0]["x"]
        sample_shape, dtype = tuple(first.shape[1:]), np.dtype(first.dtype)
        row_bytes = int(np.prod(sample_shape)) * dtype.itemsize
        copied = sum(len(b["x"]) for b in held if not isinstance(b["x"], LazyBlock))
        if self.buffer.shape[0] < copied or self.buffer.shape[1] != row_bytes:
            self.buffer = np.empty((max(copied, self.buffer.shape[0]), row_bytes), dtype=np.uint8)
        parts, at = [], 0
        for b in held:
            n = len(b["x"])
            if isinstance(b["x"], LazyBlock):
                parts.append(b["x"].rows())
            else:
                self.buffer[at:at + n] = np.ascontiguousarray(b["x"]).reshape(n, -1).view(np.uint8)
                parts.append(self.buffer[at:at + n])
                at += n
        self.sample_shape, self.dtype = sample_shape, dtype
        return WindowRows(parts)

    def emit(self, held, batch_size, rng):
        """Yield the full batches of one permuted window; return the leftover rows as one small block."""
        rows = self.fill(held)
        y = np.concatenate([b["y"] for b in held])
        idx = np.concatenate([b["idx"] for b in held])
        order = rng.permutation(len(rows))
        full = len(rows) - len(rows) % batch_size
        for a in range(0, full, batch_size):
            yield self.batch(rows, y, idx, order[a:a + batch_size])
        return [self.gather(rows, y, idx, order[full:])] if full < len(rows) else []

    def batch(self, rows, y, idx, picked) -> dict[str, torch.Tensor]:
        """One batch of tensors: in a ring slot when there is one free, else in new arrays."""
        columns = {"x": (self.dtype, self.sample_shape), "y": (y.dtype, ()), "idx": (idx.dtype, ())}
        return send_batch(self.ring, len(picked), lambda out: {k: torch.from_numpy(v) for k, v in
                                                               self.gather(rows, y, idx, picked, out).items()}, columns)

    def gather(self, rows, y, idx, picked, out: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """The picked rows (sorted first: sequential copies) as one batch of arrays (``out``'s, when given)."""
        picked = np.sort(picked)
        n = len(picked)
        if out is None:
            out = {"x": np.empty((n, *self.sample_shape), dtype=self.dtype), "y": np.empty(n, y.dtype),
                   "idx": np.empty(n, idx.dtype)}
        rows.gather(picked, out["x"].reshape(n, -1).view(np.uint8))
        np.take(y, picked, out=out["y"])
        np.take(idx, picked, out=out["idx"])
        return out


class WindowRows:
    """A window's rows, block after block (each a ``(n, row_bytes)`` uint8 array, mapped or copied), numbered
    as if concatenated."""

    def __init__(self, parts: list[np.ndarray]):
        self.parts = parts
        self.starts = np.cumsum([0, *(len(p) for p in parts)])

    def __len__(self) -> int:
        return int(self.starts[-1])

    def gather(self, picked: np.ndarray, out: np.ndarray) -> np.ndarray:
        """``out[:] = rows[picked]`` for sorted ``picked``: one :func:`gather_rows` per block it touches."""
        cuts = np.searchsorted(picked, self.starts).tolist()
        for k, part in enumerate(self.parts):
            a, b = cuts[k], cuts[k + 1]
            if a < b:
                gather_rows(part, picked[a:b] - self.starts[k], out[a:b])
        return out
