"""Chapter 06's scaling figures as tables: request timings per store, and the shards/ranks/workers plan."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..distributed.scaling import StoreTiming
from .tables import Table


def timing_table(timings: Sequence[StoreTiming], title: str = "") -> Table:
    """One row per store: first-byte latency and one-stream bandwidth, median and spread."""
    return Table([t.row() for t in timings], header=["store", "first byte, ms: median [min-max]",
                                                     "one stream, MB/s: median [min-max]",
                                                     "repeats (latency / bandwidth)"], title=title)


def scaling_table(rows: Sequence[dict[str, Any]], title: str = "", columns: Sequence[str] = ()) -> Table:
    """:func:`scaling_rows` as a table (shares as percentages): ``columns`` of them (all when empty)."""
    header = list(columns) if columns else list(rows[0]) if rows else []
    unknown = [c for c in header if rows and c not in rows[0]]
    if unknown:
        raise KeyError(f"no column {unknown} in the scaling rows; they have {list(rows[0])}")
    return Table([[_fmt(k, r[k]) for k in header] for r in rows], header=header, title=title)


def _fmt(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.1%}" if key.endswith("share") else f"{value:,.2f}" if value < 10 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)
