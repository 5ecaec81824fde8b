"""Shards on an S3 API: a server on 127.0.0.1 (moto), uploads, and the ``s3://`` opener WebDataset reads through.

The URLs are the ones a learner uses against AWS S3, MinIO or Cloudflare R2 (``s3://bucket/shard_0000.tar``);
only :class:`S3Endpoint` changes: the endpoint URL and the credentials (or the standard ``AWS_*`` variables).
Every client here has short connect/read timeouts and a bounded retry policy (``RetryPolicy``: botocore's
``standard`` retry mode for 5xx, throttling and connection errors, at most ``attempts`` tries; s3fs's own retry
loop off), so an unreachable server is an error in seconds, never a hang. A body cut short or reset is resumed
from the byte reached (``ResumingStream``); every retry is reported to the pipeline (``ErrorLog.retries``).
"""
from __future__ import annotations

import contextlib
import functools
import importlib
import io
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator, Sequence

from ..loaders.resuming_stream import OnRetry, ResumingStream
from ..loaders.retry_policy import RetryPolicy
from ..loaders.shard_errors import ShardReadError

READ_BLOCK = 8 << 20  # bytes per ranged GET while streaming a shard


class ObjectStoreError(ShardReadError):
    """An object could not be listed, read or written; the message names the ``s3://`` URL and the endpoint."""


@dataclass(frozen=True)
class S3Endpoint:
    """Where an S3 API lives and how to sign requests: the only thing that differs between AWS, MinIO, R2 and here.

    ``endpoint_url=None`` means AWS itself. Timeouts are short and ``retry`` bounds botocore's attempts, so a
    dead endpoint fails in seconds instead of retrying for minutes.
    """

    endpoint_url: str | None
    key: str | None = None
    secret: str | None = None
    region: str = "us-east-1"
    connect_timeout: float = 2.0
    read_timeout: float = 10.0
    retry: RetryPolicy = RetryPolicy()

    @classmethod
    def from_env(cls) -> "S3Endpoint":
        """From the standard ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``."""
        return cls(os.environ.get("AWS_ENDPOINT_URL"), os.environ.get("AWS_ACCESS_KEY_ID"),
                   os.environ.get("AWS_SECRET_ACCESS_KEY"), os.environ.get("AWS_REGION", "us-east-1"))

    def env(self) -> dict[str, str]:
        """The same settings as environment variables, for a subprocess (torchrun) to pick up with :meth:`from_env`."""
        values = {"AWS_ENDPOINT_URL": self.endpoint_url, "AWS_ACCESS_KEY_ID": self.key,
                  "AWS_SECRET_ACCESS_KEY": self.secret, "AWS_REGION": self.region}
        return {k: v for k, v in values.items() if v is not None}

    def filesystem(self):
        """A fresh ``s3fs.S3FileSystem`` for this endpoint (not shared: each process builds its own)."""
        import s3fs

        client = {"region_name": self.region}
        if self.endpoint_url:
            client["endpoint_url"] = self.endpoint_url
        config = {**self.retry.botocore_config(), "connect_timeout": self.connect_timeout,
                  "read_timeout": self.read_timeout}
        fs = s3fs.S3FileSystem(key=self.key, secret=self.secret, client_kwargs=client, skip_instance_cache=True,
                               config_kwargs=config)
        fs.retries = 1        # s3fs's own retry loop (uncounted, 5 tries) off: botocore's policy is the one
        return fs

    def describe(self) -> str:
        """``endpoint http://127.0.0.1:PORT`` or ``AWS`` (never the secret)."""
        return f"endpoint {self.endpoint_url}" if self.endpoint_url else "AWS"


