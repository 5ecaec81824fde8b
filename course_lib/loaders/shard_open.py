"""Opening a shard: a local path, an http(s) URL, or a scheme registered in webdataset's ``gopen_schemes``
(``s3://``: see ``course_lib.distributed.s3_shards``). Every error names the URL.

HTTP goes through urllib3 (not curl, not ``urllib``): its ``Retry`` retries 5xx, 429 and connection errors
with bounded backoff and ``Retry-After``, and the :class:`ResumingStream` around the response resumes a body
cut short or reset with a ``Range`` request from the byte it reached (a re-read that skips those bytes when the
server ignores ``Range``). Retries are reported to ``on_retry`` (the pipeline's ``ErrorLog.retried``).
"""
from __future__ import annotations

import importlib
import inspect
import io
import os
import time
from typing import Any

import urllib3

from .resuming_stream import OnRetry, ResumingStream, skip_bytes
from .retry_policy import RetryPolicy
from .shard_errors import ShardReadError

READ_BUFFER = 1 << 20  # tarfile's stream mode reads 10 KiB at a time: serve those from a 1 MiB buffer
_POOLS: dict[int, urllib3.PoolManager] = {}   # one connection pool per process (workers get their own)


def open_shard(url: str, retry: RetryPolicy | None = None, on_retry: OnRetry | None = None):
    """A buffered stream for a local path, an http(s) URL or a registered scheme; errors name the URL.

    ``retry`` (default :class:`RetryPolicy()`) bounds the retries of remote reads; an opener that takes
    ``on_retry`` (``S3Opener``, ``CachedOpener``) gets it too.
    """
    retry = RetryPolicy() if retry is None else retry
    if url.startswith(("http://", "https://")):
        return io.BufferedReader(ResumingStream(url, HttpRange(url, retry, on_retry), retry, on_retry),
                                 buffer_size=READ_BUFFER)
    if "://" in url and not url.startswith("file://"):   # s3:// etc.: the opener registered with webdataset's gopen
        opener = importlib.import_module("webdataset.gopen").gopen_schemes.get(url.split("://", 1)[0])
        if opener is None:
            raise ShardReadError(f"{url}: no opener registered for this scheme (webdataset.gopen.gopen_schemes)")
        extra = {"on_retry": on_retry} if on_retry is not None and takes_on_retry(opener) else {}
        try:
            return opener(url, mode="rb", bufsize=READ_BUFFER, **extra)
        except ShardReadError:
            raise
        except Exception as e:  # noqa: BLE001 - name the URL whatever the client raised
            raise ShardReadError(f"{url}: {type(e).__name__}: {e}") from e
    try:
        return open(url, "rb", buffering=READ_BUFFER)
    except OSError as e:
        raise ShardReadError(f"{url}: {e.strerror}") from e


class HttpRange:
    """``open_at(position)`` for an HTTP shard: a GET (a ``Range`` GET past byte 0) with urllib3's retries."""

    def __init__(self, url: str, policy: RetryPolicy, on_retry: OnRetry | None):
        self.url, self.policy, self.on_retry = url, policy, on_retry
        self.length = self.validator = None

    def __call__(self, position: int) -> Any:
        headers = {}
        if position:
            headers["Range"] = f"bytes={position}-"
            if self.validator:
                headers["If-Range"] = self.validator
        response = self._get(headers)
        if position == 0:
            self.length = response.headers.get("Content-Length")
            self.validator = response.headers.get("ETag") or response.headers.get("Last-Modified")
            return response
        if response.status == 206:
            if not response.headers.get("Content-Range", "").startswith(f"bytes {position}-"):
                got = response.headers.get("Content-Range")
                raise ShardReadError(f"{self.url}: asked for bytes {position}-, got {got}")
            return response
        if response.headers.get("Content-Length") != self.length:     # not ignored: the shard changed meanwhile
            raise ShardReadError(f"{self.url}: changed while being read ({response.headers.get('Content-Length')} "
                                 f"bytes now, {self.length} before)")
        return skip_bytes(response, position, self.url)

    def _get(self, headers: dict[str, str]) -> Any:
        start = time.perf_counter()
        try:
            response = _pool().request("GET", self.url, headers=headers, preload_content=False, decode_content=False,
                                       retries=self.policy.urllib3_retry(), timeout=self.policy.timeout())
        except urllib3.exceptions.MaxRetryError as e:
            reason = e.reason
            if isinstance(reason, urllib3.exceptions.ResponseError):
                raise ShardReadError(f"{self.url}: gave up after {self.policy.attempts} attempts ({reason})") from e
            raise ShardReadError(f"{self.url}: cannot connect after {self.policy.attempts} attempts ({reason})") from e
        except urllib3.exceptions.HTTPError as e:
            raise ShardReadError(f"{self.url}: cannot connect ({e})") from e
        history = response.retries.history if response.retries is not None else ()
        if history and self.on_retry is not None:
            spent = (time.perf_counter() - start) / len(history)
            for h in history:
                what = f"HTTP {h.status}" if h.status else type(h.error).__name__
                self.on_retry(f"{self.url}: {what}, retried", spent)
        if response.status >= 400:
            response.release_conn()
            raise ShardReadError(f"{self.url}: HTTP {response.status} {response.reason}")
        return response


def _pool() -> urllib3.PoolManager:
    pid = os.getpid()
    if pid not in _POOLS:          # a forked worker never shares its parent's sockets
        _POOLS.clear()
        _POOLS[pid] = urllib3.PoolManager(num_pools=16, maxsize=4)
    return _POOLS[pid]


def takes_on_retry(opener: Any) -> bool:
    """Whether a ``gopen``-style opener accepts ``on_retry=`` (so its retries can be counted)."""
    try:
        return "on_retry" in inspect.signature(opener).parameters
    except (TypeError, ValueError):
        return False


def stream_size(url: str, stream: Any) -> int | None:
    """The shard's size in bytes: the file's size, or an HTTP response's Content-Length (None if not sent)."""
    if "://" not in url:
        return os.fstat(stream.fileno()).st_size
    try:  # an HTTP response says its length; other schemes' streams may not
        length = getattr(getattr(stream, "raw", None), "headers", {}).get("Content-Length")
        return int(length) if length is not None else None
    except (AttributeError, TypeError, ValueError):
        return None
