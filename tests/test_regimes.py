"""Chapter 05's measurement machinery: regimes, data wait, PSS memory, goals, and the peer runner (figures are
never asserted, only that each thing is measured, counted and reported)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from course_lib.course import regime_table
from course_lib.course.bench import main as bench_main
from course_lib.course.regime_report import goal_report
from course_lib.measure import (
    PeakPss,
    TrainingStep,
    course_specs,
    data_wait,
    image_data,
    measure_specs,
    order_quality,
    regime_goals,
    run_peers,
)
from course_lib.measure.peer_runner import run_peer
from course_lib.measure.peers import missing
from course_lib.measure.process_memory import pss_snapshot
from course_lib.measure.regime_runs import row_result

TINY_IMAGES = dict(samples=96, shard_size=16, shape=(3, 16, 16))
PEER_PACKAGES = {"litdata": "litdata", "HF datasets": "datasets", "torchdata": "torchdata",
                 "webdataset": "webdataset", "lance": "lance"}


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    return image_data(tmp_path_factory.mktemp("regimes") / "data", **TINY_IMAGES)


def test_image_data_writes_raw_and_jpeg_of_the_same_samples_beside_the_data(images):
    assert images.name == "image_data"
    manifest = json.loads((images / "manifest.json").read_text())
    assert set(manifest["formats"]) == {"npy", "wds", "img"} and manifest["total_samples"] == 96


def test_measure_specs_reports_median_spread_memory_and_data_wait(images):
    specs = course_specs(images, batch_size=16, crop_size=8)
    rows = measure_specs(specs, [0, 2], repeats=3, max_seconds=0.05, step=TrainingStep("busy", 1),
                         wait_workers=[2], wait_batches=2)
    names = {(r["loader"], r["num_workers"]) for r in rows}
    assert ("the same, torch.set_num_threads(1)", 2) not in names   # those specs are for 0 workers only
    zero_only = [s for s in specs if s.worker_counts == (0,)]
    assert len(zero_only) == 2 and len(rows) == 2 * (len(specs) - 2) + 2
    for r in rows:
        assert len(r["runs"]) == 3 and r["min"] <= r["samples_per_s"] <= r["max"]
        assert r["main_cores"] > 0 and r["cpu_cores"] >= r["main_cores"] * 0.99   # workers joined: counted
        assert r["cpu_ms_per_sample"] > 0
        assert all(run["samples"] > 0 for run in r["runs"])
        assert {"pss_anon_mb", "pss_file_mb", "pss_shmem_mb"} <= r.keys()
        assert ("data_wait" in r) == (r["num_workers"] == 2)
        assert row_result(r).samples_per_s in [run["samples_per_s"] for run in r["runs"]]
    waited = [r["data_wait"] for r in rows if "data_wait" in r]
    assert all(0 <= w["fraction"] <= 1 and w["batches"] == 2 for w in waited)
    assert "data wait" in str(regime_table(rows))
    per_regime = measure_specs(specs[:2], [0, 2], repeats=1, max_seconds=0.05, step=TrainingStep("busy", 1),
                               wait_workers={"raw": [0], "JPEG": [2]}, wait_batches=2)
    assert {(r["regime"], r["num_workers"]) for r in per_regime if "data_wait" in r} == {("raw", 0), ("JPEG", 2)}


def test_a_reused_loader_keeps_its_workers_between_runs_and_a_fresh_one_that_keeps_its_iterator_is_joined(images):
    """``reuse`` specs (litdata: workers that take seconds to spawn) are timed back to back on one loader with
    persistent workers: stopping them after a run closed its queues ("Queue is closed" in make bench). A fresh
    loader that keeps its iterator (torchdata's StatefulDataLoader) has its workers joined after each run, so
    their CPU is counted."""
    from torch.utils.data import DataLoader
    from torchdata.stateful_dataloader import StatefulDataLoader

    from course_lib.loaders.mmap_shards import MmapShardDataset
    from course_lib.measure.regime_runs import LoaderSpec

    def persistent(w):
        return DataLoader(MmapShardDataset(images, batch_size=16), batch_size=None, num_workers=w,
                          persistent_workers=True)

    def stateful(w):
        return StatefulDataLoader(MmapShardDataset(images, batch_size=16), batch_size=None, num_workers=w)

    specs = [LoaderSpec("persistent", "course", "raw", persistent, 48.0, reuse=True),
             LoaderSpec("keeps its iterator", "torchdata", "raw", stateful, 48.0)]
    import multiprocessing
    import time

    unrelated = multiprocessing.get_context("fork").Process(target=time.sleep, args=(120,))   # as another test's
    unrelated.start()                          # server: neither waited for nor a reason to leave CPU uncounted
    try:
        rows = measure_specs(specs, [1], repeats=3, max_seconds=0.02)
    finally:
        unrelated.terminate()
        unrelated.join()
    assert [len(r["runs"]) for r in rows] == [3, 3]
    assert all(run["samples"] > 0 for r in rows for run in r["runs"])
    assert rows[1]["cpu_cores"] is not None   # the StatefulDataLoader's worker was joined: its CPU counted


def test_order_quality_scores_a_full_epoch(images):
    rows = order_quality(course_specs(images, batch_size=16, crop_size=8))
    assert {r["loader"] for r in rows} == {"mmap block shuffle, batched", "decode at crop size + batch transform"}
    assert all(r["samples"] == 96 and 0 <= r["displacement"] <= 1 for r in rows)


def test_data_wait_counts_waiting_and_training_time():
    batches = [{"x": torch.zeros(4, 3, 8, 8, dtype=torch.uint8), "y": torch.zeros(4, dtype=torch.long)}] * 5
    result = data_wait(batches, TrainingStep("cnn"), batches=3, warmup=1)
    assert result.batches == 3 and result.samples == 12 and result.step_s > 0 and 0 <= result.fraction < 1
    with pytest.raises(ValueError, match="no batches"):
        data_wait([], TrainingStep("busy", 1))
    with pytest.raises(ValueError, match="kind"):
        TrainingStep("nap")
    slept = data_wait(batches, TrainingStep("sleep", 5), batches=3, warmup=1)   # blocks: the core is left free
    assert slept.step_s >= 3 * 0.005 and repr(TrainingStep("sleep", 5)) == "TrainingStep('sleep', step_ms=5)"


def test_pss_counts_this_process_and_a_peak():
    snap = pss_snapshot()
    assert snap.processes >= 1 and snap.total_mb > 0
    with PeakPss(interval_s=0.01) as peak:
        block = bytearray(50_000_000)
        block[::4096] = b"x" * len(block[::4096])
        import time
        time.sleep(0.1)
    assert peak.peak.anon_mb - peak.start.anon_mb > 30
    del block


def test_goals_are_computed_from_rows_not_asserted():
    def row(library, regime, loader, w, rate):
        return {"library": library, "regime": regime, "loader": loader, "num_workers": w, "samples_per_s": rate,
                "label": f"{regime} · {library}: {loader} · {w} workers"}

    course, seed = "decode at crop size + batch transform", "webdataset .decode('pil') + per-sample transform"
    rows = [row("course", "JPEG", course, 0, 100), row("course", "JPEG", course, 2, 190),
            row("seed", "JPEG", seed, 0, 50), row("seed", "JPEG", seed, 2, 100),
            row("litdata", "JPEG", "x", 2, 200), row("course", "raw", "mmap", 0, 3000),
            row("HF datasets", "raw", "y", 0, 100), {"library": "broken", "error": "crashed"}]
    wrapped = {**row("torchdata", "raw", "StatefulDataLoader over MmapShardDataset", 0, 2900), "wraps_course": True}
    goals = regime_goals(rows + [wrapped])
    assert goals["decode_scaling"] == pytest.approx(1.9) and goals["course_vs_seed"] == {0: 2.0, 2: 1.9}
    assert [p["peer"] for p in goals["peers_that_win_jpeg"]] == ["litdata: x"]
    assert goals["raw_vs_peers"] == pytest.approx(30)     # the course's own loader inside torchdata is no peer
    report = goal_report(rows + [wrapped], goals)
    met = {g["goal"]: g["met"] for g in report}
    assert list(met.values()) == [True, False, True, False]
    assert all(bool(g["bound"]) == (g["met"] is False) for g in report)   # a miss says what bounds it
    slow_rows = [row("course", "JPEG", course, 0, 100), row("course", "JPEG", course, 2, 120)]
    slow = goal_report(slow_rows, regime_goals(slow_rows), cores=2, load=3.5)
    assert slow[0]["met"] is False and "load average was 3.5 on 2 cores" in slow[0]["bound"]
    assert slow[2]["met"] is None and not slow[2]["bound"]   # nothing to compare: not judged


def test_a_failing_peer_is_a_row_with_its_reason(images, tmp_path):
    result = run_peer("no such library", images, tmp_path / "peers", repeats=1)
    assert "unknown peer library 'no such library'" in result["error"]
    slow = run_peer("torchdata", images, tmp_path / "peers", repeats=1, timeout=0.01)
    assert "timed out" in slow["error"]
    merged = run_peers(images, tmp_path / "peers", libraries=["no such library"], repeats=1)
    assert [f["library"] for f in merged["failed"]] == ["no such library", "Mosaic Streaming"]
    assert "skipped" in merged["failed"][-1]["error"] and merged["rows"] == []


@pytest.mark.parametrize("library", ["torchdata"])   # every peer's rows and orders: tests/test_peers.py
def test_installed_peers_are_measured_on_the_same_samples(images, tmp_path, library):
    if missing(PEER_PACKAGES[library]):
        pytest.skip(missing(PEER_PACKAGES[library]))
    result = run_peer(library, images, tmp_path / "peers", worker_counts=[0], repeats=1, max_seconds=0.05,
                      batch_size=16, crop_size=8, wait_workers=[0], wait_batches=2)
    assert "error" not in result, result.get("error")
    same_process = "course, same process"   # torchdata's baseline: the course's DataLoader in the same subprocess
    assert result["rows"] and all(r["library"] in (library, same_process) and r["samples_per_s"] > 0
                                  for r in result["rows"])
    assert any(r["library"] == library for r in result["rows"])
    assert all(r["data_wait"]["batches"] == 2 for r in result["rows"])
    assert result["order"] and all(o["samples"] == 96 for o in result["order"])   # every sample, once


def test_bench_gains_the_regime_and_peer_rows(small_data, tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert bench_main(["--data-dir", str(small_data), "--out", str(out), "--repeat", "1", "--num-workers", "0",
                       "--batch-size", "16", "--no-progress", "--only", "", "--peers", "torchdata",
                       "--run-seconds", "0.05", "--image-samples", "64", "--image-shape", "3,16,16"]) == 0
    result = json.loads(out.read_text())
    reg = result["regimes"]
    assert {r["regime"] for r in reg["rows"]} == {"raw", "JPEG"}
    assert {r["library"] for r in reg["peer_rows"]} == {"torchdata", "course, same process"}
    assert any("Mosaic Streaming" in s for s in result["skipped"])
    text = capsys.readouterr().out
    assert "goals:" in text and "StatefulDataLoader" in text


class _CountingStep:
    """A training step that only counts the batches it is given."""

    def __init__(self):
        self.calls = 0

    def __call__(self, batch):
        self.calls += 1


class _Numbers(torch.utils.data.IterableDataset):
    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        for i in range(worker, 64, workers):
            yield {"x": torch.zeros(2, 3, 4, 4, dtype=torch.uint8), "y": torch.tensor([i, i])}


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
@pytest.mark.parametrize("num_workers,warmup", [(0, 2), (1, 2), (3, 3), (5, 5)])
def test_data_wait_warms_up_every_workers_first_batch(num_workers, warmup):
    from course_lib import DeviceLoader
    from course_lib.measure.training_step import loader_workers

    for loader in (torch.utils.data.DataLoader(_Numbers(), batch_size=None, num_workers=num_workers),
                   DeviceLoader(torch.utils.data.DataLoader(_Numbers(), batch_size=None, num_workers=num_workers),
                                "cpu")):
        assert loader_workers(loader) == num_workers
        step = _CountingStep()
        result = data_wait(loader, step, batches=3)
        assert step.calls == warmup + 3 and result.batches == 3 and result.samples == 6
    step = _CountingStep()
    assert data_wait(loader, step, batches=3, warmup=0).batches == 3 and step.calls == 3   # explicit wins
    with pytest.raises(ValueError, match="warmup"):
        data_wait(loader, step, batches=3, warmup=-1)


def test_each_peer_runs_in_a_child_of_its_own_and_a_crash_or_hang_is_its_row(tmp_path, monkeypatch):
    import os
    import signal
    import time

    from course_lib.measure import peer_runner

    def fake_measure(args):
        if args["library"] == "crash":
            os.kill(os.getpid(), signal.SIGKILL)
        if args["library"] == "hang":
            time.sleep(30)
        return {"library": args["library"], "rows": [], "order": [], "timings": {}, "pid": os.getpid()}

    monkeypatch.setattr(peer_runner, "_measure", fake_measure)
    many = [dict(library=name, timeout=t) for name, t in [("crash", 30), ("hang", 0.5), ("fine", 30)]]
    peer_runner.measure_each(many, tmp_path)
    crash, hang, fine = (json.loads((tmp_path / f"{i}.json").read_text()) for i in range(3))
    assert crash["error"].startswith("crashed (signal 9)") and crash["library"] == "crash"
    assert hang["error"] == "timed out after 0 s"          # rounded: the 0.5 s timeout
    assert "error" not in fine and fine["pid"] != os.getpid()   # measured in a child, after the two failures


def test_persistent_workers_are_stopped_before_the_next_pair():
    from course_lib.measure.regime_runs import _stop_workers

    loader = torch.utils.data.DataLoader(_Numbers(), batch_size=None, num_workers=2, persistent_workers=True)
    for _ in zip(range(3), loader):
        pass
    workers = loader._iterator._workers
    assert all(w.is_alive() for w in workers)           # persistent: alive between epochs
    _stop_workers(loader)
    assert not any(w.is_alive() for w in workers)
    _stop_workers(torch.utils.data.DataLoader(_Numbers(), batch_size=None))   # never iterated: nothing to stop


def test_classes_per_batch_of_a_class_sorted_source():
    """Issue 22 item 19: a loader that keeps the write order leaves one class per batch; a permutation mixes them."""
    from course_lib.measure.shuffle_metrics import classes_per_batch

    ordered = np.arange(1000)
    assert classes_per_batch(ordered, classes=10, batch_size=50) == 1.0
    mixed = np.random.default_rng(0).permutation(1000)
    assert classes_per_batch(mixed, classes=10, batch_size=50) > 9
    with pytest.raises(ValueError, match="classes"):
        classes_per_batch(ordered, classes=0, batch_size=5)


def test_the_raw_spec_runs_several_epochs_per_timed_run_each_a_permutation(images):
    """Issue 22 item 15: an epoch of the small image set lasts milliseconds; runs chain epochs (set_epoch each)."""
    from course_lib.measure.regimes import RAW_EPOCHS

    raw = next(s for s in course_specs(images, batch_size=16, crop_size=8) if s.regime == "raw")
    idx = np.concatenate([b["idx"].numpy() for b in raw.make(0)])
    n = len(np.concatenate([b["idx"].numpy() for b in raw.order()]))
    assert len(idx) == RAW_EPOCHS * n
    epochs = idx.reshape(RAW_EPOCHS, n)
    assert all(np.array_equal(np.sort(e), np.sort(epochs[0])) for e in epochs)   # each epoch: every sample once
    assert not np.array_equal(epochs[0], epochs[1])                                 # a new order each epoch


def test_timed_runs_reach_the_minimum_sample_count_even_past_the_deadline(monkeypatch):
    """Issue 22 item 15: a slow loader's run continues past ``seconds`` until it has timed ``min_samples``, for
    up to 4x ``seconds`` (a fake clock: one second per item, so nothing here depends on this machine's speed)."""
    import itertools

    from course_lib.measure import regime_runs

    clock = itertools.count()
    monkeypatch.setattr(regime_runs.time, "perf_counter", lambda: float(next(clock)))
    batches = [{"y": np.zeros(8)} for _ in range(100)]
    assert len(list(regime_runs.timed(batches, 10.0))) == 1 + 11                      # past the deadline
    assert len(list(regime_runs.timed(batches, 10.0, min_samples=256))) == 1 + 32      # 32 batches of 8
    assert len(list(regime_runs.timed(batches, 10.0, min_samples=10_000))) == 1 + 41   # capped at 4x seconds
    assert len(list(regime_runs.timed(batches[:5], 10.0, min_samples=256))) == 5       # the epoch ended first


def test_fast_enough_sets_each_regime_against_the_step_demand_and_names_its_bound():
    """Issue 22 items 17 and 23: no project goals; the loader's rate against the step's demand, and its bound."""
    from course_lib.course.regime_report import fast_enough

    rows = [{"library": "course", "regime": "raw", "loader": "mmap", "num_workers": 0, "samples_per_s": 6400.0,
             "mb_per_s": 100.0, "too_short": False,
             "data_wait": {"samples_per_s": 3100.0, "fraction": 0.03}},
            {"library": "course", "regime": "JPEG", "loader": "decode", "num_workers": 2, "samples_per_s": 1600.0,
             "mb_per_s": 5.0, "cpu_ms_per_sample": 0.5, "too_short": True}]
    text = fast_enough(rows, batch_size=64, step_ms=20, cores=2, ceiling_mb_s=1000.0)
    assert "asks for 3,200 samples/s" in text and "2.0x the demand" in text and "0.5x the demand" in text
    assert "10% of the page-cache read" in text and "at most about 4,000 samples/s" in text
    assert "waited 3%" in text and text.count("too short to conclude from") == 1


def test_records_panels_group_by_regime_and_cache_and_keep_the_worker_count():
    """Issue 21 item 5: the all-chapters chart, one panel per (regime, cache state), labels that end readable."""
    import matplotlib

    matplotlib.use("Agg")
    from course_lib.course.plots_ch05 import records_panels

    long = "raw · course: mmap block shuffle, batched with a very long description indeed · 2 workers"
    records = [{"chapter": "02_mmap", "results": [{"label": long, "samples_per_s": 1e4, "cache": "warm"},
                                                  {"label": "x", "samples_per_s": 10.0, "cache": "cold"}]},
               {"chapter": "05_training_regime", "results": [{"label": "JPEG · seed: y · 0 workers",
                                                              "samples_per_s": 900.0}]}]
    fig = records_panels(records)
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert titles == ["raw samples, cold", "raw samples, warm", "JPEG samples, unknown"]
    ticks = [t.get_text() for ax in fig.axes for t in ax.get_yticklabels()]
    assert any(t.startswith("02: course: mmap") and t.endswith("2 workers") and len(t) <= 60 for t in ticks)
    with pytest.raises(ValueError, match="no results"):
        records_panels([])


def test_frontier_panels_show_displacement_and_disk_neighbours_side_by_side():
    """Issue 22 item 19: shuffle quality on the frontier is displacement and disk neighbours, both plotted."""
    import matplotlib

    matplotlib.use("Agg")
    from course_lib.course.plots_ch05 import frontier_panels

    points = [{"label": "a", "displacement": 0.33, "neighbours": 0.75, "samples_per_s": 1e5},
              {"label": "b", "displacement": 0.1, "neighbours": 0.0, "samples_per_s": 1e3}]
    fig = frontier_panels(points)
    left, right = fig.axes[:2]
    assert [tuple(line.get_xdata()) for line in right.get_lines()] == [(0.75,), (0.0,)]
    assert abs(left.get_lines()[0].get_xdata()[0] - 0.99) < 1e-9 and "neighbours" in right.get_xlabel()
    with pytest.raises(ValueError, match="no shuffle"):
        frontier_panels([])
