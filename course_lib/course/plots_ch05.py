"""Chapter 05b's chart of every chapter's records: one panel per (regime, cache state), readable bar by bar."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .plots import SEED_BAR, library_of, plt, regime_of

CACHE_ORDER = ("cold", "warm", "partly cached", "unknown")


def cache_group(result: dict[str, Any]) -> str:
    """``cold``, ``warm``, ``partly cached`` or ``unknown``: the measured cache state a result was timed in."""
    state = str(result.get("cache", "unknown"))
    return "partly cached" if state.startswith("partly") else state if state in CACHE_ORDER else "unknown"


def records_panels(records: Iterable[dict[str, Any]], *, title: str = "Every chapter's records, grouped"):
    """Horizontal log-scale bars of every chapter's results, one panel per (regime, cache state) that has
    results, each panel sorted by rate; bars coloured by library; the seed's bar as a line; legend outside."""
    groups: dict[tuple[str, str], list[tuple[str, float, str]]] = {}
    for rec in records:
        for r in rec["results"]:
            key = (regime_of(r["label"]), cache_group(r))
            text = r["label"].split(" · ", 1)[-1] if r["label"].startswith(("raw · ", "JPEG · ")) else r["label"]
            label = f"{rec['chapter'][:3].rstrip('_')}: {text}"
            label = label if len(label) <= 60 else label[:40] + "…" + label[-19:]  # keep the worker count
            groups.setdefault(key, []).append((label, r["samples_per_s"], library_of(r["label"])))
    keys = sorted(groups, key=lambda k: (k[0] != "raw", CACHE_ORDER.index(k[1])))
    if not keys:
        raise ValueError("no results in the records: run the chapters first (make course)")
    heights = [0.28 * len(groups[k]) + 0.9 for k in keys]
    fig, axes = plt.subplots(len(keys), 1, figsize=(11, sum(heights) + 0.6), layout="constrained",
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    libraries = sorted({lib for k in keys for _, _, lib in groups[k]})
    colours = {lib: plt.cm.tab10(i % 10) for i, lib in enumerate(libraries)}
    for ax, key in zip(axes[:, 0], keys):
        bars = sorted(groups[key], key=lambda b: b[1])
        ax.barh(range(len(bars)), [b[1] for b in bars], color=[colours[b[2]] for b in bars])
        ax.set_yticks(range(len(bars)), [b[0] for b in bars], fontsize=7)
        ax.set_xscale("log")
        ax.axvline(SEED_BAR, color="black", linestyle=":", linewidth=1)
        ax.set_title(f"{key[0]} samples, {key[1]}", fontsize=9, loc="left")
    axes[-1, 0].set_xlabel("samples/s (log scale); dotted: the seed's bar")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[lib]) for lib in libraries]
    fig.legend(handles, libraries, loc="outside right upper", fontsize=8, title="library")
    fig.suptitle(title)
    return fig


def frontier_panels(points: Iterable[dict[str, Any]], *, title: str = "Shuffle quality against speed"):
    """Two panels sharing the rate axis (samples/s, log): displacement relative to a uniform shuffle (1: as
    far as uniform) and the share of disk neighbours arriving together (0: none); one marker per loader, the
    legend outside the data."""
    points = list(points)
    if not points:
        raise ValueError("no shuffle statistics to plot")
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True, layout="constrained")
    markers = "osD^v<>ph*"
    for i, p in enumerate(points):
        style = dict(marker=markers[i % len(markers)], color=plt.cm.tab10(i % 10), linestyle="", markersize=8)
        left.plot(p["displacement"] * 3, p["samples_per_s"], label=p["label"], **style)
        right.plot(p["neighbours"], p["samples_per_s"], **style)
    left.set_yscale("log")
    for ax in (left, right):
        ax.margins(x=0.12, y=0.15)  # no marker on the frame
    left.set_ylabel("samples/s (log scale)")
    left.set_xlabel("displacement / uniform's (1 = moved as far as uniform)")
    right.set_xlabel("disk neighbours arriving together (share of arrivals)")
    right.xaxis.set_major_formatter(plt.matplotlib.ticker.PercentFormatter(1.0))
    fig.legend(loc="outside lower center", ncols=2, fontsize=8)
    fig.suptitle(title)
    return fig
