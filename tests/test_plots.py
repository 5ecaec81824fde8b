"""Every figure the course draws can be read: no overlapping tick labels or text, no legend over data, nothing
cut off (course/legibility.py measures the renderer's bounding boxes). Inputs are fabricated at the sizes and
label lengths the chapters produce (labels as the loaders write them, rates from ~100 to ~10^6 samples/s)."""
from __future__ import annotations

from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from course_lib.course import plots  # noqa: E402
from course_lib.course.legibility import legibility_problems  # noqa: E402
from course_lib.measure.throughput import ThroughputResult  # noqa: E402

RNG = np.random.default_rng(0)
LOADERS = ["load everything (RAM)", "one file per sample", "seed pattern (sample shuffle, np.void)",
           "mmap sample shuffle, per sample", "mmap block shuffle, batched 256", "mmap no shuffle, batched 256",
           "webdataset stock (shuffle 1000, decode)", "webdataset blocks, batched 256 [DataLoader, 2 workers]"]
RATES = [950_000.0, 2_100.0, 480.0, 61_000.0, 1_450_000.0, 2_300_000.0, 9_800.0, 820_000.0]


def result(label: str, rate: float) -> ThroughputResult:
    seconds = 2.0
    return ThroughputResult(label=label, samples=int(rate * seconds), seconds=seconds, bytes_per_sample=12_304,
                            items=int(rate * seconds / 256) + 1, warmup_items=1, warmup_seconds=0.3,
                            start_anon_mb=310.0, start_file_mb=20.0, peak_anon_mb=310 + rate / 2e4,
                            peak_file_mb=20 + rate / 1e4, resident_before=1.0)


def regime_rows() -> list[dict]:
    rows = []
    for regime, scale in (("raw", 1.0), ("JPEG", 0.004)):
        for library, loader in (("course", "mmap block shuffle, batched"), ("seed", "seed pattern"),
                                ("litdata", "StreamingDataset"), ("HF datasets", "datasets.Dataset.with_format"),
                                ("torchdata", "StatefulDataLoader over MmapShardDataset"),
                                ("webdataset", "WebDataset(shardshuffle) + decode")):
            for workers in (0, 2):
                rate = scale * RNG.uniform(2e3, 2e6) * (1 + workers * (regime == "JPEG"))
                rows.append({"label": f"{regime} · {library}: {loader} [{workers} workers]", "regime": regime,
                             "library": library, "loader": loader, "num_workers": workers, "samples_per_s": rate,
                             "min": rate * 0.9, "max": rate * 1.1,
                             "data_wait": {"fraction": float(RNG.uniform(0, 0.95)), "step": "busy step of 20 ms"}})
    return rows


def records() -> list[dict]:
    return [{"chapter": f"0{i}_chapter", "results": [{"label": f"{regime} · {lib}: {name}", "samples_per_s": rate}
                                                     for name, rate in zip(LOADERS, RATES)]}
            for i, (regime, lib) in enumerate([("raw", "course"), ("JPEG", "litdata"), ("raw", "torchdata")])]


