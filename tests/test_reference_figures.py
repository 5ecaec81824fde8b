"""Figures from another machine: loaded as data, matched to this machine's rows, labelled, bad files refused."""
from __future__ import annotations

import json

import pytest

from course_lib.course import beside_reference, feed_table, reference_figures, transfer_beside, worker_scaling
from course_lib.course import reference_machine as ref_module
from course_lib.course.reference_machine import H100, parse_label
from course_lib.measure.regime_runs import LoaderSpec
from course_lib.measure.throughput import ThroughputResult


def test_the_h100_figures_load_with_their_machine_and_every_part():
    ref = reference_figures(H100)
    assert ref["machine"]["cpu_cores"] == 16 and "H100" in ref["machine"]["gpu"]
    assert all(ref[part] for part in ("workers", "regimes", "feed", "transfer"))
    for row in ref["workers"] + ref["regimes"] + ref["feed"]:
        assert {"regime", "library", "loader", "num_workers", "samples_per_s"} <= row.keys()
    block = [r for r in ref["workers"] if r["loader"] == "mmap block shuffle, batched 256"]
    rate = {r["num_workers"]: r["samples_per_s"] for r in block}
    assert worker_scaling(block) == {w: pytest.approx(v / rate[0]) for w, v in rate.items() if w is not None}


def test_labels_parse_back_into_their_parts():
    spec = LoaderSpec("decode at crop size + batch transform", "course", "JPEG", lambda w: [], 1.0)
    assert parse_label(spec.label(4)) == {"regime": "JPEG", "library": "course",
                                          "loader": "decode at crop size + batch transform", "num_workers": 4}
    with pytest.raises(ValueError, match="not a loader label"):
        parse_label("JPEG course 4 workers")


def test_bad_reference_files_are_refused_with_their_name(tmp_path, monkeypatch):
    monkeypatch.setattr(ref_module, "REFERENCE_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match="known: none"):
        reference_figures("nowhere")
    (tmp_path / "broken.jsonl").write_text('{"part": "machine", "name": "x"}\nnot json\n')
    with pytest.raises(ValueError, match=r"broken.jsonl:2"):
        reference_figures("broken")
    (tmp_path / "headless.jsonl").write_text(json.dumps({"part": "transfer", "mode": "pinned -> cuda"}) + "\n")
    with pytest.raises(ValueError, match="no 'machine' line"):
        reference_figures("headless")
    (tmp_path / "odd.jsonl").write_text(json.dumps({"part": "gossip"}) + "\n")
    with pytest.raises(ValueError, match="unknown part 'gossip'"):
        reference_figures("odd")


def test_tables_put_this_machine_beside_the_other_and_say_which_is_which():
    ref = reference_figures(H100)
    mine = [{"library": "course", "loader": "mmap block shuffle, batched 256", "regime": "raw", "num_workers": w,
             "samples_per_s": rate, "min": rate, "max": rate} for w, rate in [(0, 1000.0), (2, 500.0)]]
    text = str(beside_reference(ref["workers"], mine, machine="H100 (another machine)", title="t"))
    assert "H100 (another machine): samples/s" in text and "this machine: samples/s" in text
    line = next(ln for ln in text.splitlines() if "batched 256" in ln and " 2 " in ln and "block" in ln)
    assert "500 (500-500)" in line and "0.50" in line           # this machine's row and its own ratio
    feed = str(feed_table(ref, "feed"))
    warm = ref["machine"]["feed_warmup"]                 # rows that counted worker start-up as waiting: left out
    shown = [r for r in ref["feed"] if r["num_workers"] <= warm]
    assert 0 < len(feed.splitlines()) - 2 == len(shown) < len(ref["feed"])
    here = [ThroughputResult(label=f"{m} -> cpu", samples=100, seconds=1.0, bytes_per_sample=1.0, items=1,
                             warmup_items=1, warmup_seconds=0.0, start_anon_mb=0.0, start_file_mb=0.0,
                             peak_anon_mb=0.0, peak_file_mb=0.0)
            for m in ("pageable", "pinned", "pinned+prefetch", "direct")]
    transfer = str(transfer_beside(ref, here, batch_size=256, title="t"))
    assert "to cuda" in transfer and "100 (100-100) to cpu" in transfer
