"""Chapter 07's figure: your data's loaders, warm and cold, beside the seed's bar and the page-cache ceiling."""
from __future__ import annotations

from collections.abc import Sequence

from ..measure.throughput import SEED_BAR, ThroughputResult
from .plots import plt


def warm_cold_bars(results: Sequence[ThroughputResult], *, ceiling_mb_s: float | None = None,
                   title: str = "Your data: before and after converting", ax=None):
    """Horizontal bars of samples/s (log scale), cold runs hatched; value labels inside the widened axes and the
    legend below them, so neither covers a bar (chapter 07 §4)."""
    if not results:
        raise ValueError("no results to plot")
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 0.45 * len(results) + 2.2))
    rates = [r.samples_per_s for r in results]
    colours = ["tab:green" if r.clears() else "tab:red" for r in results]
    hatches = ["//" if r.cache == "cold" else "" for r in results]
    bars = ax.barh([r.label for r in results], rates, color=colours, hatch=hatches, edgecolor="white")
    ax.set_xscale("log")
    ceiling = ceiling_mb_s * 1e6 / results[0].bytes_per_sample if ceiling_mb_s else None
    high = max([*rates, ceiling or 0.0, SEED_BAR])
    ax.set_xlim(min([*rates, SEED_BAR]) / 2, high * 12)        # room right of the longest bar for its label
    ax.axvline(SEED_BAR, color="black", linestyle="--", label=f"seed's bar: {SEED_BAR:.0f} samples/s")
    if ceiling:
        ax.axvline(ceiling, color="tab:blue", linestyle=":", label=f"page-cache read: {ceiling_mb_s:,.0f} MB/s")
    for bar, r in zip(bars, results):
        ax.text(bar.get_width() * 1.1, bar.get_y() + bar.get_height() / 2,
                f"{r.samples_per_s:,.0f}/s, {r.mb_per_s:,.0f} MB/s", va="center", fontsize=8,
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 1})
    ax.invert_yaxis()
    ax.set_xlabel("samples per second (log scale); hatched: cold page cache")
    ax.set_title(title)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2, fontsize=8, frameon=False)
    ax.figure.tight_layout()
    return ax
