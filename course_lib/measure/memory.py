"""Process memory split into anonymous memory (heap: what a leak grows) and file-backed pages (mmap, page cache);
over a process and its DataLoader workers as PSS, so pages they share are counted once."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import psutil

from .process_memory import _rollup

MB = 1e6


@dataclass(frozen=True)
class MemorySnapshot:
    """Memory of this process and its children (DataLoader workers), in MB, split anonymous / file-backed."""

    anon_mb: float
    file_mb: float

    @property
    def rss_mb(self) -> float:
        """Total MB (resident, or proportional when the snapshot was taken with ``proportional``)."""
        return self.anon_mb + self.file_mb


def _proportional(pid: int) -> tuple[float, float] | None:
    """(anonymous, file-backed + shared-memory) PSS bytes of ``pid`` (``process_memory``'s smaps_rollup reader)."""
    parts = _rollup(pid)
    return None if parts is None else (parts["anon"], parts["file"] + parts["shmem"])


def memory_snapshot(include_children: bool = True, procs: list[psutil.Process] | None = None,
                    proportional: bool | None = None) -> MemorySnapshot:
    """Anonymous (the heap: what a leak grows) and file-backed (mapped files, page cache, shared memory) MB.

    ``procs`` (default: this process and, with ``include_children``, its descendants) are summed.
    ``proportional`` (default: ``include_children``) sums PSS (Linux ``smaps_rollup``): a page shared by k
    processes counts 1/k in each, so forked DataLoader workers, which share the parent's pages and map the
    same files, are not counted k times as summed RSS would. Off, it is RSS (``rss - shared`` / ``shared``),
    cheap enough to call in a tight loop for one process. Where PSS is unavailable, RSS is used.
    """
    if procs is None:
        procs = _processes(include_children)
    if proportional is None:
        proportional = include_children
    anon = file = 0.0
    for p in procs:
        parts = _proportional(p.pid) if proportional else None
        if parts is None:
            try:
                info = p.memory_info()
            except psutil.Error:  # a worker that just exited
                continue
            shared = getattr(info, "shared", 0)
            parts = (info.rss - shared, shared)
        anon += parts[0]
        file += parts[1]
    return MemorySnapshot(anon / MB, file / MB)


def _processes(include_children: bool) -> list[psutil.Process]:
    me = psutil.Process()
    return [me, *me.children(recursive=True)] if include_children else [me]


def available_mb() -> float:
    """Memory the OS could give a new process now (includes reclaimable page cache)."""
    return psutil.virtual_memory().available / MB


class PeakMemory:
    """Context manager sampling :func:`memory_snapshot` (PSS of this process and its workers) in a thread;
    ``peak`` holds the maxima seen, ``start`` the first sample; one more sample is taken on exit, while the
    workers of a loader still being iterated are alive.

    Reading ``smaps_rollup`` costs ~25 ms per process with a few hundred MB mapped (the kernel walks the page
    tables), so samples are ``interval_s`` (1 s) apart: a faster sampler would take CPU from the loop it measures.
    """

    def __init__(self, interval_s: float = 1.0, include_children: bool = True, children_every_s: float = 1.0):
        self.interval_s, self.include_children, self.children_every_s = interval_s, include_children, children_every_s
        self._procs, self._procs_at = _processes(include_children), time.monotonic()
        self.start = self.peak = memory_snapshot(procs=self._procs, proportional=True)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> MemorySnapshot:
        """Take one sample now and fold it into the peak."""
        if self.include_children and time.monotonic() - self._procs_at > self.children_every_s:
            self._procs, self._procs_at = _processes(True), time.monotonic()
        snap = memory_snapshot(procs=self._procs, proportional=True)
        self.peak = MemorySnapshot(max(self.peak.anon_mb, snap.anon_mb), max(self.peak.file_mb, snap.file_mb))
        return snap

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._procs_at = 0.0  # the final sample looks for children once more
        self.sample()
