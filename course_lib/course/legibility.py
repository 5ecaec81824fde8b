"""Can a reader read a figure? Overlapping tick labels or text, a legend over data, a label cut off.

Draws the figure once (Agg) and compares the bounding boxes matplotlib's renderer gives every artist
(``get_window_extent``): :func:`legibility_problems` returns one line per problem, naming the texts.
"""
from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np

TOUCH_PX = 1.0   # boxes may touch; they must not overlap by more than this many pixels


def legibility_problems(fig: Any) -> list[str]:
    """What a reader could not read in ``fig``: one line per overlap, covered datum or text cut off."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    problems: list[str] = []
    texts = _texts(fig, renderer)
    for name, box in texts:
        if not _inside(box, fig.bbox):
            problems.append(f"cut off: {name} reaches outside the figure")
    for (a, box_a), (b, box_b) in combinations(texts, 2):
        if _overlap(box_a, box_b):
            problems.append(f"overlap: {a} and {b}")
    for ax in fig.axes:
        legend = ax.get_legend()
        if legend is None or not legend.get_visible():
            continue
        box = legend.get_window_extent(renderer)
        if not _inside(box, fig.bbox):
            problems.append(f"cut off: the legend of {_axes_name(ax)}")
        covered = [what for what, data in _data_boxes(ax, renderer) if _overlap(box, data)]
        if covered:
            problems.append(f"legend covers data in {_axes_name(ax)}: {', '.join(covered[:3])}")
        for other in fig.axes:
            if other is not ax and other.get_visible() and _overlap(box, other.get_window_extent(renderer)):
                problems.append(f"the legend of {_axes_name(ax)} covers {_axes_name(other)}")
    for ax in fig.axes:   # an axes' own texts must not run into another axes' plotting area
        own = [(n, b) for n, b in _axes_texts(ax, renderer)]
        for other in fig.axes:
            if other is ax or not other.get_visible() or not other.axison and not other.images:
                continue
            area = other.get_window_extent(renderer)
            problems += [f"overlap: {n} runs into {_axes_name(other)}" for n, b in own if _overlap(b, area)]
    return problems


def _axes_name(ax: Any) -> str:
    title = ax.get_title() or ax.get_title(loc="left") or ax.get_ylabel() or ax.get_xlabel()
    return f"axes {title!r}" if title else f"axes #{ax.figure.axes.index(ax)}"


def _visible(text: Any) -> bool:
    return text.get_visible() and bool(text.get_text().strip())


def _drawn_ticks(axis: Any) -> list[Any]:
    try:
        return list(axis._update_ticks())   # the ticks matplotlib draws (inside the view limits)
    except AttributeError:                  # pragma: no cover - older matplotlib
        return axis.get_major_ticks()


def _axes_texts(ax: Any, renderer: Any) -> list[tuple[str, Any]]:
    """(name, box) of an axes' tick labels, axis labels, titles and texts (not its legend)."""
    if not ax.get_visible():
        return []
    out = []
    if ax.axison:
        for axis, which in ((ax.xaxis, "x"), (ax.yaxis, "y")):
            for tick in _drawn_ticks(axis):
                for label in (tick.label1, tick.label2):
                    if _visible(label):
                        out.append((f"{which} tick label {label.get_text()!r}", label.get_window_extent(renderer)))
            if _visible(axis.label):
                out.append((f"{which} label {axis.label.get_text()!r}", axis.label.get_window_extent(renderer)))
    for title in (ax.title, ax._left_title, ax._right_title):
        if _visible(title):
            out.append((f"title {title.get_text()!r}", title.get_window_extent(renderer)))
    for text in ax.texts:
        if _visible(text):
            out.append((f"text {text.get_text()!r}", text.get_window_extent(renderer)))
    return out


def _texts(fig: Any, renderer: Any) -> list[tuple[str, Any]]:
    out = []
    for ax in fig.axes:
        out += _axes_texts(ax, renderer)
    extra = [fig._suptitle] if getattr(fig, "_suptitle", None) is not None else []
    for text in fig.texts + [t for t in extra if t not in fig.texts]:
        if _visible(text):
            out.append((f"figure text {text.get_text()!r}", text.get_window_extent(renderer)))
    return out


def _data_boxes(ax: Any, renderer: Any) -> list[tuple[str, Any]]:
    """(name, box) of what an axes plots: bars, the points of its data lines and scatters, its value labels.
    Reference lines drawn across the axes (``axvline``/``axhline``) are not data."""
    from matplotlib.transforms import Bbox

    out = [(f"bar of {p.get_width():.3g} x {p.get_height():.3g}", p.get_window_extent(renderer))
           for p in ax.patches if p.get_visible() and p.get_width() and p.get_height()]
    for line in ax.lines:
        if not line.get_visible() or line.get_transform() != ax.transData:
            continue
        for x, y in ax.transData.transform(np.asarray(line.get_xydata(), dtype=float)):
            if np.isfinite([x, y]).all():
                out.append((f"a point of line {line.get_label()!r}", Bbox.from_extents(x - 2, y - 2, x + 2, y + 2)))
    for coll in ax.collections:
        offsets = coll.get_offsets()
        if coll.get_visible() and len(offsets):
            for x, y in coll.get_offset_transform().transform(np.asarray(offsets, dtype=float)):
                if np.isfinite([x, y]).all():
                    out.append(("a scatter point", Bbox.from_extents(x - 3, y - 3, x + 3, y + 3)))
    out += [(f"label {t.get_text()!r}", t.get_window_extent(renderer)) for t in ax.texts if _visible(t)]
    return out


def _overlap(a: Any, b: Any) -> bool:
    return (min(a.x1, b.x1) - max(a.x0, b.x0) > TOUCH_PX) and (min(a.y1, b.y1) - max(a.y0, b.y0) > TOUCH_PX)


def _inside(box: Any, frame: Any) -> bool:
    return (box.x0 >= frame.x0 - TOUCH_PX and box.y0 >= frame.y0 - TOUCH_PX and box.x1 <= frame.x1 + TOUCH_PX
            and box.y1 <= frame.y1 + TOUCH_PX)
