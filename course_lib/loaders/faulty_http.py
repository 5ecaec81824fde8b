"""A fault-injecting HTTP server on 127.0.0.1: the faults object storage really has, seeded and counted.

It serves a folder of shards (with ``Range`` support, like an object store) or forwards every request to an
upstream server (moto's S3 API: ``distributed.s3_faults``), and fails a share of requests with 503 (some with
``Retry-After``) and breaks a share of bodies in the middle: the headers promise the whole length, then the
connection closes early (``cut``), is reset (``reset``, a TCP RST) or stalls past the client's read timeout
(``stall``), in exact shares on a seeded schedule. No URL gets more than ``max_in_a_row`` faults in a row,
so a reader that tries at least ``max_in_a_row + 1`` times always gets through; ``faults`` counts what was
injected, per kind.
"""
from __future__ import annotations

import contextlib
import email.utils
import http.client
import random
import re
import socket
import struct
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

# S3's body for its 503. botocore's standard mode backs off on it as on throttling: a random 0-1 s, doubling
# per retry (measured 0.1-1.0 s per retry here), however short the RetryPolicy's own backoff is
SLOW_DOWN = (b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>SlowDown</Code>"
             b"<Message>Please reduce your request rate.</Message></Error>")


@dataclass(frozen=True)
class Faults:
    """Which faults, how often: shares of requests, drawn from ``seed``."""

    fail_share: float = 0.2          # requests answered 503
    retry_after_share: float = 0.5   # of those, the share carrying ``Retry-After: retry_after``
    retry_after: int = 1             # seconds
    cut_share: float = 0.2           # bodies broken in the middle
    reset_share: float = 0.0         # of those, the share ended by a reset (RST) rather than a clean close
    stall_share: float = 0.0         # of those, the share that stalls ``stall_seconds`` before closing
    stall_seconds: float = 1.0
    ranges: bool = True              # answer ``Range`` requests (False: always the whole body, as http.server does)
    max_in_a_row: int = 2            # faults in a row for one URL, at most
    seed: int = 0


class FaultyServer:
    """A running server: ``base_url``; ``faults`` (a ``Counter`` of ``"503"``, ``"503 Retry-After"``, ``"cut"``,
    ``"reset"``, ``"stall"``)."""

    def __init__(self, faults: Faults, directory: Path | None = None, upstream: str | None = None):
        if (directory is None) == (upstream is None):
            raise ValueError("FaultyServer serves a directory or forwards to an upstream URL: give exactly one")
        self.plan, self.directory = faults, directory
        self.upstream = None if upstream is None else re.match(r"https?://([^/:]+):?(\d*)", upstream).groups()
        self.faults: Counter[str] = Counter()
        self.served: Counter[str] = Counter()        # e.g. "Range answered": resumptions served from a byte
        self.requests = 0
        self._rng, self._lock, self._in_a_row = random.Random(faults.seed), threading.Lock(), Counter()
        self._due = {kind: self._rng.random() for kind in ("503", "cut")}   # seeded phases of the two schedules
        self.httpd = _QuietServer(("127.0.0.1", 0), _handler(self))
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def decide(self, path: str, has_body: bool) -> str | None:
        """The fault for this request (None: serve it). Shares are kept exactly, not just on average: an
        accumulator per kind (started at a seeded phase) adds its share per request and injects a fault each
        time it passes 1. No path gets more than ``max_in_a_row`` faults in a row."""
        with self._lock:
            self.requests += 1
            fault = None
            self._due["503"] += self.plan.fail_share
            if has_body:
                self._due["cut"] += self.plan.cut_share
            if self._in_a_row[path] < self.plan.max_in_a_row:
                if self._due["503"] >= 1:
                    self._due["503"] -= 1
                    fault = "503 Retry-After" if self._rng.random() < self.plan.retry_after_share else "503"
                elif has_body and self._due["cut"] >= 1:
                    self._due["cut"] -= 1
                    draw = self._rng.random()
                    fault = ("reset" if draw < self.plan.reset_share else
                             "stall" if draw < self.plan.reset_share + self.plan.stall_share else "cut")
            self._in_a_row[path] = self._in_a_row[path] + 1 if fault else 0
            if fault:
                self.faults[fault] += 1
            return fault

    def count(self, what: str) -> None:
        """Count something the server did that is not a fault (``served``)."""
        with self._lock:
            self.served[what] += 1

    def cut_at(self, length: int) -> int:
        """Where to cut a body of ``length`` bytes: somewhere in its middle."""
        with self._lock:
            return int(length * (0.2 + 0.6 * self._rng.random()))

    @property
    def injected(self) -> int:
        """Faults injected so far, all kinds."""
        return sum(self.faults.values())

    def url(self, name: str) -> str:
        """The URL of ``name`` on this server."""
        return f"{self.base_url}/{name}"


