"""Memory-mapped blocks of local tar shards: where a member's bytes are (:class:`MemberRef`), a pre-batched
block read in place (:class:`LazyBlock`), and the two per-process caches that let a later epoch skip work:
each shard's memory map (:func:`mapped_shard`) and each shard's member list (:func:`known_members`).

Both caches are keyed by the file's identity (size, modification time, inode): a shard replaced on disk is
mapped and parsed afresh.
"""
from __future__ import annotations

import mmap
import os
from dataclasses import dataclass

import numpy as np

from .shard_errors import ShardReadError

FileIdentity = tuple[int, int, int]            # (size, modification time in ns, inode)
Member = tuple[str, int, int]                  # (name, data offset, size)


def file_identity(st: os.stat_result) -> FileIdentity:
    """What tells one version of a file from another: size, modification time and inode."""
    return (st.st_size, st.st_mtime_ns, st.st_ino)


@dataclass(frozen=True)
class MemberRef:
    """Where one tar member's bytes are (file, offset, size): read later, or mapped."""

    path: str
    offset: int
    size: int

    def read(self, start: int = 0, size: int | None = None) -> bytes:
        """``size`` bytes of the member from ``start`` (default: to its end)."""
        size = self.size - start if size is None else size
        with open(self.path, "rb", buffering=0) as f:
            return os.pread(f.fileno(), size, self.offset + start)


@dataclass(frozen=True)
class LazyBlock:
    """A block's images still on disk: shape and dtype known, bytes mapped on demand."""

    ref: MemberRef
    data_offset: int
    shape: tuple[int, ...]
    dtype: np.dtype

    def __len__(self) -> int:
        return self.shape[0]

    def rows(self, advise: bool = True) -> np.ndarray:
        """This block's images as read-only ``(n, row_bytes)`` uint8 rows of the memory-mapped shard: gathering
        from them is the only copy. ``advise`` asks the kernel to start reading them (``MADV_WILLNEED``)."""
        start = self.ref.offset + self.data_offset
        nbytes = int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize
        mapped, rows = mapped_shard(self.ref.path)
        if start + nbytes > len(rows):
            raise ShardReadError(f"{self.ref.path}: block at byte {start:,} runs past the end of the file")
        if advise:
            aligned = start - start % mmap.PAGESIZE
            mapped.madvise(mmap.MADV_WILLNEED, aligned, start + nbytes - aligned)
        return rows[start:start + nbytes].reshape(self.shape[0], -1)


_MAPPED: dict[str, tuple[FileIdentity, mmap.mmap, np.ndarray]] = {}   # local shard -> its memory map
_MEMBERS: dict[str, tuple[FileIdentity, list[Member]]] = {}           # local shard read intact -> its members


def mapped_shard(path: str) -> tuple[mmap.mmap, np.ndarray]:
    """A read-only memory map of a local shard and its bytes as a uint8 array, mapped once per process (mapped
    again when the file changed: size, modification time or inode)."""
    identity = file_identity(os.stat(path))
    cached = _MAPPED.get(path)
    if cached is None or cached[0] != identity:
        with open(path, "rb") as f:
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        cached = _MAPPED[path] = (identity, mapped, np.frombuffer(mapped, np.uint8))
    return cached[1], cached[2]


def known_members(path: str, identity: FileIdentity) -> list[Member] | None:
    """The members of ``path`` if this very file (same identity) was read through intact before, else None."""
    cached = _MEMBERS.get(path)
    return cached[1] if cached is not None and cached[0] == identity else None


def remember_members(path: str, identity: FileIdentity, members: list[Member]) -> None:
    """Keep the member list of a shard read through intact, so the next epoch skips its tar headers."""
    _MEMBERS[path] = (identity, members)
