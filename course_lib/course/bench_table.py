"""The loader benchmark's result as a fixed-width text table (what ``python -m course_lib.bench`` prints)."""
from __future__ import annotations

from ..measure.cold_cache import cold_lines
from ..measure.shuffle_frontier import frontier_lines


def format_table(result: dict) -> str:
    """The benchmark as a fixed-width text table."""
    memcpy = result.get("memcpy_mb_per_s")
    lines = [f"data: {result['data']} ({result['samples']:,} samples x {result['bytes_per_sample']:,} B), "
             f"median (min-max) of {result['repeat']}",
             f"page-cache sequential read: {result['page_cache_mb_per_s']:,.0f} MB/s (8 MiB chunks), "
             f"{result['page_cache_1mib_mb_per_s']:,.0f} MB/s (1 MiB chunks)"
             + (f"; warm memcpy: {memcpy:,.0f} MB/s" if memcpy else ""),
             f"{'loader':<56} {'workers':>7} {'samples/s (min-max)':>30} {'MB/s':>7} {'cache':>5} "
             f"{'of page cache':>13} {'of memcpy':>9}"]
    for r in result["rows"]:
        w = "-" if r["workers"] is None else str(r["workers"])
        spread = (f"{r['samples_per_s']:,.0f} ({r['samples_per_s_min']:,.0f}-{r['samples_per_s_max']:,.0f})"
                  if "samples_per_s_min" in r else f"{r['samples_per_s']:,.0f}")
        ratio_memcpy = f"{r['ratio_to_memcpy']:.0%}" if "ratio_to_memcpy" in r else "-"
        lines.append(f"{r['loader']:<56} {w:>7} {spread:>30} {r['mb_per_s']:>7,.0f} {r.get('cache', '?'):>5} "
                     f"{r['ratio_to_page_cache']:>13.0%} {ratio_memcpy:>9}")
    if result.get("frontier"):
        lines += ["", "shuffle quality / speed frontier (batched, warm; quality of one epoch's order):",
                  *frontier_lines(result["frontier"], result["page_cache_mb_per_s"])]
    if result.get("cold"):
        lines += ["", *cold_lines(result["cold"])]
    if "regimes" in result:
        from .regime_tables import regime_table

        reg = result["regimes"]
        lines += ["", str(regime_table(reg["rows"] + reg["peer_rows"],
                                       title=f"Regimes and peer libraries on {reg['image_dir']}"))]
        goals = reg["goals"]
        lines.append(f"goals: decode-bound 2 vs 0 workers {_x(goals['decode_scaling'])} (>= 1.8x); course vs seed "
                     f"JPEG {', '.join(f'{w} workers {_x(r)}' for w, r in goals['course_vs_seed'].items())} (>= 2x); "
                     f"best shuffled raw vs fastest peer {_x(goals['raw_vs_peers'])} (>= 15x); peers faster on JPEG: "
                     f"{_winners(goals['peers_that_win_jpeg'])}")
        lines.append(f"conversions (not counted): {reg['timings'] or 'reused'}")
    lines += [f"skipped: {reason}" for reason in result.get("skipped", [])]
    return "\n".join(lines)


def _winners(peers: list[dict]) -> str:
    return ", ".join(f"{p['peer']} @{p['num_workers']}" for p in peers) or "none"


def _x(ratio: float | None) -> str:
    return "n/a" if ratio is None else f"{ratio:.2f}x"
