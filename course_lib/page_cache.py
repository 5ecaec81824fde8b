"""The physical ceiling: how fast plain sequential reads of the shard files go (warm page cache)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Iterable


def read_files(paths: Iterable[Path], chunk: int = 8 << 20) -> tuple[int, float]:
    """Read every file sequentially in ``chunk``-byte pieces into one reused buffer; (bytes, seconds)."""
    buf = bytearray(chunk)
    total = 0
    started = time.perf_counter()
    for path in paths:
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(buf):
                total += n
    return total, time.perf_counter() - started


def page_cache_mb_per_s(paths: Iterable[Path], chunk: int = 8 << 20, repeat: int = 3) -> float:
    """Best MB/s of ``repeat`` sequential passes (the first pass also warms the cache)."""
    paths = list(paths)
    rates = []
    for _ in range(repeat):
        nbytes, seconds = read_files(paths, chunk)
        rates.append(nbytes / seconds / 1e6)
    return max(rates)
