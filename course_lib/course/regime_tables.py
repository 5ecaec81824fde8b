"""Chapter 05's tables: measured rows of every loader (median, spread, memory, data wait) and failed peers."""
from __future__ import annotations

from typing import Any, Iterable

from .tables import Table


def regime_table(rows: Iterable[dict[str, Any]], title: str = "Measured side by side on this machine") -> Table:
    """One line per (loader, workers): median samples/s with min-max of the repeats, MB/s, start-up,
    peak PSS growth (anonymous / file-backed / shared memory, workers included) and the data-wait share."""
    out = []
    for r in rows:
        if "error" in r:
            out.append((r.get("regime", "-"), r["library"], r.get("loader", "-"), "-", "not measured", "", "", "",
                        "", r["error"]))
            continue
        wait = r.get("data_wait")
        out.append((r["regime"], r["library"], r["loader"], r["num_workers"], f"{r['samples_per_s']:,.0f}",
                    f"{r['min']:,.0f}-{r['max']:,.0f}", f"{r['mb_per_s']:,.1f}", f"{r['start_s']:.2f}",
                    f"{r['pss_anon_mb']:+,.0f} / {r['pss_file_mb']:+,.0f} / {r['pss_shmem_mb']:+,.0f}",
                    "" if wait is None else f"{wait['fraction']:.0%}"))
    return Table(out, ["regime", "library", "loader", "workers", "samples/s", "min-max", "MB/s", "start s",
                       "PSS MB anon/file/shm", "data wait (or why not measured)"], title)