@dataclass
class S3Opener:
    """``opener(url, mode="rb", bufsize=...)``: WebDataset's ``gopen`` protocol for ``s3://`` URLs.

    The ``s3fs`` filesystem is built lazily in each process (DataLoader workers and torchrun ranks get their
    own: a client's event loop does not survive a fork). Errors are :class:`ObjectStoreError` naming the URL.
    The stream resumes a cut or reset body at the byte reached; botocore's retries (read from each response's
    ``RetryAttempts``) and the resumptions are reported to ``on_retry``.
    """

    endpoint: S3Endpoint
    block_size: int = READ_BLOCK
    _fs: Any = field(default=None, repr=False)
    _pid: int = field(default=-1, repr=False)
    _on_retry: Any = field(default=None, repr=False)

    @property
    def fs(self):
        """This process's filesystem client."""
        if self._fs is None or self._pid != os.getpid():
            self._fs, self._pid = self.endpoint.filesystem(), os.getpid()
            self._fs.connect()
            self._fs.s3.meta.events.register("before-call.s3", _start_clock)
            self._fs.s3.meta.events.register("after-call.s3", self._count_retries)
        return self._fs

    def __call__(self, url: str, mode: str = "rb", bufsize: int = READ_BLOCK,
                 on_retry: OnRetry | None = None) -> BinaryIO:
        if mode != "rb":
            raise ValueError(f"{url}: shards are opened for reading only, not {mode!r}")
        self._on_retry = (url, on_retry)   # this process reads one shard at a time: its botocore retries go here
        first = self._open_at(url, 0)
        stream = ResumingStream(url, functools.partial(self._open_at, url), self.endpoint.retry, on_retry, first)
        return io.BufferedReader(stream, buffer_size=max(bufsize, io.DEFAULT_BUFFER_SIZE))

    def _open_at(self, url: str, position: int) -> BinaryIO:
        try:
            f = self.fs.open(_key(url), "rb", block_size=self.block_size)
            f.seek(position)
            return f
        except Exception as e:  # noqa: BLE001 - every failure becomes one error that names the URL
            raise object_store_error(url, self.endpoint, e) from e

    def _count_retries(self, parsed: dict | None = None, model: Any = None, context: dict | None = None,
                       **kwargs: Any) -> None:
        """botocore's ``after-call`` event: report the call's ``RetryAttempts`` (and its time) to the shard's sink."""
        attempts = ((parsed or {}).get("ResponseMetadata") or {}).get("RetryAttempts", 0)
        url, on_retry = self._on_retry or (None, None)
        if attempts and on_retry is not None:
            spent = time.perf_counter() - (context or {}).get(_CLOCK, time.perf_counter())
            for _ in range(attempts):
                on_retry(f"{url}: S3 {getattr(model, 'name', 'request')} retried by botocore", spent / attempts)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_fs": None, "_pid": -1, "_on_retry": None}


_CLOCK = "course_lib_start"


def _start_clock(context: dict | None = None, **kwargs: Any) -> None:
    """botocore's ``before-call`` event: note when the call started (its retries are timed from here)."""
    if context is not None:
        context[_CLOCK] = time.perf_counter()


def object_store_error(url: str, endpoint: S3Endpoint, exn: BaseException) -> ObjectStoreError:
    """One clear message for a failed object-store call: the URL, what went wrong, and where the server was."""
    if isinstance(exn, ObjectStoreError):
        return exn
    text = str(exn) or type(exn).__name__
    if isinstance(exn, FileNotFoundError):
        what = "no such bucket" if "bucket does not exist" in text.lower() else "no such key"
    elif isinstance(exn, PermissionError):
        what = "access denied (check the credentials)"
    elif "connect" in text.lower() or "timeout" in type(exn).__name__.lower():
        what = "cannot reach the server"
    else:
        what = type(exn).__name__
    return ObjectStoreError(f"{url}: {what} ({text}) at {endpoint.describe()}")


def _key(url: str) -> str:
    if not url.startswith("s3://"):
        raise ValueError(f"{url}: not an s3:// URL")
    return url[len("s3://"):]


def _gopen_schemes() -> dict[str, Callable]:
    # ``webdataset.gopen`` the attribute is the function; the module is reached by its path
    return importlib.import_module("webdataset.gopen").gopen_schemes


