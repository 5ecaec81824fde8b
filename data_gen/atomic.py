"""Atomic file writes: write under a temporary name in the same folder, then rename.

Atomic against an interrupted run (Ctrl-C, a kill, an exception): the final name only ever holds a complete
file. Not fsync'ed by default: a power loss could still leave a torn shard, which the manifest's sha256 finds
on the next run or ``verify`` (and a re-run rewrites) - while fsync'ing every shard tied dataset generation
to the disk's write speed (the default 1.6 GB dataset: ~45 MB/s here, the page cache is ~40x faster)."""
from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path
from typing import BinaryIO, Iterator


@contextlib.contextmanager
def atomic_open(path: Path, *, durable: bool = False) -> Iterator[BinaryIO]:
    """Open ``path.tmp-<pid>`` for binary writing; on success rename it to ``path``, on error delete it.

    A reader (or a re-run) therefore never sees a file with its final name that is incomplete. ``durable``
    fsyncs the file before the rename (on disk, not only in the page cache, when the name appears).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Write ``data`` (a small file: a manifest, a resume state) to ``path`` atomically, fsync'ed by default."""
    with atomic_open(path, durable=durable) as f:
        f.write(data)


def sha256_file(path: Path, chunk: int = 8 << 20) -> str:
    """Hex sha256 of a file, read in 8 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
