"""How a shard read survives the faults object stores really have: what is retried, how often, how long to wait.

Transient: HTTP 5xx and 429 (urllib3's ``Retry`` for HTTP, botocore's ``standard`` retry mode for the S3 API),
connection resets, bodies cut before their Content-Length, and timeouts (:func:`is_transient`; the stream is
then resumed where it broke, ``resuming_stream``). Permanent (404, 403, no such bucket): no retry, the error
names the URL. Every wait is bounded: exponential from ``backoff``, at most ``backoff_max``, and a server's
``Retry-After`` is honoured up to ``retry_after_max``.
"""
from __future__ import annotations

import http.client
import socket
from dataclasses import dataclass

import urllib3

TRANSIENT_STATUS = (429, 500, 502, 503, 504)
# errors of the clients underneath (aiohttp, botocore) named rather than imported: loaders/ need neither
_TRANSIENT_NAMES = {"ClientPayloadError", "ServerDisconnectedError", "ResponseStreamingError", "IncompleteReadError",
                    "ReadTimeoutError", "AioReadTimeoutError", "ConnectTimeoutError", "EndpointConnectionError",
                    "ConnectionClosedError", "ProtocolError", "IncompleteRead"}


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries: ``attempts`` tries per request (the first included), waits ``backoff * 2**k`` capped
    at ``backoff_max`` seconds; short timeouts so a dead server is an error in seconds, never a hang."""

    attempts: int = 4
    backoff: float = 0.1
    backoff_max: float = 2.0
    retry_after_max: float = 10.0
    connect_timeout: float = 2.0
    read_timeout: float = 10.0

    def __post_init__(self):
        if self.attempts < 1:
            raise ValueError(f"RetryPolicy(attempts={self.attempts}): at least one attempt")

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1, 2, ...)."""
        return min(self.backoff * 2 ** (retry - 1), self.backoff_max)

    def urllib3_retry(self) -> urllib3.Retry:
        """The same policy as urllib3's ``Retry``: status, connection and read errors, ``Retry-After`` honoured."""
        return urllib3.Retry(total=self.attempts - 1, connect=self.attempts - 1, read=self.attempts - 1,
                             status=self.attempts - 1, other=0, redirect=3, status_forcelist=TRANSIENT_STATUS,
                             allowed_methods={"GET", "HEAD"}, backoff_factor=self.backoff,
                             backoff_max=self.backoff_max, respect_retry_after_header=True,
                             retry_after_max=int(self.retry_after_max), raise_on_status=True)

    def timeout(self) -> urllib3.Timeout:
        """urllib3's connect and read timeouts."""
        return urllib3.Timeout(connect=self.connect_timeout, read=self.read_timeout)

    def botocore_config(self) -> dict:
        """botocore ``Config`` keywords: ``standard`` mode retries 5xx, throttling (SlowDown, 429s' codes) and
        connection errors, up to ``attempts`` tries in all (botocore's ``total_max_attempts``; its
        ``max_attempts`` would count retries only, one try more)."""
        return {"retries": {"total_max_attempts": self.attempts, "mode": "standard"},
                "connect_timeout": self.connect_timeout, "read_timeout": self.read_timeout}


NO_RETRY = RetryPolicy(attempts=1)


def is_transient(exn: BaseException) -> bool:
    """A reset, a cut body or a timeout (on this exception or one it was raised from): worth resuming."""
    seen = set()
    while exn is not None and id(exn) not in seen:
        seen.add(id(exn))
        if isinstance(exn, (ConnectionError, TimeoutError, socket.timeout, http.client.IncompleteRead,
                            urllib3.exceptions.ProtocolError, urllib3.exceptions.TimeoutError)):
            return True
        if type(exn).__name__ in _TRANSIENT_NAMES:
            return True
        exn = exn.__cause__ or exn.__context__
    return False
