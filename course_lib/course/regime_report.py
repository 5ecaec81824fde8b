"""Chapter 05's report text: what bounds each measured ratio, from the rows' own measurements."""
from __future__ import annotations

import statistics
from typing import Any, Sequence

from ..measure.regime_runs import best
from ..measure.regimes import COURSE_JPEG, SEED_JPEG


def goal_report(rows: Sequence[dict[str, Any]], goals: dict[str, Any], *, ceiling_mb_s: float | None = None,
                cores: int | None = None, load: float | None = None) -> list[dict[str, Any]]:
    """Each ratio of ``goals`` (:func:`~course_lib.measure.regimes.regime_goals`) with the bar ``make bench``
    compares it to, and where it is below, the measurements that bound it (CPU cores busy and CPU per sample of
    the rows, ``ceiling_mb_s`` (the page-cache read), ``cores`` and the 1-minute ``load`` average)."""
    raw_course = best(rows, library="course", regime="raw")
    raw_peer = max((r for r in rows if r.get("library") not in ("course", "seed") and "error" not in r
                    and not r.get("wraps_course") and r["regime"] == "raw"), key=lambda r: r["samples_per_s"],
                   default=None)
    jpeg0 = best(rows, library="course", regime="JPEG", loader=COURSE_JPEG, num_workers=0)
    jpeg2 = best(rows, library="course", regime="JPEG", loader=COURSE_JPEG, num_workers=2)
    return _report(rows, goals, raw_course, raw_peer, jpeg0, jpeg2, ceiling_mb_s, cores, load)


def _cores(row: dict[str, Any] | None, key: str = "cpu_cores") -> str:
    value = None if row is None else row.get(key)
    return "not measured" if value is None else f"{value:.2f}"


def _machine(cores: int | None, load: float | None) -> str:
    if cores is None or load is None:
        return ""
    return (f"; the 1-minute load average was {load:.1f} on {cores} cores"
            + (" (more runnable processes than cores: the runs shared them)" if load > cores else ""))


def _report(rows, out, raw_course, raw_peer, jpeg0, jpeg2, ceiling_mb_s, cores, load) -> list[dict[str, Any]]:
    report = []
    one = best(rows, library="course", regime="JPEG", loader="the same, torch.set_num_threads(1)", num_workers=0)
    bound = ""
    if out["decode_scaling"] is not None and out["decode_scaling"] < 1.8:
        main0, busy2 = jpeg0.get("main_cores"), jpeg2.get("cpu_cores")
        parts = [f"at 0 workers this process kept {_cores(jpeg0, 'main_cores')} cores busy"
                 + (" (the decoder plus torch's intra-op threads in the batch transform): the 0-worker baseline "
                    "already used more than one core" if main0 is not None and main0 > 1.05 else "")]
        if one:
            parts.append(f"over the one-thread 0-worker rate ({one['samples_per_s']:,.0f}/s) 2 workers gave "
                         f"{jpeg2['samples_per_s'] / one['samples_per_s']:.2f}x")
        parts.append(f"the 2-worker runs kept {_cores(jpeg2)} cores busy, {_cores(jpeg2, 'main_cores')} of them in "
                     "this process (collating, receiving batches)"
                     + (f": short of {cores} cores, so the runs also waited (worker start-up, transport), not only "
                        "computed" if busy2 is not None and cores and busy2 < 0.8 * cores else ""))
        ms0, ms2 = jpeg0.get("cpu_ms_per_sample"), jpeg2.get("cpu_ms_per_sample")
        if ms0 is not None and ms2 is not None:
            parts.append(f"CPU per delivered sample went from {ms0:.2f} ms at 0 workers to {ms2:.2f} ms at 2 (an upper "
                         "bound: the workers' start-up, the batches they prefetched for nothing and moving every "
                         "batch between processes count)")
        bound = "; ".join(parts) + _machine(cores, load)
    report.append({"goal": "course JPEG pipeline, 2 workers over 0 workers", "target": 1.8,
                   "measured": out["decode_scaling"], "bound": bound})
    missed = {w: v for w, v in out["course_vs_seed"].items() if v < 2}
    bound = "; ".join(
        f"at {w} workers the course pipeline cost {_ms(rows, 'course', COURSE_JPEG, w)} ms of CPU per delivered "
        f"sample and the seed's {_ms(rows, 'seed', SEED_JPEG, w)} ms (workers included, start-up and prefetched "
        f"batches too)" for w in missed)
    report.append({"goal": "course JPEG over the seed's pipeline, at equal workers (lowest)", "target": 2.0,
                   "measured": min(out["course_vs_seed"].values(), default=None),
                   "bound": bound + (_machine(cores, load) if bound else "")})
    bound = ""
    if out["raw_vs_peers"] is not None and out["raw_vs_peers"] < 15:
        kb = raw_course["mb_per_s"] / raw_course["samples_per_s"] * 1000
        bound = (f"the fastest peer ({out['raw_best_peer']}) ran {raw_peer['samples_per_s']:,.0f}/s and the course's "
                 f"row {raw_course['samples_per_s']:,.0f}/s ({raw_course['mb_per_s']:,.0f} MB/s, samples of "
                 f"{kb:,.1f} kB)")
        if ceiling_mb_s:
            at_ceiling = ceiling_mb_s / raw_course["mb_per_s"] * raw_course["samples_per_s"]
            bound += (f", {raw_course['mb_per_s'] / ceiling_mb_s:.0%} of the page-cache read measured here "
                      f"({ceiling_mb_s:,.0f} MB/s); at that rate the ratio would be "
                      f"{at_ceiling / raw_peer['samples_per_s']:.1f}x")
        runs = raw_course.get("runs") or []
        if runs:
            bound += (f"; a course run timed {statistics.median(r['samples'] for r in runs):,.0f} samples (one epoch "
                      f"of the image set after its first batch) in "
                      f"{statistics.median(r['seconds'] for r in runs) * 1000:.0f} ms")
        bound += _machine(cores, load)
    report.append({"goal": "course's fastest shuffled raw path over the fastest peer's", "target": 15.0,
                   "measured": out["raw_vs_peers"], "bound": bound})
    lowest = min(out["course_vs_peers"], key=lambda p: p["ratio"], default=None)
    bound = "; ".join(f"{p['peer']} at {p['num_workers']} workers" for p in out["peers_that_win_jpeg"])
    report.append({"goal": "course JPEG over every peer's JPEG, at equal workers (lowest)", "target": 1.0,
                   "measured": lowest and lowest["ratio"], "bound": bound and f"faster here: {bound}"})
    for item in report:
        m = item["measured"]
        item["met"] = None if m is None else m >= item["target"]
    return report


