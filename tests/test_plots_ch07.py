"""Chapter 07's warm/cold bars: value labels, tick labels and the legend do not overlap each other or the bars."""
from __future__ import annotations

import itertools

import matplotlib
import pytest

matplotlib.use("Agg")

from course_lib.course.plots_ch07 import warm_cold_bars
from course_lib.measure.throughput import ThroughputResult


def _result(label: str, rate: float, resident: float) -> ThroughputResult:
    return ThroughputResult(label=label, samples=int(rate), seconds=1.0, bytes_per_sample=12_288.0, items=10,
                            warmup_items=1, warmup_seconds=0.1, start_anon_mb=0, start_file_mb=0, peak_anon_mb=0,
                            peak_file_mb=0, resident_before=resident)


def test_nothing_overlaps_and_cold_bars_are_hatched():
    import matplotlib.pyplot as plt

    results = [_result("your loader (warm)", 1_924, 1.0), _result("mmap npy (warm)", 107_165, 1.0),
               _result("img tars + decode (warm)", 1_357, float("nan")), _result("your loader (cold)", 784, 0.0),
               _result("mmap npy (cold)", 24_625, 0.01)]
    ax = warm_cold_bars(results, ceiling_mb_s=5_781)
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = [t for t in ax.texts] + list(ax.get_yticklabels())
    boxes = [t.get_window_extent(renderer) for t in texts]
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b), "two labels overlap"
    legend = ax.get_legend().get_window_extent(renderer)
    for patch in ax.patches:
        assert not legend.overlaps(patch.get_window_extent(renderer)), "the legend covers a bar"
    figure_box = fig.bbox
    for box in [*boxes, legend, ax.title.get_window_extent(renderer), ax.xaxis.label.get_window_extent(renderer)]:
        assert figure_box.x0 <= box.x0 and box.x1 <= figure_box.x1 + 1, "a label is cut off"
        assert figure_box.y0 <= box.y0 and box.y1 <= figure_box.y1 + 1, "a label is cut off"
    for text, patch in zip(ax.texts, ax.patches):       # each value label starts right of its bar
        assert text.get_window_extent(renderer).x0 >= patch.get_window_extent(renderer).x1
    assert [p.get_hatch() for p in ax.patches] == ["", "", "", "//", "//"]
    plt.close(fig)


def test_no_results_is_refused():
    with pytest.raises(ValueError, match="no results"):
        warm_cold_bars([])
