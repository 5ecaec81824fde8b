"""Memory of a process *and its DataLoader workers* without double counting: proportional set size (PSS).

Summing each worker's RSS counts every page shared between processes once per process (forked workers share
the parent's heap copy-on-write, and all of them map the same shard files). PSS charges a shared page to each
process in proportion, so the sum over processes is what the group really holds. Linux's
``/proc/PID/smaps_rollup`` splits it into anonymous (heap), file-backed (mapped files: page cache) and shmem
(shared-memory tensors sent from workers); elsewhere psutil's ``memory_full_info`` gives USS/PSS only.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

MB = 1e6
_FIELDS = {"Pss_Anon:": "anon", "Pss_File:": "file", "Pss_Shmem:": "shmem"}


@dataclass(frozen=True)
class PssSnapshot:
    """PSS in MB of a process group, split by kind (``anon`` + ``file`` + ``shmem`` = total)."""

    anon_mb: float
    file_mb: float
    shmem_mb: float
    processes: int

    @property
    def total_mb(self) -> float:
        """All three kinds together."""
        return self.anon_mb + self.file_mb + self.shmem_mb


def _rollup(pid: int) -> dict[str, float] | None:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    out = {"anon": 0.0, "file": 0.0, "shmem": 0.0}
    for line in text.splitlines():
        name, _, rest = line.partition(" ")
        if name in _FIELDS:
            out[_FIELDS[name]] = float(rest.split()[0]) * 1024
    return out


def process_group(include_children: bool = True) -> list[psutil.Process]:
    """This process and, with ``include_children``, its descendants (DataLoader workers) as they are now."""
    me = psutil.Process()
    if not include_children:
        return [me]
    try:
        return [me, *me.children(recursive=True)]
    except psutil.Error:
        return [me]


def pss_snapshot(procs: list[psutil.Process] | None = None) -> PssSnapshot:
    """PSS of ``procs`` (default: this process and its descendants), summed without double counting."""
    if procs is None:
        procs = process_group()
    anon = file = shmem = 0.0
    counted = 0
    for p in procs:
        parts = _rollup(p.pid)
        if parts is None:
            try:
                full = p.memory_full_info()
            except (psutil.Error, AttributeError):
                continue  # a worker that just exited
            parts = {"anon": float(getattr(full, "uss", 0)), "file": float(getattr(full, "pss", 0))
                     - float(getattr(full, "uss", 0)), "shmem": 0.0}
        anon, file, shmem, counted = anon + parts["anon"], file + parts["file"], shmem + parts["shmem"], counted + 1
    return PssSnapshot(anon / MB, file / MB, shmem / MB, counted)


class PeakSampler:
    """Context manager sampling ``snapshot(procs)`` in a thread every ``interval_s``: ``start`` is the first
    sample, ``peak`` what :meth:`fold` kept, and one more sample is taken on exit (while the workers of a loader
    still being iterated are alive). ``procs`` is this process and, with ``include_children``, its descendants
    (DataLoader workers), looked up again every ``children_every_s``. Subclasses say what a sample is."""

    def __init__(self, interval_s: float, include_children: bool = True, children_every_s: float = 0.5):
        self.interval_s, self.include_children, self.children_every_s = interval_s, include_children, children_every_s
        self._procs, self._at = process_group(include_children), time.monotonic()
        self.start = self.peak = self.snapshot(self._procs)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def snapshot(self, procs: list[psutil.Process]):
        """One sample of ``procs``."""
        raise NotImplementedError

    def fold(self, peak, snap):
        """The new peak, given the old one and a sample."""
        raise NotImplementedError

    def sample(self):
        """One sample now, folded into the peak."""
        if self.include_children and time.monotonic() - self._at > self.children_every_s:
            self._procs, self._at = process_group(True), time.monotonic()
        snap = self.snapshot(self._procs)
        self.peak = self.fold(self.peak, snap)
        return snap

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._at = 0.0  # the final sample looks for children once more
        self.sample()


class PeakPss(PeakSampler):
    """:class:`PeakSampler` of :func:`pss_snapshot`: ``peak`` is the sample with the largest total (with its
    split into anonymous, file-backed and shared memory)."""

    def __init__(self, interval_s: float = 0.1, children_every_s: float = 0.5):
        super().__init__(interval_s, include_children=True, children_every_s=children_every_s)

    def snapshot(self, procs: list[psutil.Process]) -> PssSnapshot:
        return pss_snapshot(procs)

    def fold(self, peak: PssSnapshot, snap: PssSnapshot) -> PssSnapshot:
        return snap if snap.total_mb > peak.total_mb else peak
