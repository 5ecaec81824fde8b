"""Chapter 06b's plot: what transient faults cost, every run of each side-by-side measurement shown."""
from __future__ import annotations

from typing import Sequence

from ..measure.throughput import ThroughputResult
from .plots import plt


def runs_strip(results: Sequence[ThroughputResult], *, ax=None, title: str = "Every run, side by side"):
    """One row per result: a dot per run's samples/s and a bar at the median (the value a table reports)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 0.6 * len(results) + 1.6))
    for row, r in enumerate(results):
        runs = r.runs_samples_per_s or (r.samples_per_s,)
        ax.scatter(runs, [row] * len(runs), color="tab:blue", zorder=3, label="one run" if row == 0 else None)
        ax.plot([r.samples_per_s] * 2, [row - 0.3, row + 0.3], color="black", linewidth=2,
                label="median" if row == 0 else None)
    ax.set_yticks(range(len(results)), [r.label for r in results])
    ax.set_ylim(len(results) - 0.5, -0.5)
    ax.set_xlim(0, 1.1 * max(max(r.runs_samples_per_s or (r.samples_per_s,)) for r in results))
    ax.set_xlabel("samples per second")
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False, fontsize=8)   # outside the data
    ax.figure.tight_layout()
    return ax
