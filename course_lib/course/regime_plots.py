"""Figures of chapter 05's regimes and of the course run: grouped log-scale bars coloured by library, workers
scaling, data wait, the shuffle frontier, and every chapter's records (``plot_records``)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from ..measure.throughput import SEED_BAR
from .lazy_pyplot import plt


def plot_records(records: Iterable[dict[str, Any]], path: str | Path | None = None):
    """Every chapter's results from verification records, one bar each, grouped by regime (raw / JPEG) and
    coloured by library, with the seed's bar; saved to ``path`` when given."""
    rows = [{"label": f"{rec['chapter'][:2]}: {_short(r['label'])}", "samples_per_s": r["samples_per_s"],
             "regime": regime_of(r["label"]), "library": library_of(r["label"])}
            for rec in records for r in rec["results"]]
    if not rows:
        fig, ax = plt.subplots(figsize=(9, 2), layout="constrained")
        ax.text(0.5, 0.5, "no verification records yet", ha="center", va="center")
        ax.set_axis_off()
    else:
        fig = _grouped_bars(rows, title="Throughput measured by each chapter on this machine")
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
    return fig


LIBRARY_COLOURS = {"course": "tab:green", "seed": "tab:red", "litdata": "tab:purple", "HF datasets": "tab:orange",
                   "torchdata": "tab:blue", "webdataset": "tab:brown", "naive": "tab:gray"}


def library_of(label: str) -> str:
    """The library a result label belongs to (chapter 05 labels say it: ``"raw · litdata: ..."``)."""
    head = label.split(" · ", 1)[-1]
    if ":" in head and head.split(":", 1)[0] in LIBRARY_COLOURS:
        return head.split(":", 1)[0]
    low = label.lower()
    for name in ("litdata", "torchdata", "hf datasets"):
        if name in low:
            return "HF datasets" if name == "hf datasets" else name
    if "seed" in low:
        return "seed"
    if "load everything" in low or "one file per sample" in low:
        return "naive"
    return "course"


def regime_of(label: str) -> str:
    """``"JPEG"`` for decode-bound results (labels starting ``"JPEG · "``), else ``"raw"``."""
    return "JPEG" if label.startswith("JPEG · ") else "raw"


def _short(label: str, width: int = 70) -> str:
    return label if len(label) <= width else label[:width - 1] + "…"


