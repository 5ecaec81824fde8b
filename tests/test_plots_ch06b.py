"""Chapter 06b's strip of runs: one dot per run, the median marked, the legend outside the data, nothing cut off."""
from __future__ import annotations

import dataclasses

import matplotlib

matplotlib.use("Agg")

from course_lib.course.plots_ch06b import runs_strip  # noqa: E402
from course_lib.measure.throughput import ThroughputResult  # noqa: E402


def _result(label: str, runs: tuple[float, ...]) -> ThroughputResult:
    median = sorted(runs)[(len(runs) - 1) // 2]
    return ThroughputResult(label=label, samples=int(median), seconds=1.0, bytes_per_sample=3072.0, items=10,
                            warmup_items=1, warmup_seconds=0.1, start_anon_mb=0, start_file_mb=0, peak_anon_mb=0,
                            peak_file_mb=0, runs_samples_per_s=runs)


def test_every_run_is_a_dot_and_the_legend_is_outside_the_data():
    results = [_result("HTTP, clean server", (9_002, 9_427, 9_572)),
               _result("HTTP, faulty server", (1_637, 2_147, 2_276))]
    ax = runs_strip(results)
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    dots = [tuple(xy) for c in ax.collections for xy in c.get_offsets()]
    assert sorted(dots) == sorted((x, row) for row, r in enumerate(results) for x in r.runs_samples_per_s)
    legend = ax.get_legend().get_window_extent(renderer)
    assert not legend.overlaps(ax.get_window_extent(renderer)), "the legend sits on the data"
    for box in [legend, *[t.get_window_extent(renderer) for t in ax.get_yticklabels()],
                ax.title.get_window_extent(renderer)]:
        assert fig.bbox.x0 <= box.x0 and box.x1 <= fig.bbox.x1 + 1, "a label is cut off"


def test_a_single_run_is_drawn_at_its_rate():
    one = dataclasses.replace(_result("one run", (500.0,)), runs_samples_per_s=())
    ax = runs_strip([one])
    assert [tuple(xy) for c in ax.collections for xy in c.get_offsets()] == [(500, 0)]
