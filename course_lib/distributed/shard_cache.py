"""A local shard cache: the first epoch downloads each remote shard and reads the copy; later epochs read only the copy.

It wraps any ``gopen``-style opener (``s3://``, ``http://``) and is itself one, so it registers the same way
(:func:`course_lib.distributed.s3_shards.s3_scheme`); the wrapped opener's retries are reported as its own.
A copy is written under a temporary name and renamed when complete: a crash or an error mid-download never
leaves a truncated shard in the cache. Hits and misses are counted
in files, so DataLoader workers and ranks on one machine count into the same place.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable

from ..loaders.resuming_stream import OnRetry
from ..loaders.shard_open import takes_on_retry

CHUNK = 8 << 20


@dataclass
class CachedOpener:
    """``opener(url, mode="rb", bufsize=...)`` that serves ``url`` from ``cache_dir`` once it has been read."""

    opener: Callable[..., BinaryIO]
    cache_dir: Path

    def __post_init__(self):
        self.cache_dir = Path(self.cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)

    def path_for(self, url: str) -> Path:
        """Where ``url``'s copy lives: a readable name plus a short hash of the full URL (no collisions)."""
        name = re.sub(r"[^A-Za-z0-9._-]", "_", url.rsplit("/", 1)[-1])
        return self.cache_dir / f"{hashlib.sha256(url.encode()).hexdigest()[:12]}-{name}"

    def __call__(self, url: str, mode: str = "rb", bufsize: int = CHUNK, on_retry: OnRetry | None = None) -> BinaryIO:
        path = self.path_for(url)
        if path.exists():
            self._count("hits")
            return open(path, "rb", buffering=CHUNK)
        self._count("misses")
        tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
        extra = {"on_retry": on_retry} if on_retry is not None and takes_on_retry(self.opener) else {}
        try:
            with self.opener(url, mode="rb", bufsize=bufsize, **extra) as remote, open(tmp, "wb") as local:
                shutil.copyfileobj(remote, local, CHUNK)
        except BaseException:
            tmp.unlink(missing_ok=True)   # no half copy left behind
            raise
        os.replace(tmp, path)      # complete copies only
        return open(path, "rb", buffering=CHUNK)

    def _count(self, kind: str) -> None:
        with open(self.cache_dir / f".{kind}", "a") as f:
            f.write("1\n")

    @property
    def hits(self) -> int:
        """Shards served from the cache (all processes)."""
        return _lines(self.cache_dir / ".hits")

    @property
    def misses(self) -> int:
        """Shards fetched from the remote store (all processes)."""
        return _lines(self.cache_dir / ".misses")

    @property
    def cached_bytes(self) -> int:
        """Bytes held in the cache."""
        return sum(p.stat().st_size for p in self.cache_dir.iterdir() if not p.name.startswith("."))

    def clear(self) -> None:
        """Delete every copy and the counters."""
        shutil.rmtree(self.cache_dir, ignore_errors=True)
        self.cache_dir.mkdir(parents=True, exist_ok=True)


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0
