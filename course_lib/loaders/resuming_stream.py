"""A shard stream that resumes where it broke: on a reset, a cut body or a timeout it opens the shard again at
the byte it had reached (a ``Range`` request, a seek, or a re-read that skips what was delivered), so no byte
is delivered twice or lost; each resumption is reported to ``on_retry`` (the pipeline's :class:`ErrorLog`)."""
from __future__ import annotations

import contextlib
import io
import time
from typing import Any, Callable

from .retry_policy import RetryPolicy, is_transient
from .shard_errors import ShardReadError

OnRetry = Callable[[str, float], None]     # (message naming the URL, seconds the retry cost)


class ResumingStream(io.RawIOBase):
    """Raw stream over ``open_at(position)`` (which returns a readable stream starting at that byte).

    ``headers`` are the first response's (its Content-Length is the whole shard's). A transient error while
    reading is retried up to ``policy.attempts`` times in a row, waiting ``policy.delay(k)``; any other error,
    or one more transient error than that, is raised naming the URL and the byte.
    """

    def __init__(self, url: str, open_at: Callable[[int], Any], policy: RetryPolicy,
                 on_retry: OnRetry | None = None, first: Any = None):
        super().__init__()
        self.url, self.open_at, self.policy, self.on_retry = url, open_at, policy, on_retry
        self.position, self.retries = 0, 0
        self.raw = open_at(0) if first is None else first
        self.headers = getattr(self.raw, "headers", {})

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        """Fill ``buffer`` from the shard, resuming after transient errors."""
        failures = 0
        while True:
            try:
                got = self._read_some(buffer)
                self.position += got
                return got
            except Exception as e:  # noqa: BLE001 - sorted below: transient errors resume, others raise
                if isinstance(e, ShardReadError) or not is_transient(e):
                    raise
                failures += 1
                if failures >= self.policy.attempts:
                    raise ShardReadError(f"{self.url}: gave up at byte {self.position:,} after {failures} attempts "
                                         f"in a row ({type(e).__name__}: {e})") from e
                self._resume(e, failures)

    def _read_some(self, buffer) -> int:
        """Read what has arrived (``read1`` when the stream has it: the bytes received before a fault are
        delivered, so the resumption starts after them), at most ``len(buffer)``."""
        read1 = getattr(self.raw, "read1", None)
        if read1 is None:
            return self.raw.readinto(buffer) or 0
        data = read1(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def _resume(self, exn: BaseException, failures: int) -> None:
        """Wait, then open the shard again at the byte reached (that request's own retries report themselves)."""
        start = time.perf_counter()
        with contextlib.suppress(Exception):
            self.raw.close()
        time.sleep(self.policy.delay(failures))
        self.retries += 1
        if self.on_retry is not None:
            self.on_retry(f"{self.url}: {type(exn).__name__} at byte {self.position:,}, resumed there "
                          f"({str(exn)[:120]})", time.perf_counter() - start)
        self.raw = self.open_at(self.position)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.raw.close()
        super().close()


def skip_bytes(stream: Any, count: int, url: str) -> Any:
    """``stream`` advanced by ``count`` bytes (a seek when it can, else read and dropped); errors name the URL."""
    if count and getattr(stream, "seekable", lambda: False)():
        stream.seek(count)
        return stream
    left = count
    while left:
        chunk = stream.read(min(left, 1 << 20))
        if not chunk:
            raise ShardReadError(f"{url}: ended at byte {count - left:,} while skipping to byte {count:,} to resume")
        left -= len(chunk)
    return stream
