"""Reading tar shards: open a local file or an HTTP URL, index a local tar without reading its data, and
count each shard's samples against the manifest so a truncated shard says how much it lost."""
from __future__ import annotations

import importlib
import io
import os
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
from webdataset.tariterators import group_by_keys

from .shard_errors import ErrorLog, ShardReadError

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


def seekable_tar_expander(src: Iterable[dict[str, Any]], handler: ErrorLog) -> Iterator[dict[str, Any]]:
    """Like webdataset's ``tar_file_expander`` (same records, same end-of-shard marker), but for a local
    file ``tarfile`` only indexes the members (mode ``"r:"`` seeks over the data) and each record's data is
    a :class:`MemberRef`: block data is later read with one ``preadv`` straight into the batch window,
    instead of tarfile's 10 KiB stream reads joined into a new bytes object. HTTP streams are not
    seekable: they keep the stream mode and carry the bytes."""
    for source in src:
        url, stream = source["url"], source["stream"]
        try:
            local = "://" not in url and getattr(stream, "seekable", lambda: False)()
            with tarfile.open(fileobj=stream, mode="r:" if local else "r|*") as tar:
                for info in tar:
                    if not info.isreg():
                        continue
                    if local:
                        if info.offset_data + info.size > os.fstat(stream.fileno()).st_size:
                            raise tarfile.ReadError(f"member {info.name} runs past the end of the file")
                        data = MemberRef(url, info.offset_data, info.size)
                    else:
                        data = tar.extractfile(info).read()
                    yield {"fname": info.name, "data": data, "__url__": url}
            yield {}
        except Exception as exn:  # noqa: BLE001 - the handler decides (raise naming the shard, or count)
            exn.args = exn.args + (url,)
            if handler(exn):
                continue
            return
        finally:
            stream.close()


def count_per_shard(files: Iterable[dict[str, Any]], expected: dict[str, int], errors: ErrorLog,
                    unit: str = "samples") -> Iterator[dict[str, Any]]:
    """Pass tar records through; at each end-of-shard marker compare the keys (``unit``) seen with ``expected``.

    A shard that ends early (truncated) is reported through ``errors`` with how many samples it lost,
    so a skipped tail is counted, not silently missing. Shards not in ``expected`` are not checked.
    """
    keys: set[str] = set()
    url = None

    def check() -> bool:
        want = expected.get(Path(str(url)).name) if url else None
        if want is None or len(keys) == want:
            return True
        return errors(ShardReadError(f"{url}: ended after {len(keys)} of {want} {unit} "
                                     f"({want - len(keys)} lost: truncated?)"))

    for record in files:
        if record == {} or record.get("__url__", url) != url:  # end marker, or a shard that ended in an error
            if url is not None and not check():
                return
            keys, url = set(), None
        if record != {}:
            url = record["__url__"]
            keys.add(record["fname"].split(".", 1)[0])
        yield record
    if url is not None:
        check()


class TarSamples:
    """Pipeline stage: opened shards -> tar members (``expander``) -> counted per shard -> grouped into samples.

    A plain object (no lambda), so a pipeline holding it pickles into DataLoader workers under any start method.
    """

    def __init__(self, expander: Callable[..., Iterator[dict[str, Any]]], expected: dict[str, int],
                 errors: ErrorLog, unit: str = "samples"):
        self.expander, self.expected, self.errors, self.unit = expander, expected, errors, unit

    def __call__(self, shards: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        members = count_per_shard(self.expander(shards, handler=self.errors), self.expected, self.errors, self.unit)
        return group_by_keys(members, handler=self.errors)
