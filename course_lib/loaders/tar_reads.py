"""Reading tar shards: open a local file or an HTTP URL, group members into samples, and account for every
shard: a truncated or damaged shard is an error naming it (``handler="raise"``) or a counted skip that says
how many samples were lost (``handler="warn"``), using the manifest's per-shard sample count and byte size.

``tarfile`` ends *silently* when a shard is cut at a member boundary or inside a header (it takes the cut for
the end of the archive), so a truncated shard would read as a shorter, valid one. Every shard is therefore
checked at its end: the end-of-archive blocks must be there (two zero blocks), and, when the manifest is
known, its size and its number of samples must match."""
from __future__ import annotations

import importlib
import io
import mmap
import os
import re
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from .shard_errors import ErrorLog, ShardReadError
from .shard_index import ShardExpectation

READ_BUFFER = 1 << 20  # tarfile's stream mode reads 10 KiB at a time: serve those from a 1 MiB buffer


def open_shard(url: str, timeout: float = 30.0):
    """A buffered stream for a local path, an http(s) URL or a scheme registered in webdataset's ``gopen_schemes``
    (``s3://``: see ``course_lib.distributed.s3_shards``); errors name the URL."""
    if url.startswith(("http://", "https://")):
        try:
            return io.BufferedReader(urllib.request.urlopen(url, timeout=timeout), buffer_size=READ_BUFFER)
        except urllib.error.HTTPError as e:
            raise ShardReadError(f"{url}: HTTP {e.code} {e.reason}") from e
        except urllib.error.URLError as e:
            raise ShardReadError(f"{url}: cannot connect ({e.reason})") from e
    if "://" in url and not url.startswith("file://"):   # s3:// etc.: the opener registered with webdataset's gopen
        opener = importlib.import_module("webdataset.gopen").gopen_schemes.get(url.split("://", 1)[0])
        if opener is None:
            raise ShardReadError(f"{url}: no opener registered for this scheme (webdataset.gopen.gopen_schemes)")
        try:
            return opener(url, mode="rb", bufsize=READ_BUFFER)
        except ShardReadError:
            raise
        except Exception as e:  # noqa: BLE001 - name the URL whatever the client raised
            raise ShardReadError(f"{url}: {type(e).__name__}: {e}") from e
    try:
        return open(url, "rb", buffering=READ_BUFFER)
    except OSError as e:
        raise ShardReadError(f"{url}: {e.strerror}") from e


@dataclass(frozen=True)
class MemberRef:
    """Where one tar member's bytes are (file, offset, size): read later, straight into a buffer."""

    path: str
    offset: int
    size: int

    def read(self, start: int = 0, size: int | None = None) -> bytes:
        """``size`` bytes of the member from ``start`` (default: to its end)."""
        size = self.size - start if size is None else size
        with open(self.path, "rb", buffering=0) as f:
            return os.pread(f.fileno(), size, self.offset + start)

    def readinto(self, buffer: memoryview, start: int = 0) -> None:
        """Fill ``buffer`` with the member's bytes from ``start``, in one ``preadv``."""
        with open(self.path, "rb", buffering=0) as f:
            got = os.preadv(f.fileno(), [buffer], self.offset + start)
        if got != len(buffer):
            raise ShardReadError(f"{self.path}: short read at byte {self.offset + start} ({got} of {len(buffer)})")


@dataclass(frozen=True)
class LazyBlock:
    """A block's images still on disk: shape and dtype known, bytes read on demand."""

    ref: MemberRef
    data_offset: int
    shape: tuple[int, ...]
    dtype: np.dtype

    def __len__(self) -> int:
        return self.shape[0]

    def readinto(self, rows: np.ndarray) -> None:
        """Fill ``rows`` (a ``(n, row_bytes)`` uint8 array) with this block's bytes."""
        self.ref.readinto(memoryview(rows.reshape(-1)), self.data_offset)

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


_MAPPED: dict[str, tuple[tuple[int, int, int], mmap.mmap, np.ndarray]] = {}


def mapped_shard(path: str) -> tuple[mmap.mmap, np.ndarray]:
    """A read-only memory map of a local shard and its bytes as a uint8 array, mapped once per process (mapped
    again when the file changed: size, modification time or inode)."""
    st = os.stat(path)
    identity = (st.st_size, st.st_mtime_ns, st.st_ino)
    cached = _MAPPED.get(path)
    if cached is None or cached[0] != identity:
        with open(path, "rb") as f:
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        cached = _MAPPED[path] = (identity, mapped, np.frombuffer(mapped, np.uint8))
    return cached[1], cached[2]


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

    def close(self) -> None:
        """Close the wrapped stream."""
        self.raw.close()


def stream_size(url: str, stream: Any) -> int | None:
    """The shard's size in bytes: the file's size, or an HTTP response's Content-Length (None if not sent)."""
    if "://" not in url:
        return os.fstat(stream.fileno()).st_size
    try:  # an HTTP response says its length; other schemes' streams may not
        length = getattr(getattr(stream, "raw", None), "headers", {}).get("Content-Length")
        return int(length) if length is not None else None
    except (AttributeError, TypeError, ValueError):
        return None


def _end_problem(rest: bytes | None, offset: int) -> str | None:
    """Why the bytes after the last member are not a proper end of archive (None if they are)."""
    if rest is None:
        return None
    if len(rest) < END_OF_ARCHIVE:
        return (f"ends at byte {offset + len(rest):,} without the end-of-archive blocks "
                f"(cut inside a header or between members)")
    if any(rest):
        return f"unreadable tar header at byte {offset:,}"
    return None


