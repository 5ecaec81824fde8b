"""Chapter 05's tables: measured rows of every loader (median, spread, memory, data wait) and failed peers."""
from __future__ import annotations

from typing import Any, Iterable

from .tables import Table


def regime_table(rows: Iterable[dict[str, Any]], title: str = "Measured side by side on this machine") -> Table:
    """One line per (loader, workers), 8 columns: median samples/s with min-max of the repeats (flagged when a run
    was below ``measure_throughput``'s minimum duration or sample count), CPU cores busy (this process + its
    workers, per second of the run), CPU ms per delivered sample, peak PSS growth (anonymous / file-backed /
    shared memory, workers included) and the data-wait share. MB/s and start-up stay in the rows (the record)."""
    out = []
    for r in rows:
        if "error" in r:
            out.append((r.get("regime", "-"), f"{r['library']}: {r.get('loader', '-')}", "-", "not measured", "", "",
                        "", r["error"]))
            continue
        wait = r.get("data_wait")
        cores, ms = r.get("cpu_cores"), r.get("cpu_ms_per_sample")
        short = " (too short)" if r.get("too_short") else ""
        out.append((r["regime"], f"{r['library']}: {r['loader']}", r["num_workers"],
                    f"{r['samples_per_s']:,.0f} ({r['min']:,.0f}-{r['max']:,.0f}){short}",
                    "-" if cores is None else f"{cores:.2f}", "-" if ms is None else f"{ms:.3g}",
                    f"{r['pss_anon_mb']:+,.0f} / {r['pss_file_mb']:+,.0f} / {r['pss_shmem_mb']:+,.0f}",
                    "" if wait is None else f"{wait['fraction']:.0%}"))
    return Table(out, ["regime", "loader", "workers", "samples/s (min-max)", "CPU cores busy", "CPU ms/sample",
                       "PSS MB anon/file/shm", "data wait (or why not measured)"], title)


def goals_markdown(goals: dict[str, Any]) -> str:
    """Each goal of a :func:`~course_lib.course.regime_report.goal_report` list (``goals["report"]``) as a
    Markdown line: the measured value against its bar, and what bounds it where it is below."""
    lines = []
    for g in goals["report"]:
        measured = "not measured" if g["measured"] is None else f"{g['measured']:.2f}x"
        verdict = {True: "met", False: "not met", None: "not judged"}[g["met"]]
        lines.append(f"- {g['goal']}: **{measured}** (goal {g['target']:g}x): **{verdict}**"
                     + (f". What bounds it: {g['bound']}." if g["bound"] else "."))
    return "\n".join(lines)


def _rate_cell(row: dict[str, Any] | None) -> str:
    if row is None:
        return "-"
    spread = f" ({row['min']:,.0f}-{row['max']:,.0f})" if "min" in row and "max" in row else ""
    return f"{row['samples_per_s']:,.0f}{spread}"


def _key(row: dict[str, Any]) -> tuple:
    return row.get("library"), row.get("loader"), row.get("num_workers")


def beside_reference(reference_rows: Iterable[dict[str, Any]], here_rows: Iterable[dict[str, Any]], *,
                     machine: str, title: str) -> Table:
    """Each reference row (another machine) beside this machine's row of the same loader and worker count:
    median samples/s (min-max) and the ratio to the same loader's 0-worker rate, on each machine."""
    from .reference_machine import worker_scaling

    reference_rows = list(reference_rows)
    here = {_key(r): r for r in here_rows if "error" not in r}
    out = []
    for r in reference_rows:
        mine = here.get(_key(r))
        ratio_there = worker_scaling(reference_rows, library=r["library"], loader=r["loader"]).get(r["num_workers"])
        ratio_here = worker_scaling(here.values(), library=r["library"], loader=r["loader"]).get(r["num_workers"])
        out.append((r["regime"], f"{r['library']}: {r['loader']}",
                    "dataset itself" if r["num_workers"] is None else r["num_workers"], _rate_cell(r),
                    "-" if ratio_there is None else f"{ratio_there:.2f}", _rate_cell(mine),
                    "-" if ratio_here is None or mine is None else f"{ratio_here:.2f}"))
    return Table(out, ["regime", "loader", "workers", f"{machine}: samples/s (min-max)", "x its 0 workers",
                       "this machine: samples/s (min-max)", "x its 0 workers"], title)


def clean_feed_rows(reference: dict[str, Any]) -> list[dict[str, Any]]:
    """The reference run's GPU feed rows whose warm-up covered every worker's first batch: rows with more workers
    than warm-up batches counted worker start-up as waiting, so they are left out (not shown, not quoted)."""
    warmup = reference["machine"]["feed_warmup"]
    return [r for r in reference["feed"] if r["num_workers"] <= warmup]


def feed_table(reference: dict[str, Any], title: str) -> Table:
    """The reference run's clean GPU feed rows (:func:`clean_feed_rows`): step time, the rate that step asks for,
    what was trained and the wait share."""
    batch = reference["machine"]["feed_batch_size"]
    out = []
    for r in clean_feed_rows(reference):
        demand = batch / (r["step_ms"] / 1000)
        out.append((r["loader"], r["num_workers"], r["step"], f"{r['step_ms']:.2f}", f"{demand:,.0f}",
                    f"{r['samples_per_s']:,.0f}", f"{r['wait_fraction']:.0%}"))
    return Table(out, ["loader", "workers", "step", "step ms", "step asks samples/s", "trained samples/s",
                       "waiting for data"], title)


def transfer_beside(reference: dict[str, Any], here: Iterable[Any], *, batch_size: int, title: str) -> Table:
    """Transfer modes: the reference run's rates to its GPU beside this machine's (``ThroughputResult`` rows)."""
    mine = {r.label.split(" -> ")[0]: r for r in here}
    out = []
    for r in reference["transfer"]:
        mode, device = r["mode"].split(" -> ")
        m = mine.get(mode) if r["batch_size"] == batch_size else None
        out.append((mode, r["batch_size"], f"{r['samples_per_s']:,.0f} to {device}",
                    "-" if m is None else f"{m.samples_per_s:,.0f} ({m.spread[0]:,.0f}-{m.spread[1]:,.0f}) to "
                                          f"{m.label.split(' -> ')[1]}"))
    return Table(out, ["mode", "batch", f"{reference['machine']['name']}: samples/s", "this machine: samples/s"],
                 title)
