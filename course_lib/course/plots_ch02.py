"""Chapter 02's own figure: what a memory map does to memory, stage by stage."""
from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt

from ..measure.memory import MemorySnapshot


def memory_stages(stages: Mapping[str, MemorySnapshot], *, ax=None,
                  title: str = "This process's memory (PSS): growth since before the maps were opened"):
    """Grouped horizontal bars, one group per stage: anonymous (heap) and file-backed MB, each labelled; the
    legend outside the axes (constrained layout makes room for it)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 0.8 * len(stages) + 1.2), layout="constrained")
    names = list(stages)
    rows = range(len(names))
    anon = [stages[n].anon_mb for n in names]
    file = [stages[n].file_mb for n in names]
    top = max(anon + file + [1.0])
    ax.barh([r - 0.2 for r in rows], anon, height=0.4, color="tab:red", label="anonymous (heap)")
    ax.barh([r + 0.2 for r in rows], file, height=0.4, color="tab:gray", label="file-backed (mapped page cache)")
    for r, a, f in zip(rows, anon, file):
        ax.text(a + top * 0.01, r - 0.2, f"{a:,.0f} MB", va="center", fontsize=8)
        ax.text(f + top * 0.01, r + 0.2, f"{f:,.0f} MB", va="center", fontsize=8)
    ax.set_yticks(list(rows), names)
    ax.set_xlim(0, top * 1.25)  # room for the value labels
    ax.invert_yaxis()
    ax.set_xlabel("MB")
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False)  # outside the data
    return ax