class _QuietServer(ThreadingHTTPServer):
    """A client that hangs up (after a cut body, or dropping a kept-alive connection) is no server error."""

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


@contextlib.contextmanager
def serve_faulty(directory: str | Path | None = None, faults: Faults = Faults(), *,
                 upstream: str | None = None) -> Iterator[FaultyServer]:
    """Serve ``directory`` (or forward to ``upstream``) on 127.0.0.1 with ``faults`` injected; stopped on exit."""
    if directory is not None and not Path(directory).is_dir():
        raise FileNotFoundError(f"{directory}: no such directory to serve")
    server = FaultyServer(faults, None if directory is None else Path(directory), upstream)
    server.thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()


def _handler(server: FaultyServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:   # quiet: one line per request otherwise
            pass

        def do_GET(self) -> None:
            self._serve(body=True)

        def do_HEAD(self) -> None:
            self._serve(body=False)

        do_PUT = do_POST = do_DELETE = do_GET

        def _serve(self, body: bool) -> None:
            payload = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            fault = server.decide(self.path.split("?")[0], body and self.command == "GET")
            if fault and fault.startswith("503"):
                extra = {} if "Retry-After" not in fault else {   # HTTP's header, and the one botocore reads (ms)
                    "Retry-After": str(server.plan.retry_after),
                    "x-amz-retry-after": str(server.plan.retry_after * 1000)}
                return self._send(503, {"Content-Type": "application/xml", **extra}, SLOW_DOWN, body)
            status, headers, data = (self._upstream(payload) if server.upstream else self._file())
            if fault in ("cut", "reset", "stall") and len(data) > 1:
                return self._send(status, headers, data, body, cut_at=server.cut_at(len(data)), how=fault)
            self._send(status, headers, data, body)

        def _file(self) -> tuple[int, dict[str, str], bytes]:
            path = server.directory / self.path.split("?")[0].lstrip("/")
            if not path.is_file() or server.directory not in path.resolve().parents:
                return 404, {"Content-Type": "text/plain"}, b"not found"
            data, st = path.read_bytes(), path.stat()
            headers = {"Content-Type": "application/x-tar", "ETag": f'"{st.st_size}-{st.st_mtime_ns}"',
                       "Last-Modified": email.utils.formatdate(st.st_mtime, usegmt=True), "Accept-Ranges": "bytes"}
            match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
            validator = self.headers.get("If-Range", headers["ETag"])
            if match is None or not server.plan.ranges or validator != headers["ETag"]:
                return 200, headers, data
            server.count("Range answered")
            start, stop = int(match.group(1)), int(match.group(2) or len(data) - 1) + 1
            if start >= len(data):
                return 416, {"Content-Range": f"bytes */{len(data)}"}, b""
            headers["Content-Range"] = f"bytes {start}-{min(stop, len(data)) - 1}/{len(data)}"
            return 206, headers, data[start:stop]

        def _upstream(self, payload: bytes) -> tuple[int, dict[str, str], bytes]:
            host, port = server.upstream
            conn = http.client.HTTPConnection(host, int(port or 80), timeout=30)
            try:
                conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for key, value in self.headers.items():
                    if key.lower() not in ("connection", "content-length"):
                        conn.putheader(key, value)
                conn.putheader("Content-Length", str(len(payload)))
                conn.endheaders(payload)
                response = conn.getresponse()
                data = response.read()
                skip = {"connection", "transfer-encoding", "keep-alive"}
                if self.command != "HEAD":          # a HEAD's Content-Length is the object's: keep it
                    skip.add("content-length")
                return response.status, {k: v for k, v in response.getheaders() if k.lower() not in skip}, data
            finally:
                conn.close()

        def _send(self, status: int, headers: dict[str, str], data: bytes, body: bool,
                  cut_at: int | None = None, how: str = "cut") -> None:
            """Send a response; with ``cut_at``, promise all of ``data`` but send only its first ``cut_at`` bytes,
            then close the connection (``how``: ``cut`` closes, ``reset`` sends a RST, ``stall`` waits first)."""
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            if "Content-Length" not in headers and "content-length" not in headers:
                self.send_header("Content-Length", str(len(data)))
            if cut_at is not None:
                self.send_header("Connection", "close")
            self.end_headers()
            if body:
                self.wfile.write(data if cut_at is None else data[:cut_at])
            if cut_at is not None:
                self.wfile.flush()
                self.close_connection = True
                if how == "stall":          # the client's read timeout fires first
                    time.sleep(server.plan.stall_seconds)
                with contextlib.suppress(OSError):
                    if how == "reset":      # linger 0: close sends a RST, the client sees "connection reset"
                        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        self.connection.close()
                    else:
                        self.connection.shutdown(socket.SHUT_RDWR)

    return Handler
