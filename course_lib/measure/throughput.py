"""``measure_throughput``: samples/s and MB/s of any iterable of samples or batches, honestly timed."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Iterable

from tqdm import tqdm

from .memory import PeakMemory
from .page_cache import resident_fraction
from .sample_counting import (  # their old home: imported from here too
    _is_single_sample,
    count_samples_in,
    nbytes_of,
    touch_pages,
)

SEED_BAR = 500.0  # samples/s: the seed chapter's "fast enough" bar
MIN_SECONDS = 0.05  # a timed run shorter than this is flagged `too_short`: timer and scheduler noise dominate
MIN_SAMPLES = 256  # ... and so is one that timed fewer samples


@dataclass
class ThroughputResult:
    """One measured loop (with ``repeat``, the median of the repeated runs; ``runs_samples_per_s`` holds them all).
    ``warmup_seconds`` is the start-up before timing began (iterator creation and the warm-up items); memory is
    MB at the start and at the peak, summed over the process and its DataLoader workers as PSS (shared pages
    counted once); ``resident_before`` is the fraction of the data files in the page cache before the run."""

    label: str
    samples: int
    seconds: float
    bytes_per_sample: float
    items: int
    warmup_items: int
    warmup_seconds: float
    start_anon_mb: float
    start_file_mb: float
    peak_anon_mb: float
    peak_file_mb: float
    resident_before: float = float("nan")
    runs_samples_per_s: tuple[float, ...] = ()
    runs_resident_before: tuple[float, ...] = ()
    min_seconds: float = MIN_SECONDS
    min_samples: int = MIN_SAMPLES

    @property
    def too_short(self) -> bool:
        """Whether the timed run is below the minimum duration or sample count: report it, conclude nothing."""
        return self.seconds < self.min_seconds or self.samples < self.min_samples

    @property
    def cache(self) -> str:
        """``warm`` or ``cold``: measured, the share of the data files in the page cache when the run began
        (``mincore``; >= 90% warm, <= 10% cold, else ``partly cached``); ``unknown`` without files to ask about."""
        return cache_state(self.resident_before)

    @property
    def spread(self) -> tuple[float, float]:
        """(min, max) samples/s over the repeated runs (this result is the median run)."""
        runs = self.runs_samples_per_s or (self.samples_per_s,)
        return min(runs), max(runs)

    @property
    def samples_per_s(self) -> float:
        """Measured samples per second."""
        return self.samples / self.seconds

    @property
    def mb_per_s(self) -> float:
        """Measured megabytes (1e6 bytes) per second."""
        return self.samples * self.bytes_per_sample / self.seconds / 1e6

    @property
    def anon_growth_mb(self) -> float:
        """How much anonymous (heap) memory grew: the number that reveals loading everything into RAM."""
        return self.peak_anon_mb - self.start_anon_mb

    @property
    def file_growth_mb(self) -> float:
        """How much file-backed memory grew: mapped page cache, reclaimable, not a leak."""
        return self.peak_file_mb - self.start_file_mb

    def clears(self, bar: float = SEED_BAR) -> bool:
        """Whether this loop reached ``bar`` samples/s (the seed chapter's bar, ``SEED_BAR``, by default)."""
        return self.samples_per_s >= bar

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> "ThroughputResult":
        """A result back from :meth:`as_dict` (derived keys ignored)."""
        names = {f.name for f in fields(cls)}
        kw = {k: (tuple(v) if k.startswith("runs_") else v) for k, v in row.items() if k in names}
        return cls(**kw)

    def versus(self, other: "ThroughputResult") -> str:
        """``faster``, ``slower`` or ``within noise``: faster only when this result's slowest run beat the
        other's fastest (the min-max ranges of the repeated runs do not overlap); ``too short to compare`` when
        either run is below its minimum duration or sample count (:attr:`too_short`)."""
        if self.too_short or other.too_short:
            return "too short to compare"
        if self.spread[0] > other.spread[1]:
            return "faster"
        if self.spread[1] < other.spread[0]:
            return "slower"
        return "within noise"

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict, derived rates included."""
        return {**asdict(self), "samples_per_s": self.samples_per_s, "mb_per_s": self.mb_per_s, "cache": self.cache,
                "samples_per_s_min": self.spread[0], "samples_per_s_max": self.spread[1],
                "anon_growth_mb": self.anon_growth_mb, "file_growth_mb": self.file_growth_mb,
                "too_short": self.too_short,
                "seed_bar_samples_per_s": SEED_BAR, "clears_seed_bar": self.clears()}

    def __str__(self) -> str:
        runs = self.runs_samples_per_s
        spread = (f" (median of {len(runs)}, {self.spread[0]:,.0f}-{self.spread[1]:,.0f})" if len(runs) > 1 else "")
        short = " (too short to conclude from)" if self.too_short else ""
        return (f"{self.label} [{self.cache}]{short}: {self.samples:,} samples in {self.seconds:.3f} s = "
                f"{self.samples_per_s:,.0f} samples/s{spread}, {self.mb_per_s:,.1f} MB/s; memory "
                f"+{self.anon_growth_mb:,.0f} MB anonymous, +{self.file_growth_mb:,.0f} MB file-backed")


def cache_state(resident: float) -> str:
    """``warm`` (>= 90% of the files cached), ``cold`` (<= 10%), ``partly cached (N%)``, or ``unknown`` (NaN)."""
    if resident != resident:
        return "unknown"
    if resident >= 0.9:
        return "warm"
    if resident <= 0.1:
        return "cold"
    return f"partly cached ({resident:.0%})"


def data_files(iterable: Any) -> list[Path]:
    """The files a loader reads, when it says: a DataLoader's dataset, ``index.paths`` (MmapShardDataset),
    local shard ``urls`` (WebDataset pipelines), ``shards`` or ``files`` (the naive loaders); else []."""
    obj = getattr(iterable, "dataset", iterable)
    paths = getattr(getattr(obj, "index", None), "paths", None)
    if paths is None:
        for name in ("urls", "shards", "files", "paths"):
            paths = getattr(obj, name, None)
            if isinstance(paths, (list, tuple)):
                break
            paths = None
    if not paths or not all(isinstance(p, (str, Path)) for p in paths):
        return []
    files = [Path(p) for p in paths if "://" not in str(p)]
    return [f for f in files if f.is_file()]


def clears_seed_bar(row: dict[str, Any]) -> bool:
    """Whether a saved result (``ThroughputResult.as_dict()``, also from older records) reached its seed bar."""
    return row["samples_per_s"] >= row.get("seed_bar_samples_per_s", SEED_BAR)


def measure_throughput(iterable: Iterable[Any], *, bytes_per_sample: float | None = None, warmup: int = 1,
                       max_samples: int | None = None, progress: bool = True, label: str = "loader",
                       total: int | None = None, touch: bool = True, repeat: int = 1,
                       files: Iterable[Path] | None = None, min_seconds: float = MIN_SECONDS,
                       min_samples: int = MIN_SAMPLES) -> ThroughputResult:
    """Iterate ``iterable``, skip ``warmup`` items, then time the rest with ``time.perf_counter``, from the
    last warm-up item to the last timed one (an iterator's clean-up when it ends is not counted).

    Counts samples per item (batches by their leading dimension), stops after ``max_samples`` measured
    samples, tracks peak anonymous and file-backed memory, and refuses to report a result from zero samples.
    ``bytes_per_sample`` defaults to the array bytes of the first item divided by its sample count.
    With ``touch`` (default) one byte per page of each item is read, so lazy memory-map views count
    as read (see :func:`touch_pages`). ``repeat`` iterates it that many times (like epochs) and returns the
    median run, with every run's rate (``runs_samples_per_s``, ``spread``). A median run shorter than
    ``min_seconds`` or with fewer than ``min_samples`` timed samples is flagged ``too_short``. Before each run the
    share of ``files`` (default: what :func:`data_files` finds) in the page cache is measured: ``result.cache``.
    """
    check_repeat = int(repeat)
    if check_repeat < 1:
        raise ValueError(f"repeat must be >= 1, got {repeat}")
    files = data_files(iterable) if files is None else [Path(f) for f in files]
    runs = []
    for _ in range(check_repeat):
        resident = resident_fraction(files) if files else float("nan")
        run = _measure_once(iterable, bytes_per_sample=bytes_per_sample, warmup=warmup, max_samples=max_samples,
                            progress=progress, label=label, total=total, touch=touch)
        runs.append(replace(run, resident_before=resident))
    median = sorted(runs, key=lambda r: r.samples_per_s)[(len(runs) - 1) // 2]
    return replace(median, runs_samples_per_s=tuple(r.samples_per_s for r in runs),
                   runs_resident_before=tuple(r.resident_before for r in runs), min_seconds=float(min_seconds),
                   min_samples=int(min_samples))


def _measure_once(iterable: Iterable[Any], *, bytes_per_sample: float | None, warmup: int,
                  max_samples: int | None, progress: bool, label: str, total: int | None,
                  touch: bool) -> ThroughputResult:
    """One timed pass of :func:`measure_throughput`."""
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0 items, got {warmup}")
    if max_samples is not None and max_samples < 1:
        raise ValueError(f"max_samples must be >= 1, got {max_samples}")
    samples = items = skipped = pending = 0
    ended = 0.0
    per_item: int | None = None  # 1 for per-sample loaders: then no per-item counting is needed
    with PeakMemory() as memory, tqdm(total=total or max_samples, unit="sample", desc=label,
                                      disable=not progress, leave=False) as bar:
        started = first = time.perf_counter()
        iterator = iter(iterable)
        for item in iterator:
            n = per_item or count_samples_in(item)
            if per_item is None:
                per_item = 1 if _is_single_sample(item) else 0
                if bytes_per_sample is None:
                    bytes_per_sample = nbytes_of(item) / max(n, 1)
            if touch:
                touch_pages(item)
            if skipped < warmup:
                skipped += 1
                bar.update(n)
                if skipped == warmup:
                    memory.sample()             # untimed, while a DataLoader's workers are surely alive
                started = time.perf_counter()  # start-up (worker spawn, buffer fill, loading) ends here
                continue
            samples += n
            items += 1
            pending += n
            if pending >= 4096:
                bar.update(pending)
                pending = 0
            ended = time.perf_counter()
            if max_samples is not None and samples >= max_samples:
                break
        # the clock stops at the last timed item, not after the loop: ending a DataLoader's iterator joins its
        # workers (each finishes the batch it is decoding: ~27 ms of a 0.15 s run with 2 JPEG workers), which a
        # loader that keeps its iterator (torchdata's StatefulDataLoader) does not pay there (issue 22 item 16)
        seconds = (ended if items else time.perf_counter()) - started
        bar.update(pending)
    if samples == 0:
        raise ValueError(f"{label}: no samples measured ({skipped} warm-up items skipped): "
                         "use more data, or a smaller warmup")
    return ThroughputResult(label=label, samples=samples, seconds=seconds, bytes_per_sample=float(bytes_per_sample),
                            items=items, warmup_items=skipped, warmup_seconds=started - first,
                            start_anon_mb=memory.start.anon_mb,
                            start_file_mb=memory.start.file_mb, peak_anon_mb=memory.peak.anon_mb,
                            peak_file_mb=memory.peak.file_mb)
