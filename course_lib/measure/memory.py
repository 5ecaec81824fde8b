"""Process memory split into anonymous memory (heap: what a leak grows) and file-backed pages (mmap, page cache);
over a process and its DataLoader workers as PSS, so pages they share are counted once."""
from __future__ import annotations

from dataclasses import dataclass

import psutil

from .process_memory import PeakSampler, _rollup, process_group

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
        procs = process_group(include_children)
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


def available_mb() -> float:
    """Memory the OS could give a new process now (includes reclaimable page cache)."""
    return psutil.virtual_memory().available / MB


class PeakMemory(PeakSampler):
    """:class:`~.process_memory.PeakSampler` of :func:`memory_snapshot` (PSS of this process and its workers):
    ``peak`` holds the maxima of anonymous and of file-backed memory seen, each on its own.

    Reading ``smaps_rollup`` costs ~25 ms per process with a few hundred MB mapped (the kernel walks the page
    tables), so samples are ``interval_s`` (1 s) apart: a faster sampler would take CPU from the loop it measures.
    """

    def __init__(self, interval_s: float = 1.0, include_children: bool = True, children_every_s: float = 1.0):
        super().__init__(interval_s, include_children, children_every_s)

    def snapshot(self, procs: list[psutil.Process]) -> MemorySnapshot:
        return memory_snapshot(procs=procs, proportional=True)

    def fold(self, peak: MemorySnapshot, snap: MemorySnapshot) -> MemorySnapshot:
        return MemorySnapshot(max(peak.anon_mb, snap.anon_mb), max(peak.file_mb, snap.file_mb))
