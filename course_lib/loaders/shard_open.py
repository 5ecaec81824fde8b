"""Opening a shard: a local path, an http(s) URL, or a scheme registered in webdataset's ``gopen_schemes``
(``s3://``: see ``course_lib.distributed.s3_shards``). Every error names the URL."""
from __future__ import annotations

import importlib
import io
import os
import urllib.error
import urllib.request
from typing import Any

from .shard_errors import ShardReadError

READ_BUFFER = 1 << 20  # tarfile's stream mode reads 10 KiB at a time: serve those from a 1 MiB buffer


def open_shard(url: str, timeout: float = 30.0):
    """A buffered stream for a local path, an http(s) URL or a registered scheme; errors name the URL."""
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


def stream_size(url: str, stream: Any) -> int | None:
    """The shard's size in bytes: the file's size, or an HTTP response's Content-Length (None if not sent)."""
    if "://" not in url:
        return os.fstat(stream.fileno()).st_size
    try:  # an HTTP response says its length; other schemes' streams may not
        length = getattr(getattr(stream, "raw", None), "headers", {}).get("Content-Length")
        return int(length) if length is not None else None
    except (AttributeError, TypeError, ValueError):
        return None