def _members(url: str, stream: Any, lazy: bool) -> Iterator[tuple[str, Any]]:
    """(member name, data) of every regular member; ``lazy`` local shards give :class:`MemberRef` data.

    Raises ``tarfile.ReadError`` (or ``ShardReadError``) for a member cut short, and ``ShardReadError`` when the
    archive ends without its end-of-archive blocks, which ``tarfile`` alone would take for a normal end.
    A local lazy shard read through intact keeps its member list for this process: read again unchanged (same
    size, modification time and inode), its tar headers are not parsed again.
    """
    local = lazy and "://" not in url and getattr(stream, "seekable", lambda: False)()
    source = stream if local else TailReader(stream)
    size = identity = None
    if local:
        st = os.fstat(stream.fileno())
        size, identity = st.st_size, (st.st_size, st.st_mtime_ns, st.st_ino)
        cached = _MEMBERS.get(url)
        if cached is not None and cached[0] == identity:      # this very file was read through before
            for name, offset, length in cached[1]:
                yield name, MemberRef(url, offset, length)
            return
    listed = []
    with tarfile.open(fileobj=source, mode="r:" if local else "r|*") as tar:
        for info in tar:
            if not info.isreg() or _META.match(info.name):
                continue
            if local:
                if info.offset_data + info.size > size:
                    raise tarfile.ReadError(f"member {info.name} runs past the end of the file")
                listed.append((info.name, info.offset_data, info.size))
                yield info.name, MemberRef(url, info.offset_data, info.size)
            else:
                yield info.name, tar.extractfile(info).read()
            tar.members = []  # a stream of thousands of members: keep none
        if local:
            rest = os.pread(stream.fileno(), size - tar.offset, tar.offset) if size >= tar.offset else b""
        else:
            rest = source.rest_from(tar.offset)
        problem = _end_problem(rest, tar.offset)
        if problem:
            raise ShardReadError(problem)
    if local:
        _MEMBERS[url] = (identity, listed)     # read through and intact: the next epoch skips the tar headers


_MEMBERS: dict[str, tuple[tuple[int, int, int], list[tuple[str, int, int]]]] = {}  # local lazy shard -> members


def _key(name: str) -> tuple[str | None, str]:
    """(sample key, member suffix) as webdataset splits them: ``000000042.x.npy`` -> (``000000042``, ``x.npy``)."""
    match = re.match(r"^((?:.*/|)[^.]+)[.]([^/]*)$", name)
    return (match.group(1), match.group(2).lower()) if match else (None, "")


class ShardSamples:
    """Pipeline stage: opened shards -> samples (``{"__key__", "__url__", member: data}``), with each shard
    accounted for.

    A shard that is cut short or damaged is reported once, at the point it is found: ``handler="raise"``
    raises a :class:`ShardReadError` naming it (a size that differs from the manifest's is found before any
    of its samples is read); ``"warn"`` delivers the shard's complete samples and records one skip with the
    number of samples lost (the manifest's count minus the samples delivered; a trailing sample missing a
    member is dropped and counted lost). ``expected`` maps shard file names to :class:`ShardExpectation`;
    ``per_item`` is how many samples one grouped item holds (a block), the last one of a shard possibly fewer.
    A plain object (no lambda), so a pipeline holding it pickles into DataLoader workers.
    """

    def __init__(self, expected: dict[str, ShardExpectation], errors: ErrorLog, members: set[str],
                 lazy: bool = False, per_item: int = 1):
        self.expected, self.errors, self.members = expected, errors, set(members)
        self.lazy, self.per_item = lazy, per_item

    def __call__(self, shards: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for source in shards:
            yield from self.shard(source["url"], source["stream"])

    def shard(self, url: str, stream: Any) -> Iterator[dict[str, Any]]:
        """The samples of one opened shard; closes it."""
        want = self.expected.get(url.rsplit("/", 1)[-1])
        items, problem, current = 0, None, None
        try:
            size = stream_size(url, stream)
            if want is not None and want.bytes is not None and size is not None and size != want.bytes:
                problem = f"{size:,} bytes, the manifest says {want.bytes:,}"
                if self.errors.mode == "raise":
                    raise ShardReadError(f"{url}: truncated or damaged: {problem}")
            for name, data in _members(url, stream, self.lazy):
                key, suffix = _key(name)
                if key is None:
                    continue
                if current is not None and key != current["__key__"]:
                    items += 1
                    yield current
                    current = None
                if current is None:
                    current = {"__key__": key, "__url__": url}
                if suffix in current:
                    raise ShardReadError(f"sample {key}: member {suffix} appears twice")
                current[suffix] = data
        except ShardReadError as e:
            if self.errors.mode == "raise" and str(e).startswith(url):
                raise
            problem = str(e)
        except Exception as e:  # noqa: BLE001 - tarfile's errors: reported below, naming the shard
            problem = f"{type(e).__name__}: {e}"
        finally:
            stream.close()
        if current is not None and (problem is None or self.members <= current.keys()):
            items += 1
            yield current            # complete, or (shard intact) left for the decoder to refuse and count
        samples = None if want is None else min(items * self.per_item, want.samples)
        if problem is None and want is not None and samples != want.samples:
            problem = f"{samples:,} of {want.samples:,} samples in the shard"
        if problem is not None:
            self._report(url, problem, want, items)

    def _report(self, url: str, problem: str, want: ShardExpectation | None, items: int) -> None:
        if want is None:
            lost = None
            tail = f"{items:,} {'samples' if self.per_item == 1 else 'blocks'} read; no manifest, so how many were lost is unknown"
        else:
            lost = want.samples - min(items * self.per_item, want.samples)
            tail = f"{lost:,} of {want.samples:,} samples lost"
        message = f"{url}: truncated or damaged ({problem}): {tail}"
        if self.errors.mode == "raise":
            raise ShardReadError(message)
        self.errors.skip(message, lost)
