"""The members of a tar shard, with the end-of-archive check ``tarfile`` does not make.

``tarfile`` ends *silently* when a shard is cut at a member boundary or inside a header (it takes the cut for
the end of the archive), so a truncated shard would read as a shorter, valid one. :func:`tar_members`
therefore checks the bytes after the last member: the two zero blocks that end every tar must be there.
A local shard opened ``lazy`` gives :class:`MemberRef` data (read or mapped later) and is parsed once per
process (``mapped_blocks``' member cache); any other stream is read in stream mode through a
:class:`TailReader` that keeps the last bytes for the check.
"""
from __future__ import annotations

import os
import re
import tarfile
from typing import Any, Iterator

from .mapped_blocks import MemberRef, file_identity, known_members, remember_members
from .shard_errors import ShardReadError

END_OF_ARCHIVE = 2 * tarfile.BLOCKSIZE  # a tar ends with two zero blocks (then zero padding)
TAIL_KEPT = 1 << 16                      # bytes a stream keeps of what it read last (covers the end blocks)
_META = re.compile(r"__[^/]*__($|/)")    # webdataset's metadata members, skipped as its own reader does


class TailReader:
    """A read-only stream that counts the bytes read through it and keeps the last ``TAIL_KEPT`` of them, so
    the end of a shard read in stream mode can be checked after ``tarfile`` is done with it."""

    def __init__(self, raw: Any):
        self.raw, self.pos, self.tail = raw, 0, bytearray()

    def read(self, size: int = -1) -> bytes:
        """Read like the wrapped stream, remembering the tail."""
        data = self.raw.read() if size is None or size < 0 else self.raw.read(size)
        self.pos += len(data)
        self.tail += data
        if len(self.tail) > 2 * TAIL_KEPT:
            del self.tail[:-TAIL_KEPT]
        return data

    def rest_from(self, offset: int) -> bytes | None:
        """Every byte from ``offset`` to the end of the stream (reading what is left), or None if not kept."""
        while self.read(1 << 20):
            pass
        start = len(self.tail) - (self.pos - offset)
        return bytes(self.tail[start:]) if start >= 0 else None


def end_problem(rest: bytes | None, offset: int) -> str | None:
    """Why ``rest``, the bytes after the last member (at ``offset``), is not a proper end of archive (None if
    it is, or if they were not kept)."""
    if rest is None:
        return None
    if len(rest) < END_OF_ARCHIVE:
        return (f"ends at byte {offset + len(rest):,} without the end-of-archive blocks "
                f"(cut inside a header or between members)")
    if any(rest):
        return f"unreadable tar header at byte {offset:,}"
    return None


def tar_members(url: str, stream: Any, lazy: bool = False) -> Iterator[tuple[str, Any]]:
    """(member name, data) of every regular member; a ``lazy`` local shard gives :class:`MemberRef` data.

    Raises ``tarfile.ReadError`` (or ``ShardReadError``) for a member cut short, and ``ShardReadError`` when the
    archive ends without its end-of-archive blocks, which ``tarfile`` alone would take for a normal end.
    """
    if lazy and "://" not in url and getattr(stream, "seekable", lambda: False)():
        yield from _local_members(url, stream)
        return
    source = TailReader(stream)
    with tarfile.open(fileobj=source, mode="r|*") as tar:
        for info in tar:
            if info.isreg() and not _META.match(info.name):
                yield info.name, tar.extractfile(info).read()
            tar.members = []  # a stream of thousands of members: keep none
        problem = end_problem(source.rest_from(tar.offset), tar.offset)
    if problem:
        raise ShardReadError(problem)


def _local_members(url: str, stream: Any) -> Iterator[tuple[str, MemberRef]]:
    """A seekable local shard: members located from their headers, or from the cache when this very file was
    read through intact before (the next epoch parses no tar header)."""
    identity = file_identity(os.fstat(stream.fileno()))
    size = identity[0]
    cached = known_members(url, identity)
    if cached is not None:
        for name, offset, length in cached:
            yield name, MemberRef(url, offset, length)
        return
    listed = []
    with tarfile.open(fileobj=stream, mode="r:") as tar:
        for info in tar:
            if not info.isreg() or _META.match(info.name):
                continue
            if info.offset_data + info.size > size:
                raise tarfile.ReadError(f"member {info.name} runs past the end of the file")
            listed.append((info.name, info.offset_data, info.size))
            yield info.name, MemberRef(url, info.offset_data, info.size)
            tar.members = []
        rest = os.pread(stream.fileno(), size - tar.offset, tar.offset) if size >= tar.offset else b""
    problem = end_problem(rest, tar.offset)
    if problem:
        raise ShardReadError(problem)
    remember_members(url, identity, listed)
