"""Time a loader over enough whole epochs, warm or cold, so a small dataset still gives a steady figure.

One epoch of a few hundred samples lasts milliseconds on a fast path: a rate from it is mostly noise. Here the
loader is iterated epoch after epoch (DataLoader workers kept alive with ``persistent_workers``, so start-up is
paid once, before timing) until the timed part holds ``min_samples`` and lasts ``min_seconds``. A cold run
evicts the loader's files from the page cache before each timed epoch (one epoch each: a second would be warm).
"""
from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from .page_cache import evict
from .throughput import ThroughputResult, measure_throughput


def _epochs(loader: Iterable[Any], epochs: int) -> Iterator[Any]:
    for _ in range(epochs):
        yield from loader


def measure_warm(loader: Iterable[Any], *, min_seconds: float = 0.5, min_samples: int = 2_000,
                 files: Sequence[Path] = (), **kwargs: Any) -> ThroughputResult:
    """Measure whole epochs of ``loader`` until the timed part holds ``min_samples`` and lasts ``min_seconds``.

    One epoch first (untimed: it starts the workers and warms the cache) gives the epoch's length and duration;
    then ``n`` epochs are timed, the first batch discarded. ``kwargs`` go to :func:`measure_throughput`.
    """
    if min_seconds <= 0 or min_samples < 1:
        raise ValueError(f"min_seconds must be > 0 and min_samples >= 1, got {min_seconds} and {min_samples}")
    probe = measure_throughput(loader, warmup=0, progress=False, files=list(files), **kwargs)
    epochs = max(1, math.ceil(min_seconds / probe.seconds), math.ceil(min_samples / probe.samples))
    return measure_throughput(_epochs(loader, epochs), warmup=1, progress=False, files=list(files), **kwargs)


def measure_cold(loader: Iterable[Any], files: Sequence[Path], *, repeat: int = 3,
                 **kwargs: Any) -> ThroughputResult:
    """``repeat`` runs of one epoch each, its ``files`` evicted from the page cache before every run; the median.

    Nothing is discarded (the first batch is the coldest read); keep the loader's workers alive
    (``persistent_workers=True``) and warm them up beforehand, so the runs time reading, not start-up.
    ``resident_before`` of each run says what share of the files the OS still had cached when it began.
    """
    files = [Path(f) for f in files]
    if not files:
        raise ValueError("a cold run needs the loader's files, to evict them")
    runs = []
    for _ in range(int(repeat)):
        evict(files)
        runs.append(measure_throughput(loader, warmup=0, progress=False, files=files, **kwargs))
    runs.sort(key=lambda r: r.samples_per_s)
    median = runs[(len(runs) - 1) // 2]
    return replace(median, runs_samples_per_s=tuple(r.samples_per_s for r in runs),
                   runs_resident_before=tuple(r.resident_before for r in runs))
