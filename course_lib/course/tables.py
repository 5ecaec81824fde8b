"""Small tables that print as text and render as HTML in Jupyter."""
from __future__ import annotations

import html
from typing import Any, Iterable, Mapping, Sequence

from ..measure.throughput import ThroughputResult


class Table:
    """Rows of cells with a header; ``print`` gives aligned text, Jupyter shows HTML."""

    def __init__(self, rows: Iterable[Sequence[Any]] | Mapping[str, Any], header: Sequence[str] = (),
                 title: str = ""):
        if isinstance(rows, Mapping):
            rows = [(k, _fmt(v)) for k, v in rows.items()]
        self.rows = [[_fmt(c) for c in row] for row in rows]
        self.header, self.title = [str(h) for h in header], title

    def __str__(self) -> str:
        grid = ([self.header] if self.header else []) + self.rows
        widths = [max(len(r[i]) for r in grid if i < len(r)) for i in range(max(len(r) for r in grid))]
        lines = [self.title] if self.title else []
        lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in grid]
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        printer.text(str(self))

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self.header)
        body = "".join("<tr>" + "".join(f"<td style='text-align:left'>{html.escape(c)}</td>" for c in row) + "</tr>"
                       for row in self.rows)
        caption = f"<caption>{html.escape(self.title)}</caption>" if self.title else ""
        return f"<table>{caption}{'<tr>' + head + '</tr>' if head else ''}{body}</table>"


def results_table(results: Iterable[ThroughputResult], title: str = "Measured on this machine", *,
                  ceiling_mb_s: float | None = None, demand_samples_s: float | None = None) -> Table:
    """One row per measured loop: rates, memory growth, and ratios that tell the rows apart.

    ``vs fastest``: samples/s over the fastest row of this table (measured side by side). ``of ceiling``
    (with ``ceiling_mb_s``): MB/s as a fraction of a measured ceiling such as the page-cache read of the same
    files. ``x demand`` (with ``demand_samples_s``): how many times over the loop could feed a consumer that
    takes that many samples/s (a training step, measured); below 1 the training loop waits for data.
    """
    results = list(results)
    fastest = max((r.samples_per_s for r in results), default=0.0) or 1.0
    header = ["loader", "samples", "samples/s", "MB/s", "anon MB", "file MB", "vs fastest"]
    if ceiling_mb_s:
        header.append("of ceiling")
    if demand_samples_s:
        header.append("x demand")
    rows = []
    for r in results:
        row = [r.label, f"{r.samples:,}", f"{r.samples_per_s:,.0f}", f"{r.mb_per_s:,.1f}",
               f"{r.anon_growth_mb:+,.0f}", f"{r.file_growth_mb:+,.0f}", f"{r.samples_per_s / fastest:.2f}"]
        if ceiling_mb_s:
            row.append(f"{r.mb_per_s / ceiling_mb_s:.0%}")
        if demand_samples_s:
            row.append(f"{r.samples_per_s / demand_samples_s:,.1f}")
        rows.append(row)
    return Table(rows, header, title)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    return str(value)
