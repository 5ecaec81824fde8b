"""Rows say warm or cold (measured with mincore), repeats give a median and a spread, and memory summed over
forked processes counts shared pages once (PSS), where summed RSS counts them once per process."""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import mmap
import multiprocessing
import os
import time

import numpy as np
import psutil
import pytest

from course_lib import MmapShardDataset, measure_throughput
from course_lib.measure import evict, memory_snapshot
from course_lib.measure.throughput import cache_state, data_files


@contextlib.contextmanager
def pages_locked(paths):
    """Map each file and mlock it: its pages stay in the page cache whatever else the machine does, so the
    warm run below is warm by construction (>= 95 % resident), not because nothing else needed the memory."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.mlock.argtypes = libc.munlock.argtypes = libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    maps = []
    try:
        for path in paths:
            size = os.path.getsize(path)
            fd = os.open(path, os.O_RDONLY)
            try:
                addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
            finally:
                os.close(fd)
            assert addr not in (None, ctypes.c_void_p(-1).value), f"mmap {path}: errno {ctypes.get_errno()}"
            maps.append((addr, size))
            assert libc.mlock(addr, size) == 0, f"mlock {path} ({size} B): errno {ctypes.get_errno()}"
        yield
    finally:
        for addr, size in maps:
            libc.munlock(addr, size)
            libc.munmap(addr, size)


def test_cache_state_reads_the_page_cache(small_data):
    ds = MmapShardDataset(small_data, batch_size=8, block_size=8)
    assert data_files(ds) == list(ds.index.paths)
    gc.collect()
    evict(ds.index.paths)                      # nothing maps them yet: they can be dropped
    cold = measure_throughput(ds, progress=False, warmup=0)
    with pages_locked(ds.index.paths):
        warm = measure_throughput(ds, progress=False, warmup=0, repeat=3)
    assert cold.cache in ("cold", "unknown") or cold.cache.startswith("partly")  # tmpfs cannot drop pages
    assert warm.cache == "warm" and warm.as_dict()["cache"] == "warm"
    assert len(warm.runs_samples_per_s) == 3 and warm.spread[0] <= warm.samples_per_s <= warm.spread[1]
    assert sorted(warm.runs_samples_per_s)[1] == warm.samples_per_s


def test_cache_state_words_and_unknown_loaders():
    assert [cache_state(x) for x in (1.0, 0.95, 0.0, 0.05)] == ["warm", "warm", "cold", "cold"]
    assert cache_state(0.5) == "partly cached (50%)" and cache_state(float("nan")) == "unknown"
    result = measure_throughput([{"y": 1}, {"y": 2}], progress=False, warmup=0)
    assert result.cache == "unknown"

    class Odd(list):
        paths = [("not", "a path")]          # a loader whose ``paths`` are not file names: no files to ask about
    assert data_files(Odd([{"y": 1}])) == []
    with pytest.raises(ValueError, match="repeat"):
        measure_throughput([{"y": 1}], progress=False, repeat=0)


def _hold(ready, done):
    ready.set()
    done.wait(30)


def test_forked_shared_pages_count_once_in_pss():
    big = np.ones(200_000_000 // 8)             # 200 MB of anonymous pages, shared copy-on-write after fork
    ctx = multiprocessing.get_context("fork")
    ready, done = ctx.Event(), ctx.Event()
    child = ctx.Process(target=_hold, args=(ready, done))
    child.start()
    try:
        assert ready.wait(30)
        time.sleep(0.2)
        procs = [psutil.Process(), psutil.Process(child.pid)]
        summed_rss = memory_snapshot(procs=procs, proportional=False).anon_mb
        pss = memory_snapshot(procs=procs, proportional=True).anon_mb
        assert summed_rss - pss > 0.7 * big.nbytes / 1e6   # RSS counted the 200 MB twice; PSS once
    finally:
        done.set()
        child.join()
    del big


def test_versus_calls_overlapping_ranges_noise():
    from dataclasses import replace

    base = measure_throughput([{"y": 1}, {"y": 2}], progress=False, warmup=0, min_seconds=0, min_samples=1)
    fast = replace(base, samples=1, seconds=1.0, runs_samples_per_s=(9.0, 10.0, 12.0))
    slow = replace(base, samples=1, seconds=1.0, runs_samples_per_s=(5.0, 6.0, 8.0))
    close = replace(base, samples=1, seconds=1.0, runs_samples_per_s=(7.0, 9.5, 11.0))
    assert fast.versus(slow) == "faster" and slow.versus(fast) == "slower"
    assert fast.versus(close) == "within noise" == close.versus(slow)
