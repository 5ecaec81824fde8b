"""Mixing pre-batched blocks: windows of ``window_blocks`` blocks, rows permuted, each batch one copy."""
from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch

from .row_gather import gather_rows
from .tar_reads import LazyBlock


def mix_blocks(blocks: Iterable[dict[str, Any]], window_blocks: int, batch_size: int, rng: np.random.Generator,
               partial: bool = True) -> Iterator[dict[str, torch.Tensor]]:
    """Batches drawn from windows of ``window_blocks`` blocks: each window's images are read (or copied) into
    one reused buffer, its rows permuted, and every batch gathered from it with one copy; leftovers carry
    into the next window."""
    window = BlockWindow()
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
    (inside the worker that iterates). A plain object, so the pipeline pickles under any start method."""

    def __init__(self, window_blocks: int, batch_size: int, rng: Callable[[], np.random.Generator],
                 partial: bool = True):
        self.window_blocks, self.batch_size, self.rng, self.partial = window_blocks, batch_size, rng, partial

    def __call__(self, blocks: Iterable[dict[str, Any]]) -> Iterator[dict[str, torch.Tensor]]:
        return mix_blocks(blocks, self.window_blocks, self.batch_size, self.rng(), self.partial)


class BlockWindow:
    """One reusable buffer holding a window's images as ``(rows, row_bytes)`` uint8."""

    def __init__(self):
        self.buffer = np.empty((0, 0), dtype=np.uint8)

    def fill(self, held: list[dict[str, Any]]) -> np.ndarray:
        """Copy (or read) the images of ``held`` blocks into the buffer; returns the filled rows."""
        first = held[0]["x"]
        sample_shape, dtype = tuple(first.shape[1:]), np.dtype(first.dtype)
        row_bytes = int(np.prod(sample_shape)) * dtype.itemsize
        total = sum(len(b["x"]) for b in held)
        if self.buffer.shape[0] < total or self.buffer.shape[1] != row_bytes:
            self.buffer = np.empty((max(total, self.buffer.shape[0]), row_bytes), dtype=np.uint8)
        rows, at = self.buffer[:total], 0
        for b in held:
            n = len(b["x"])
            if isinstance(b["x"], LazyBlock):
                b["x"].readinto(rows[at:at + n])
            else:
                rows[at:at + n] = np.ascontiguousarray(b["x"]).reshape(n, -1).view(np.uint8)
            at += n
        self.sample_shape, self.dtype = sample_shape, dtype
        return rows

    def emit(self, held, batch_size, rng):
        """Yield the full batches of one permuted window; return the leftover rows as one small block."""
        rows = self.fill(held)
        y = np.concatenate([b["y"] for b in held])
        idx = np.concatenate([b["idx"] for b in held])
        order = rng.permutation(len(rows))
        full = len(rows) - len(rows) % batch_size
        for a in range(0, full, batch_size):
            yield {k: torch.from_numpy(v) for k, v in self.gather(rows, y, idx, order[a:a + batch_size]).items()}
        return [self.gather(rows, y, idx, order[full:])] if full < len(rows) else []

    def gather(self, rows, y, idx, picked):
        """The picked rows (sorted first: sequential copies) as one batch of arrays."""
        picked = np.sort(picked)
        x = np.empty((len(picked), rows.shape[1]), dtype=np.uint8)
        gather_rows(torch.from_numpy(rows), picked, torch.from_numpy(x))
        return {"x": x.view(self.dtype).reshape(len(picked), *self.sample_shape), "y": y[picked], "idx": idx[picked]}
