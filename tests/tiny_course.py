"""The tiny course the notebook tests run: its data, its parameters, and the two halves run side by side.

The chapters run in two halves, each in its own test file with its own tiny dataset, so pytest-xdist
(`--dist loadfile`) runs them on two workers at once: one course run of every chapter in a row was the suite's
longest path (about 150 s of a 4.5 min run on 2 cores). A half gets only the parameters its chapters declare
(``run_course`` refuses any other, so a renamed parameter cannot make CI run a chapter at full size).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import papermill

from course_lib.course.course_runner import run_course
from course_lib.course.verification import load_records

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
TINY_DATA = dict(samples=600, shard_size=100, shape=(3, 8, 8))
TINY_PARAMS = dict(per_sample_files=100, batch_size=16, block_size=16, n_preview=8,
                   # chapter 05: a tiny image set, short runs, one peer (tests/test_peers.py measures them all)
                   image_samples=64, image_shard_size=16, image_shape="3,16,16", crop_size=8, worker_counts="0,2",
                   peer_raw_workers="0", peer_jpeg_workers="0", peer_libraries="torchdata", run_seconds=0.02,
                   wait_batches=2,
                   # chapter 06b: a smaller fault drill, two repeats of each side (its prose reads the spread)
                   drill_samples=500, repeats=2,
                   # chapter 07: a small sample folder, short timed runs (its Ray section is most of its time)
                   sample_images=60, min_samples=120, min_seconds=0.1)
# chapter-name prefixes of each half: chapter 05b reads the records of 00-05, so they run together
FIRST_HALF = ("00", "01", "02", "03", "04", "05")
SECOND_HALF = ("06", "07")
COURSE_TIMEOUT_S = 1200   # one half of the tiny course in a module fixture; papermill bounds each cell


def chapters(half: tuple[str, ...]) -> list[Path]:
    """The committed chapters whose names start with one of ``half``'s prefixes."""
    return [p for p in NOTEBOOKS if p.name.startswith(half)]


def declared(paths: list[Path]) -> set[str]:
    """The names the chapters' parameters cells declare (as papermill reads them, like the course runner)."""
    return set().union(*(papermill.inspect_notebook(str(p)) for p in paths))


def run_half(out: Path, half: tuple[str, ...]) -> dict[str, Any]:
    """Run ``half`` of the course the way `make course` does, on tiny data, with the parameters it declares."""
    names = declared(chapters(half))
    params = {k: v for k, v in {**TINY_PARAMS, "work_dir": str(out / "tmp")}.items() if k in names}
    return run_course(out, data_args=TINY_DATA, parameters=params, only=list(half), progress=False, cell_timeout=300)


def check_course_run(out, summary, half) -> None:
    """Every chapter of ``half`` ran and wrote a record with measured results; the plot and the data exist."""
    expected = chapters(half)
    assert [p.name for p in summary["notebooks"]] == [p.name for p in expected]
    records = load_records(out / "verification")
    assert len(records) == len(expected)
    for nb, rec in zip(expected, records):
        assert rec["chapter"].startswith(nb.name[:2])
        converted = out / "tmp" / rec["chapter"] / "converted"   # chapter 07 measures the data it converted
        assert rec["data_path"] in (str((out / "data").resolve()), str(converted.resolve()))
        assert rec["results"] and all(r["samples"] > 0 and r["samples_per_s"] > 0 for r in rec["results"])
        assert rec["runtime_s"] is not None and rec["runtime_s"] > 0
    assert (out / "throughput.png").stat().st_size > 1000
    assert json.loads((out / "data/manifest.json").read_text())["total_samples"] == TINY_DATA["samples"]


def check_notebooks(out) -> None:
    """No executed cell ended in an error, and every chapter drew at least one plot."""
    for nb_path in sorted((out / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(nb_path, as_version=4)
        outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
        assert not [o for o in outputs if o.output_type == "error"], nb_path.name
        assert any("image/png" in o.get("data", {}) for o in outputs), f"{nb_path.name} draws no plot"
