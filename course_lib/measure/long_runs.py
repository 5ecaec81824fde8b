"""Time a loader over enough whole epochs, warm or cold, so a small dataset still gives a steady figure.

One epoch of a few hundred samples lasts milliseconds on a fast path: a rate from it is mostly noise. Here the
loader is iterated epoch after epoch (DataLoader workers kept alive with ``persistent_workers``, so start-up is
paid once, before timing) until the timed part holds ``min_samples`` and lasts ``min_seconds``. A cold run
evicts the loader's files from the page cache before each timed epoch (a second epoch without eviction would be
warm) and adds the epochs up.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from .page_cache import evict
from .throughput import ThroughputResult, data_files, measure_throughput


def _epochs(loader: Iterable[Any], epochs: int) -> Iterator[Any]:
    for _ in range(epochs):
        yield from loader


def measure_warm(loader: Iterable[Any], *, min_seconds: float = 0.5, min_samples: int = 2_000,
                 files: Sequence[Path] | None = None, **kwargs: Any) -> ThroughputResult:
    """Measure whole epochs of ``loader`` until the timed part holds ``min_samples`` and lasts ``min_seconds``.

    One epoch first (untimed: it starts the workers and warms the cache) gives the epoch's length and duration;
    then ``n`` epochs are timed, the first batch discarded. ``files`` (default: what the loader says it reads)
    are checked for page-cache residency. ``kwargs`` go to :func:`measure_throughput`.
    """
    if min_seconds <= 0 or min_samples < 1:
        raise ValueError(f"min_seconds must be > 0 and min_samples >= 1, got {min_seconds} and {min_samples}")
    files = data_files(loader) if files is None else list(files)
    probe = measure_throughput(loader, warmup=0, progress=False, files=files, **kwargs)
    epochs = max(1, math.ceil(min_seconds / probe.seconds), math.ceil(min_samples / probe.samples))
    return measure_throughput(_epochs(loader, epochs), warmup=1, progress=False, files=files, **kwargs)


def measure_cold(loader: Iterable[Any] | Callable[[], Iterable[Any]], files: Sequence[Path], *, repeat: int = 3,
                 min_samples: int = 1, **kwargs: Any) -> ThroughputResult:
    """Epochs each preceded by evicting ``files`` from the page cache: ``repeat`` of them, more until
    ``min_samples`` were timed; one rate over all of them (eviction untimed), each epoch's rate in
    ``runs_samples_per_s`` and the share of ``files`` cached when it began in ``runs_resident_before``.

    Nothing is discarded (the first batch is the coldest read). ``loader`` is reused (keep its workers alive
    with ``persistent_workers=True`` and warm them beforehand, so start-up is not timed) or, when callable,
    made afresh for every epoch (a memory-mapped dataset must be: pages a live map holds cannot be evicted).
    """
    files = [Path(f) for f in files]
    if not files:
        raise ValueError("a cold run needs the loader's files, to evict them")
    if int(repeat) < 1:
        raise ValueError(f"repeat must be >= 1, got {repeat}")
    runs: list[ThroughputResult] = []
    while len(runs) < int(repeat) or sum(r.samples for r in runs) < min_samples:
        iterable = loader() if callable(loader) and not hasattr(loader, "__iter__") else loader
        evict(files)               # after making it: a fresh dataset reads the shard headers when it is made
        runs.append(measure_throughput(iterable, warmup=0, progress=False, files=files, **kwargs))
        del iterable
    return replace(runs[0], samples=sum(r.samples for r in runs), seconds=sum(r.seconds for r in runs),
                   items=sum(r.items for r in runs), resident_before=max(r.resident_before for r in runs),
                   runs_samples_per_s=tuple(r.samples_per_s for r in runs),
                   runs_resident_before=tuple(r.resident_before for r in runs))
