"""Process memory split into anonymous memory (heap: what a leak grows) and file-backed pages (mmap, page cache)."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import psutil

MB = 1e6


@dataclass(frozen=True)
class MemorySnapshot:
    """Resident memory of this process and its children (DataLoader workers), in MB."""

    anon_mb: float
    file_mb: float

    @property
    def rss_mb(self) -> float:
        """Total resident MB."""
        return self.anon_mb + self.file_mb


def memory_snapshot(include_children: bool = True, procs: list[psutil.Process] | None = None) -> MemorySnapshot:
    """Anonymous (``rss - shared``) and file-backed (``shared``: mapped files, shared memory) resident MB.

    ``procs`` (default: this process and, with ``include_children``, its descendants) are the processes summed.
    """
    if procs is None:
        procs = _processes(include_children)
    anon = file = 0
    for p in procs:
        try:
            info = p.memory_info()
        except psutil.Error:  # a worker that just exited
            continue
        shared = getattr(info, "shared", 0)
        anon += info.rss - shared
        file += shared
    return MemorySnapshot(anon / MB, file / MB)


def _processes(include_children: bool) -> list[psutil.Process]:
    me = psutil.Process()
    return [me, *me.children(recursive=True)] if include_children else [me]


def available_mb() -> float:
    """Memory the OS could give a new process now (includes reclaimable page cache)."""
    return psutil.virtual_memory().available / MB


class PeakMemory:
    """Context manager sampling :func:`memory_snapshot` in a thread; ``peak`` holds the maxima seen.

    Finding child processes scans all of ``/proc``, so the list of DataLoader workers is refreshed only
    every ``children_every_s``; their memory is still read at every sample.
    """

    def __init__(self, interval_s: float = 0.05, include_children: bool = True, children_every_s: float = 1.0):
        self.interval_s, self.include_children, self.children_every_s = interval_s, include_children, children_every_s
        self._procs, self._procs_at = _processes(include_children), time.monotonic()
        self.start = self.peak = memory_snapshot(procs=self._procs)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> MemorySnapshot:
        """Take one sample now and fold it into the peak."""
        if self.include_children and time.monotonic() - self._procs_at > self.children_every_s:
            self._procs, self._procs_at = _processes(True), time.monotonic()
        snap = memory_snapshot(procs=self._procs)
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
