"""The shuffle quality / speed frontier of the batched mmap path: one point per setting, measured side by side.

Quality comes from the order the loader yields in one epoch (``shuffle_quality``: displacement, correlation,
neighbours; computed from the plan, no data read); speed is samples/s on this machine, the median of
``repeat`` runs taken in alternating order. Chapter 05's ``course_lib.shuffle_frontier(rows)`` plots it
(quality on one axis, samples/s on the other).
"""
from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ..loaders.mmap_shards import MmapShardDataset
from .shuffle_metrics import shuffle_quality
from .throughput import measure_throughput

FRONTIER_SETTINGS: dict[str, dict[str, Any]] = {
    "no shuffle": {"shuffle": "none"},
    "block, runs of 1": {"shuffle": "block", "run_length": 1},
    "block, runs of 4": {"shuffle": "block", "run_length": 4},
    "block, default (runs of batch / window)": {"shuffle": "block"},
    "block, runs of 64": {"shuffle": "block", "run_length": 64},
    "block, window 4, runs of 1": {"shuffle": "block", "window_blocks": 4, "run_length": 1},
    "block, window 64, runs of 1": {"shuffle": "block", "window_blocks": 64, "run_length": 1},
    "sample (full permutation)": {"shuffle": "sample"},
}


def measure_shuffle_frontier(data_dir: str | Path, *, batch_size: int = 256, repeat: int = 3, seed: int = 0,
                     settings: dict[str, dict[str, Any]] | None = None,
                     max_samples: int | None = None) -> list[dict[str, Any]]:
    """One row per setting: its keyword arguments, shuffle quality of one epoch, and samples/s (median,
    min, max of ``repeat`` runs on a warm cache, settings measured in alternating order)."""
    settings = FRONTIER_SETTINGS if settings is None else settings
    datasets = {name: MmapShardDataset(data_dir, batch_size=batch_size, seed=seed, **kw)
                for name, kw in settings.items()}
    runs: dict[str, list] = {name: [] for name in settings}
    names = list(settings)
    for r in range(repeat):
        for name in (names if r % 2 == 0 else names[::-1]):
            runs[name].append(measure_throughput(datasets[name], progress=False, label=name,
                                                 max_samples=max_samples))
    rows = []
    for name, kw in settings.items():
        order = _epoch_order(MmapShardDataset(data_dir, batch_size=batch_size, seed=seed, **kw))
        rates = [r.samples_per_s for r in runs[name]]
        rows.append({"setting": name, "label": f"MmapShardDataset, {name}", "library": "course", **kw,
                     **shuffle_quality(order), "samples_per_s": statistics.median(rates),
                     "samples_per_s_min": min(rates), "samples_per_s_max": max(rates),
                     "mb_per_s": statistics.median(r.mb_per_s for r in runs[name]),
                     "cache": runs[name][-1].cache})
    return rows


def _epoch_order(ds: MmapShardDataset) -> np.ndarray:
    """The ids in the order the loader yields them (batches in plan order, each sorted), read from the plan."""
    return np.concatenate(list(ds.batch_ids()))


def frontier_lines(rows: Iterable[dict[str, Any]], page_cache_mb_per_s: float) -> list[str]:
    """The frontier as text lines."""
    lines = [f"{'setting':<28} {'displacement':>12} {'neighbours':>10} {'samples/s (min-max)':>32} "
             f"{'of page cache':>13}"]
    for r in rows:
        spread = f"{r['samples_per_s']:,.0f} ({r['samples_per_s_min']:,.0f}-{r['samples_per_s_max']:,.0f})"
        lines.append(f"{r['setting']:<28} {r['displacement']:>12.3f} {r['neighbours']:>10.3f} {spread:>32} "
                     f"{r['mb_per_s'] / page_cache_mb_per_s:>13.0%}")
    return lines