FIGURES = {
    "throughput_bars": lambda: plots.throughput_bars([result(n, r) for n, r in zip(LOADERS, RATES)],
                                                     ceiling_mb_s=6_500.0).figure,
    "memory_bars": lambda: plots.memory_bars([result(n, r) for n, r in zip(LOADERS, RATES)]).figure,
    "plot_plan": lambda: plots.plot_plan([[np.arange(r * 50 + u * 200, r * 50 + u * 200 + 50) for u in range(5)]
                                          for r in range(4)], 1000).figure,
    "shuffle_buffer_plot": lambda: plots.shuffle_buffer_plot(
        {s: {"displacement": min(1 / 3, 0.01 + s / 3e4), "neighbours": max(0.0, 1 - s / 1e4)}
         for s in (0, 10, 100, 1000, 10_000)}, 12_304),
    "memory_growth_plot": lambda: plots.memory_growth_plot(np.array([[0, 300], [100, 410], [200, 520], [400, 730]]),
                                                           1.07).figure,
    "image_grid": lambda: plots.image_grid(np.array(
        [(RNG.integers(0, 255, (3, 32, 32), dtype=np.uint8), i % 10, 10_000 + i) for i in range(16)],
        dtype=[("x", np.uint8, (3, 32, 32)), ("y", np.int64), ("idx", np.int64)])),
    "plot_records": lambda: plots.plot_records(records()),
    "plot_records (none yet)": lambda: plots.plot_records([]),
    "regime_bars": lambda: plots.regime_bars(regime_rows(), page_cache_mb_s=6_500.0,
                                             bytes_per_sample={"raw": 12_304, "JPEG": 3_100}),
    "plot_worker_scaling": lambda: plots.plot_worker_scaling(regime_rows()).figure,
    "data_wait_bars": lambda: plots.data_wait_bars(regime_rows()).figure,
    "plot_shuffle_frontier": lambda: plots.plot_shuffle_frontier(
        [{"label": f"{setting}, batched 256", "library": "course", "samples_per_s": rate, "displacement": d}
         for setting, rate, d in (("no shuffle", 2.3e6, 0.0), ("block shuffle (block 64)", 1.4e6, 0.31),
                                  ("sample (full permutation)", 6.1e4, 0.333), ("shuffle buffer 1000", 9.8e3, 0.12),
                                  ("block shuffle (block 512)", 1.9e6, 0.27))]).figure,
    "epoch_start_bars": lambda: plots.epoch_start_bars(
        {name: [SimpleNamespace(first_item_seconds=s) for s in (0.41, 0.05, 0.04)]
         for name in ("mmap, 2 workers", "mmap, persistent workers", "webdataset, 2 workers", "torchdata")}).figure,
}


@pytest.mark.parametrize("name", FIGURES)
def test_figure_is_legible(name):
    fig = FIGURES[name]()
    try:
        assert legibility_problems(fig) == [], name
    finally:
        plt.close(fig)


def test_every_plotting_function_is_drawn_here():
    drawn = {n.split(" ")[0] for n in FIGURES}
    public = {n for n, f in vars(plots).items() if callable(f) and not n.startswith("_") and f.__doc__
              and getattr(f, "__module__", "").startswith("course_lib.course") and n not in ("library_of", "regime_of")
              and not isinstance(f, type)}
    assert public <= drawn, f"draw these in FIGURES too: {sorted(public - drawn)}"


# -- the check can fail ---------------------------------------------------------------------------------------
def test_planted_overlapping_tick_labels_are_found():
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.bar(range(12), range(12), tick_label=[f"a long loader name {i}" for i in range(12)])
    found = legibility_problems(fig)
    plt.close(fig)
    assert any(p.startswith("overlap: x tick label 'a long loader name") for p in found), found


def test_planted_legend_over_data_and_cut_off_title_are_found():
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1, 2], [2, 2, 2], "o-", label="a line through the legend's corner")
    ax.legend(loc="upper right")
    ax.set_ylim(0, 2.1)
    ax.set_title("a title far too long for a figure this narrow, so it runs off both edges of it")
    found = legibility_problems(fig)
    plt.close(fig)
    assert any(p.startswith("legend covers data") for p in found), found
    assert any(p.startswith("cut off: title") for p in found), found


def test_planted_overlapping_texts_are_found():
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.text(0.5, 0.5, "first label")
    ax.text(0.52, 0.5, "second label")
    found = legibility_problems(fig)
    plt.close(fig)
    assert any("'first label'" in p and "'second label'" in p for p in found), found


def test_a_clean_figure_has_no_problem():
    fig, ax = plt.subplots(figsize=(5, 3), layout="constrained")
    ax.plot([0, 1, 2], [0, 1, 4], label="squares")
    ax.set_xlabel("x")
    ax.set_title("a short title")
    ax.legend(loc="upper left")
    assert legibility_problems(fig) == []
    plt.close(fig)
