"""The physical ceiling: how fast plain sequential reads of the shard files go (warm page cache)."""
from __future__ import annotations

import contextlib
import mmap
import os
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np


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


def evict(paths: Iterable[Path]) -> int:
    """Ask the OS to drop these files from the page cache (``posix_fadvise DONTNEED``; no root needed).

    The next read then goes to the block device, as after a fresh boot of this OS (on a virtual machine the
    host may still cache those blocks: "cold" means cold for this kernel). Advisory: pages mapped by a live
    process stay (:func:`resident_fraction` tells). Dirty pages (a file just written, e.g. by data_gen, which
    does not fsync each shard) cannot be dropped, so each file is flushed first. Returns the number of files advised.
    """
    count = 0
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)  # write back what is still dirty: DONTNEED only drops clean pages
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            count += 1
        finally:
            os.close(fd)
    return count


def resident_fraction(paths: Iterable[Path]) -> float:
    """Fraction of the files' pages now in the page cache (Linux ``mincore``; NaN where unavailable)."""
    import ctypes
    import ctypes.util
    import mmap

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    except OSError:
        return float("nan")
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    page = mmap.PAGESIZE
    resident = total = 0
    for path in paths:
        size = os.path.getsize(path)
        if size == 0:
            continue
        fd = os.open(path, os.O_RDONLY)
        try:
            addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
            if addr in (None, ctypes.c_void_p(-1).value):
                return float("nan")
            pages = (size + page - 1) // page
            vec = ctypes.create_string_buffer(pages)
            ok = libc.mincore(addr, size, vec) == 0
            libc.munmap(addr, size)
            if not ok:
                return float("nan")
            resident += int(np.count_nonzero(np.frombuffer(vec.raw, np.uint8) & 1))
            total += pages
        finally:
            os.close(fd)
    return resident / total if total else float("nan")


def memcpy_mb_per_s(nbytes: int = 64 << 20, repeat: int = 5) -> float:
    """Best MB/s of a warm buffer-to-buffer copy (``np.copyto``, one thread, destination touched first).

    A RAM-to-RAM copy of ``nbytes``: it is *not* a bound on the page-cache read, whose reused 8 MiB destination
    stays in the CPU cache; the ceiling of a loader gathering from memory maps is :func:`mapped_copy_mb_per_s`."""
    src = np.ones(nbytes, dtype=np.uint8)
    dst = np.ones_like(src)  # written once now, so no run pays first-touch page faults
    rates = []
    for _ in range(repeat):
        started = time.perf_counter()
        np.copyto(dst, src)
        rates.append(nbytes / (time.perf_counter() - started) / 1e6)
    return max(rates)


def copy_mapped(maps: Iterable[np.ndarray], batch_bytes: int) -> tuple[int, float]:
    """Copy each mapped file (a ``uint8`` view of its map), ``batch_bytes`` at a time, into one reused buffer;
    (bytes, seconds). The least an mmap loader does with cached data: one copy of each byte, nothing else."""
    dst = np.ones(batch_bytes, dtype=np.uint8)
    total = 0
    started = time.perf_counter()
    for src in maps:
        for a in range(0, len(src), batch_bytes):
            piece = src[a:a + batch_bytes]
            np.copyto(dst[:len(piece)], piece)
            total += len(piece)
    return total, time.perf_counter() - started


def cached_ceilings(paths: Iterable[Path], batch_bytes: int = 3 << 20, repeat: int = 3) -> dict[str, float]:
    """Best MB/s of two ways to take the cached files, passes interleaved so load hits both alike:
    ``read`` (:func:`read_files`, 8 MiB ``readinto``: a system call and a kernel copy per chunk) and
    ``mapped_copy`` (:func:`copy_mapped` over maps opened once, so after the first pass no page faults remain:
    one user-space copy per batch) — the ceiling of a loader that gathers batches from memory maps."""
    paths = list(paths)
    rates: dict[str, list[float]] = {"read": [], "mapped_copy": []}
    with contextlib.ExitStack() as stack:
        files = [stack.enter_context(open(p, "rb")) for p in paths]
        maps = [stack.enter_context(mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)) for f in files]
        views = [np.frombuffer(m, dtype=np.uint8) for m in maps]
        runs = {"read": lambda: read_files(paths), "mapped_copy": lambda: copy_mapped(views, batch_bytes)}
        for _ in range(repeat):
            for name, run in runs.items():
                nbytes, seconds = run()
                rates[name].append(nbytes / seconds / 1e6)
        views.clear()  # release the buffers before the maps close
    return {name: max(r) for name, r in rates.items()}


def cold_read_mb_per_s(paths: Iterable[Path], chunk: int = 8 << 20) -> tuple[float, float]:
    """One sequential pass right after :func:`evict`: (MB/s, the share that was still cached before it).
    The ceiling for a loader reading the same files from a cold cache."""
    paths = list(paths)
    evict(paths)
    resident = resident_fraction(paths)
    nbytes, seconds = read_files(paths, chunk)
    return nbytes / seconds / 1e6, resident