def _ms(rows: Sequence[dict[str, Any]], library: str, loader: str, w: int) -> str:
    row = best(rows, library=library, loader=loader, num_workers=w)
    value = row and row.get("cpu_ms_per_sample")
    return "not measured" if value is None else f"{value:.2f}"


def fast_enough(rows: Sequence[dict[str, Any]], *, batch_size: int, step_ms: float, cores: int,
                ceiling_mb_s: float | None = None) -> str:
    """Markdown: per regime, is the course's fastest loader fast enough for a ``step_ms`` step on batches of
    ``batch_size`` on this machine (its rate alone and while the step ran, against the step's demand), and what
    bounds it (the page-cache read for raw arrays; CPU per sample and ``cores`` for JPEG)."""
    demand = batch_size / (step_ms / 1000)
    lines = [f"A {step_ms:g} ms step on batches of {batch_size} asks for {demand:,.0f} samples/s."]
    for regime in ("raw", "JPEG"):
        row = best([r for r in rows if not r.get("loader", "").startswith("the same")], library="course",
                   regime=regime)
        if row is None:
            continue
        text = (f"- **{regime}**: the course's fastest row ({row['loader']}, {row['num_workers']} workers) delivered "
                f"{row['samples_per_s']:,.0f} samples/s alone, {row['samples_per_s'] / demand:.1f}x the demand"
                + (" (runs too short to conclude from)" if row.get("too_short") else ""))
        waits = [r for r in rows if r.get("library") == "course" and r["regime"] == regime and "data_wait" in r]
        if waits:
            w = max(waits, key=lambda r: r["data_wait"]["samples_per_s"])
            text += (f"; beside the step, at {w['num_workers']} workers, it trained "
                     f"{w['data_wait']['samples_per_s']:,.0f} samples/s and waited {w['data_wait']['fraction']:.0%}")
        if regime == "raw" and ceiling_mb_s:
            share = row["mb_per_s"] / ceiling_mb_s
            text += (f". What bounds it: copying, {share:.0%} of the page-cache read measured here "
                     f"({ceiling_mb_s:,.0f} MB/s)" + ("; above 100%: the two ran at different moments of a busy "
                                                      "machine, so neither is a ceiling" if share > 1 else ""))
        ms = row.get("cpu_ms_per_sample")
        if regime == "JPEG" and ms:
            text += (f". What bounds it: CPU, {ms:.2f} ms per delivered sample, so {cores} cores can give at most "
                     f"about {cores * 1000 / ms:,.0f} samples/s, less what the training step itself needs")
        lines.append(text + ".")
    return "\n".join(lines)
