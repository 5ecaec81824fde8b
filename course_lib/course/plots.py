"""Matplotlib figures the chapters and the course runner draw from measured results."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..measure.throughput import SEED_BAR, ThroughputResult
from .lazy_pyplot import plt
from .regime_plots import (  # noqa: F401 (re-exported)
    LIBRARY_COLOURS,
    data_wait_bars,
    library_of,
    plot_records,
    plot_shuffle_frontier,
    plot_worker_scaling,
    regime_bars,
    regime_of,
)


def _room_for_texts(ax, tries: int = 6) -> None:
    """Widen a log x axis until the value labels written at the bars' ends fit inside it."""
    fig = ax.figure
    for _ in range(tries):
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        width = ax.get_window_extent(renderer).width
        over = max((t.get_window_extent(renderer).x1 for t in ax.texts), default=0) - ax.get_window_extent(renderer).x1
        if over <= 0 or width <= 0:
            return
        lo, hi = ax.get_xlim()
        ax.set_xlim(lo, hi * (hi / lo) ** (over / width + 0.05))


def throughput_bars(results: Sequence[ThroughputResult], *, ax=None, ceiling_mb_s: float | None = None,
                    title: str = "Measured throughput on this machine"):
    """Horizontal bars of samples/s (log scale), the seed's bar (``SEED_BAR``) and, if given, the page-cache MB/s."""
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 0.5 * len(results) + 1.5), layout="constrained")
    labels = [r.label for r in results]
    rates = [r.samples_per_s for r in results]
    bars = ax.barh(labels, rates, color=["tab:green" if r.clears() else "tab:red" for r in results])
    ax.set_xscale("log")
    ax.axvline(SEED_BAR, color="black", linestyle="--", label=f"seed's bar: {SEED_BAR:.0f} samples/s")
    if ceiling_mb_s:
        bps = results[0].bytes_per_sample
        ax.axvline(ceiling_mb_s * 1e6 / bps, color="tab:blue", linestyle=":",
                   label=f"page-cache read: {ceiling_mb_s:,.0f} MB/s")
    for bar, r in zip(bars, results):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2,
                f" {r.samples_per_s:,.0f}/s, {r.mb_per_s:,.0f} MB/s", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("samples per second (log scale)")
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)   # outside: never over a bar
    _room_for_texts(ax)
    return ax


def memory_bars(results: Sequence[ThroughputResult], *, ax=None, title: str = "Memory growth while loading"):
    """Stacked bars: anonymous (heap) vs file-backed (mapped page cache) growth per result."""
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 0.5 * len(results) + 1.5), layout="constrained")
    labels = [r.label for r in results]
    anon = [max(r.anon_growth_mb, 0) for r in results]
    file = [max(r.file_growth_mb, 0) for r in results]
    ax.barh(labels, anon, color="tab:red", label="anonymous (heap: counts against RAM)")
    ax.barh(labels, file, left=anon, color="tab:gray", label="file-backed (page cache: reclaimable)")
    ax.invert_yaxis()
    ax.set_xlabel("MB")
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    return ax


def plot_plan(plan_ids: Sequence[Sequence[np.ndarray]], total: int, *, ax=None,
              title: str = "Who reads what: sample id by read order"):
    """Scatter of the global sample id each reader reads at each step (one colour per rank/worker)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4))
    for reader, units in enumerate(plan_ids):
        ids = np.concatenate(list(units)) if len(units) else np.empty(0)
        ax.scatter(np.arange(len(ids)), ids, s=4, label=f"reader {reader}")
    ax.set_xlabel("read order (within the reader)")
    ax.set_ylabel("global sample id (file order)")
    ax.set_ylim(0, total)
    ax.set_title(title)
    ax.legend(fontsize=8, markerscale=3)
    return ax


def shuffle_buffer_plot(quality: dict[int, dict[str, float]], bytes_per_sample: float):
    """Two panels per shuffle-buffer size: shuffle quality (displacement, neighbours) and the MB it holds.

    ``quality`` maps a buffer size to ``shuffle_quality(...)``'s numbers; a size of 0 is drawn at 1 (log axis).
    """
    sizes = list(quality)
    at = [max(s, 1) for s in sizes]
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
    ax[0].plot(at, [quality[s]["displacement"] for s in sizes], "o-", label="displacement (1/3 = uniform)")
    ax[0].plot(at, [quality[s]["neighbours"] for s in sizes], "s-", label="neighbours (0 = uniform)")
    ax[0].axhline(1 / 3, color="gray", linestyle=":")
    ax[0].set_xscale("log")
    ax[0].set_xlabel("shuffle buffer (samples; 0 drawn at 1)")
    ax[0].legend(fontsize=8)
    ax[0].set_title("shuffle quality, shard order fixed")
    ax[1].plot(at, [s * bytes_per_sample / 1e6 for s in sizes], "o-")
    ax[1].set_xscale("log")
    ax[1].set_xlabel("shuffle buffer (samples)")
    ax[1].set_ylabel("MB held")
    ax[1].set_title("memory the buffer holds")
    fig.tight_layout()
    return fig


def memory_growth_plot(points: np.ndarray, slope: float, *, ax=None):
    """Anonymous memory growth against MB of shards loaded (``points``: rows of (MB loaded, anonymous MB))."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    ax.plot(points[:, 0], points[:, 1] - points[0, 1], "o-")
    ax.set_xlabel("MB of shards loaded")
    ax.set_ylabel("anonymous memory growth (MB)")
    ax.set_title(f"load everything: {slope:.2f} MB of RAM per MB of data")
    return ax


def image_grid(records: np.ndarray, *, columns: int = 8, ax_size: float = 1.2):
    """Show records (fields x, y, idx) as a grid of images titled with label and index."""
    n = len(records)
    rows = max(1, -(-n // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * ax_size, rows * ax_size * 1.15), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, rec in zip(axes.flat, records):
        x = np.asarray(rec["x"])
        if x.ndim == 3:                      # (channels, height, width) -> what imshow wants
            x = x[0] if x.shape[0] == 1 else np.moveaxis(x[:3], 0, -1)
        elif x.ndim == 1:
            x = x[None, :]
        ax.imshow(x, cmap="gray" if x.ndim == 2 else None, vmin=0, vmax=255)
        ax.set_title(f"y={int(rec['y'])} #{int(rec['idx'])}", fontsize=7)
    fig.tight_layout()
    return fig


def epoch_start_bars(timings: dict[str, Sequence[Any]], *, ax=None,
                     title: str = "Time to the first batch of each epoch"):
    """Grouped bars: per loader configuration, ``first_item_seconds`` (ms) of each timed epoch."""
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3.5))
    names = list(timings)
    epochs = max(len(t) for t in timings.values())
    width = 0.8 / epochs
    for e in range(epochs):
        ms = [timings[n][e].first_item_seconds * 1000 if e < len(timings[n]) else 0 for n in names]
        ax.bar(np.arange(len(names)) + e * width, ms, width, label=f"epoch {e}")
    ax.set_xticks(np.arange(len(names)) + width * (epochs - 1) / 2, names, fontsize=8)
    ax.set_ylabel("ms until the first batch")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return ax