def _grouped_bars(rows: Sequence[dict[str, Any]], *, title: str, lines: dict[str, list[tuple[float, str, str]]]
                  | None = None, seed_bar: bool = True):
    """Horizontal log-scale bars of ``samples_per_s`` (optional ``min``/``max`` as a spread), one panel per
    regime, coloured by ``library``; ``lines[regime]`` adds vertical (x, label, style) reference lines."""
    regimes = [g for g in ("raw", "JPEG") if any(r["regime"] == g for r in rows)]
    heights = [sum(r["regime"] == g for r in rows) for g in regimes]
    fig, axes = plt.subplots(len(regimes), 1, figsize=(10, 0.32 * sum(heights) + 1.6 * len(regimes) + 0.6),
                             height_ratios=[h + 3 for h in heights], layout="constrained", squeeze=False)
    rates = [r["samples_per_s"] for r in rows] + [x for ls in (lines or {}).values() for x, _, _ in ls]
    lo, hi = min(rates + [SEED_BAR]) / 2, max(rates + [SEED_BAR]) * 3
    for ax, regime in zip(axes[:, 0], regimes):
        mine = [r for r in rows if r["regime"] == regime]
        y = np.arange(len(mine))
        ax.barh(y, [r["samples_per_s"] for r in mine],
                color=[LIBRARY_COLOURS.get(r["library"], "tab:gray") for r in mine])
        spread = [r for r in mine if "min" in r]
        if spread:
            ax.errorbar([r["samples_per_s"] for r in spread], [y[mine.index(r)] for r in spread],
                        xerr=[[r["samples_per_s"] - r["min"] for r in spread],
                              [r["max"] - r["samples_per_s"] for r in spread]],
                        fmt="none", ecolor="black", elinewidth=0.8, capsize=2)
        ax.set_yticks(y, [r["label"] for r in mine], fontsize=7)
        ax.set_xscale("log")
        ax.set_xlim(lo, hi)
        ax.invert_yaxis()
        if seed_bar:
            ax.axvline(SEED_BAR, color="black", linestyle="--", label=f"seed's bar: {SEED_BAR:.0f} samples/s")
        for x, text, style in (lines or {}).get(regime, []):
            ax.axvline(x, color="tab:blue", linestyle=style, label=text)
        ax.set_title(f"{regime}: " + ("uint8 arrays copied (copy-bound)" if regime == "raw"
                                      else "JPEG decoded + augmented (decode-bound)"), fontsize=9, loc="left")
        libs = list(dict.fromkeys(r["library"] for r in mine))
        handles = [plt.Rectangle((0, 0), 1, 1, color=LIBRARY_COLOURS.get(lib, "tab:gray")) for lib in libs]
        line_handles, line_labels = ax.get_legend_handles_labels()
        ax.legend(handles + line_handles, libs + line_labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    axes[-1, 0].set_xlabel("samples per second (log scale; whisker: min-max of the repeats)")
    fig.suptitle(title, fontsize=11)
    return fig


def regime_bars(rows: Sequence[dict[str, Any]], *, page_cache_mb_s: float | None = None,
                bytes_per_sample: dict[str, float] | None = None,
                title: str = "Samples/s per loader, grouped by regime"):
    """Chapter 05's main figure: every measured (loader, workers) row, raw and JPEG panels, with the
    page-cache read of each regime's bytes as a line (``page_cache_mb_s`` / ``bytes_per_sample[regime]``)."""
    lines: dict[str, list[tuple[float, str, str]]] = {}
    if page_cache_mb_s and bytes_per_sample:
        for regime, bps in bytes_per_sample.items():
            lines[regime] = [(page_cache_mb_s * 1e6 / bps, f"page-cache read: {page_cache_mb_s:,.0f} MB/s", ":")]
    good = [{**r, "label": _short(r["label"].removeprefix(f"{r['regime']} · "))} for r in rows if "error" not in r]
    return _grouped_bars(good, title=title, lines=lines)


def plot_worker_scaling(rows: Sequence[dict[str, Any]], *, ax=None,
                    title: str = "Workers: copy-bound flat or falling, decode-bound rising"):
    """Samples/s against ``num_workers``, one line per loader: solid raw, dashed JPEG."""
    if ax is None:
        _, ax = plt.subplots(figsize=(11, 4.5), layout="constrained")
    series: dict[tuple[str, str, str], list[tuple[int, float]]] = {}
    for r in rows:
        if "error" not in r:
            series.setdefault((r["regime"], r["library"], r["loader"]), []).append((r["num_workers"],
                                                                                   r["samples_per_s"]))
    for (regime, library, loader), points in series.items():
        if len(points) < 2:
            continue
        points.sort()
        ax.plot([w for w, _ in points], [v for _, v in points], "o-" if regime == "raw" else "s--",
                color=LIBRARY_COLOURS.get(library, "tab:gray"), label=_short(f"{regime} · {library}: {loader}", 60))
    ax.set_yscale("log")
    ax.set_xlabel("DataLoader workers")
    ax.set_ylabel("samples/s (log scale)")
    ax.set_xticks(sorted({r["num_workers"] for r in rows if "error" not in r}))
    ax.axhline(SEED_BAR, color="black", linestyle="--", linewidth=0.8)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_title(title, fontsize=10)
    return ax


def data_wait_bars(rows: Sequence[dict[str, Any]], *, ax=None,
                   title: str = "Share of training time spent waiting for data"):
    """Horizontal bars of each row's ``data_wait["fraction"]`` (0: the loader keeps up with the step)."""
    waited = [r for r in rows if "data_wait" in r]
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 0.3 * len(waited) + 1.4), layout="constrained")
    fractions = [r["data_wait"]["fraction"] for r in waited]
    ax.barh([_short(r["label"]) for r in waited], fractions,
            color=[LIBRARY_COLOURS.get(r["library"], "tab:gray") for r in waited])
    for i, f in enumerate(fractions):
        ax.text(f, i, f" {f:.0%}", va="center", fontsize=7)
    ax.set_xlim(0, 1.1)
    ax.invert_yaxis()
    ax.tick_params(axis="y", labelsize=7)
    ax.set_xlabel(f"fraction of the loop spent in next(loader) ({waited[0]['data_wait']['step'] if waited else ''})")
    ax.set_title(title, fontsize=10)
    return ax


def plot_shuffle_frontier(points: Sequence[dict[str, Any]], *, ax=None,
                     title: str = "Shuffle quality against speed (one point per loader)"):
    """Scatter: samples/s (log) against shuffle quality = displacement / 1/3 (1: as good as uniform)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 4.5), layout="constrained")
    for p in points:
        quality = p["displacement"] * 3
        ax.scatter(p["samples_per_s"], quality, s=40, color=LIBRARY_COLOURS.get(p["library"], "tab:gray"))
        ax.annotate(_short(p["label"], 45), (p["samples_per_s"], quality), fontsize=6, xytext=(4, 3),
                    textcoords="offset points")
    ax.set_xscale("log")
    ax.set_ylim(0, 1.15)
    ax.set_xlabel("samples/s (log scale)")
    ax.set_ylabel("mean displacement / uniform's (1 = uniform)")
    ax.set_title(title, fontsize=10)
    return ax