@contextlib.contextmanager
def s3_scheme(opener: Callable[..., BinaryIO]) -> Iterator[Callable[..., BinaryIO]]:
    """Register ``opener`` for ``s3://`` URLs (WebDataset's ``gopen`` and ``make_webdataset``); restore on exit.

    DataLoader workers forked inside the block inherit the registration.
    """
    schemes = _gopen_schemes()
    previous = schemes.get("s3")
    schemes["s3"] = opener
    try:
        yield opener
    finally:
        if previous is None:
            schemes.pop("s3", None)
        else:
            schemes["s3"] = previous


def register_s3(endpoint: S3Endpoint) -> S3Opener:
    """Register an :class:`S3Opener` for ``endpoint`` for the rest of this process (what the torchrun script does)."""
    opener = S3Opener(endpoint)
    _gopen_schemes()["s3"] = opener
    return opener


@dataclass(frozen=True)
class S3Server:
    """A running S3 API server: its endpoint (with throw-away credentials) and the bucket the course created."""

    endpoint: S3Endpoint
    bucket: str

    def url(self, name: str) -> str:
        """``s3://bucket/name``."""
        return f"s3://{self.bucket}/{name}"


@contextlib.contextmanager
def s3_server(bucket: str = "course-shards", *, timeout: float = 10.0) -> Iterator[S3Server]:
    """Start moto's S3 API server on 127.0.0.1 on a free port with ``bucket`` created; always stopped on exit.

    The server runs in a thread of this process; nothing outside the machine can reach it (loopback only). On
    exit the bucket and its objects are deleted (moto keeps buckets in process memory, shared by every server
    in the process), then the server stops.
    """
    from moto.server import ThreadedMotoServer

    if len(bucket) < 3:
        raise ValueError(f"bucket name {bucket!r}: S3 bucket names have 3 to 63 characters")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)   # one log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    fs = None
    try:
        host, port = server.get_host_and_port()
        endpoint = S3Endpoint(f"http://{host}:{port}", key="course-key", secret="course-secret",
                              connect_timeout=min(2.0, timeout), read_timeout=timeout)
        fs = endpoint.filesystem()
        fs.call_s3("create_bucket", Bucket=bucket)   # us-east-1: no LocationConstraint (another region is refused)
        yield S3Server(endpoint, bucket)
    finally:
        try:
            if fs is not None:
                _delete_bucket(fs, bucket)
        finally:
            server.stop()


def _delete_bucket(fs, bucket: str) -> None:
    with contextlib.suppress(Exception):  # best effort: the server stops next whatever happens here
        keys = fs.find(bucket)
        if keys:
            fs.rm(keys)
        fs.call_s3("delete_bucket", Bucket=bucket)


def upload_shards(server: S3Server | S3Endpoint, files: Sequence[str | Path], bucket: str | None = None,
                  prefix: str = "") -> list[str]:
    """Upload local shard files; returns their ``s3://bucket/prefix/name`` URLs in the same order."""
    endpoint = server.endpoint if isinstance(server, S3Server) else server
    bucket = bucket or getattr(server, "bucket", None)
    if not bucket:
        raise ValueError("upload_shards needs a bucket")
    fs = endpoint.filesystem()
    urls = []
    for path in map(Path, files):
        url = f"s3://{bucket}/{prefix.strip('/') + '/' if prefix.strip('/') else ''}{path.name}"
        try:
            fs.put_file(str(path), _key(url))
        except Exception as e:  # noqa: BLE001
            raise object_store_error(url, endpoint, e) from e
        urls.append(url)
    return urls


def brace_pattern(urls: Sequence[str]) -> str:
    """``s3://bucket/shard_{0000..0003}.tar`` for consecutive numbered shard URLs (as WebDataset examples write)."""
    import re

    first, last = (re.match(r"(.*shard_)(\d+)(\.tar)$", u) for u in (urls[0], urls[-1]))
    if not first or not last or len(urls) != int(last.group(2)) - int(first.group(2)) + 1:
        raise ValueError(f"not a consecutive run of shard_NNNN.tar URLs: {urls[0]} ... {urls[-1]}")
    return f"{first.group(1)}{{{first.group(2)}..{last.group(2)}}}{first.group(3)}"
