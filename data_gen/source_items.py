"""What every source layout shares: the errors, the chunk of samples a shard is built from, and the walk over
items that skips (and counts) the bad ones."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np

ARRAY_MEMBERS = ("x", "y")
READ_CHUNK = 16 << 20  # bytes: how far a compressed member is skipped per read when resuming


class SourceError(ValueError):
    """A source that cannot be converted at all (missing, empty, inconsistent); the message names the path."""


class BadSample(ValueError):
    """One item that does not read (not an image, truncated, unreadable); the message starts with its file."""

    def __init__(self, file: str, reason: str):
        super().__init__(f"{file}: {reason}")
        self.file, self.reason = file, reason


def _good_items(read: Callable[[int], Any], name: Callable[[int], str], bad: dict[int, str], start: int,
                stop: int, count: int, skip_bad: bool, skipped: list[dict[str, str]]) -> Iterator[tuple[int, Any]]:
    """``(next position, read(pos))`` for up to ``count`` good items from ``start`` before ``stop``.

    An item known bad (``bad``) or whose read raises :class:`BadSample` is raised, or with ``skip_bad``
    appended to ``skipped`` (file and reason) and passed over: counted, never silently dropped."""
    taken = 0
    for pos in range(start, stop):
        if taken >= count:
            return
        try:
            if pos in bad:
                raise BadSample(name(pos), bad[pos])
            value = read(pos)
        except BadSample as e:
            if not skip_bad:
                raise
            skipped.append({"file": e.file, "reason": e.reason})
            continue
        taken += 1
        yield pos + 1, value


@dataclass
class Chunk:
    """The good samples found between source positions ``start`` and ``stop``, and the items skipped there."""

    start: int
    stop: int
    ys: np.ndarray
    xs: np.ndarray | None = None                    # (n, *shape) uint8 pixels, when asked for
    images: list[tuple[bytes, str]] | None = None   # the original encoded bytes and "jpg"/"png", when asked for
    skipped: list[dict[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ys)


def _hash_lines(lines) -> str:
    h = hashlib.sha256()
    for line in lines:
        h.update(line.encode() + b"\n")
    return h.hexdigest()
