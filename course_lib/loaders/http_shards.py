"""``serve_shards``: a real HTTP server on 127.0.0.1 for a folder of shards, in a subprocess."""
from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from data_gen.layout import WDS, format_dir, shard_glob

from .shard_errors import MissingShardError
from .shard_index import ShardExpectation, manifest_shards


@dataclass(frozen=True)
class ShardServer:
    """A running server: ``base_url`` serves ``directory``; ``urls`` are its ``shard_*.tar`` files."""

    directory: Path
    base_url: str
    urls: list[str]
    expected: dict[str, ShardExpectation]  # per shard file name: samples and bytes, from the manifest ({} without one)

    @property
    def counts(self) -> dict[str, int]:
        """Samples per shard file name, from the data_gen manifest ({} without one)."""
        return {name: e.samples for name, e in self.expected.items()}

    @property
    def pattern(self) -> str:
        """The shard URLs as one brace pattern, as WebDataset examples write them."""
        if not self.urls:
            return ""
        width = len(re.search(r"(\d+)\.tar$", self.urls[0]).group(1))
        last = len(self.urls) - 1
        return f"{self.base_url}/shard_{{{0:0{width}d}..{last:0{width}d}}}.tar"


@contextlib.contextmanager
def serve_shards(data_dir: str | Path, *, fmt: str = WDS, timeout: float = 10.0) -> Iterator[ShardServer]:
    """Serve ``data_dir``'s ``fmt`` shards (or a folder of shards) over HTTP on a free port; stop on exit.

    Runs ``python -m http.server`` bound to 127.0.0.1 on port 0 (the OS picks a free port, which the server
    prints), so nothing outside this machine can reach it.
    """
    directory = format_dir(data_dir, fmt)
    if not directory.is_dir():
        raise MissingShardError(f"{directory}: no such directory to serve")
    proc = subprocess.Popen([sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1",
                             "--directory", str(directory)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        port = _read_port(proc, timeout)
        base = f"http://127.0.0.1:{port}"
        urls = [f"{base}/{p.name}" for p in sorted(directory.glob(shard_glob(fmt)))]
        yield ShardServer(directory, base, urls, manifest_shards(directory.parent, directory.name))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()


def _read_port(proc: subprocess.Popen, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                raise RuntimeError(f"http.server exited with code {proc.returncode} before serving")
            continue
        match = re.search(r"port (\d+)", line)
        if match:
            return int(match.group(1))
    proc.kill()
    raise TimeoutError(f"http.server did not report its port within {timeout} s")
