"""The course end to end: every notebook executed by the course runner with tiny parameters, then nbval."""
from __future__ import annotations

import ast
import importlib
import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

import course_lib
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
                   drill_samples=500, repeats=2)

COURSE_TIMEOUT_S = 1200   # the whole tiny course in the module fixture (~2 min idle); papermill bounds each cell
NBVAL_TIMEOUT_S = 600     # the nbval replay subprocess

pytestmark = [pytest.mark.notebooks, pytest.mark.timeout(COURSE_TIMEOUT_S)]


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """Run the whole course once (what `make course` does) on tiny data."""
    out = tmp_path_factory.mktemp("course")
    summary = run_course(out, data_args=TINY_DATA, parameters={**TINY_PARAMS, "work_dir": str(out / "tmp")},
                         progress=False, cell_timeout=300)
    return out, summary


def test_there_are_chapters():
    assert [p.name[:2] for p in NOTEBOOKS][:3] == ["00", "01", "02"]


def test_every_notebook_runs_and_writes_a_verification_record(course):
    out, summary = course
    assert [p.name for p in summary["notebooks"]] == [p.name for p in NOTEBOOKS]
    records = load_records(out / "verification")
    assert len(records) == len(NOTEBOOKS)
    for nb, rec in zip(NOTEBOOKS, records):
        assert rec["chapter"].startswith(nb.name[:2])
        converted = out / "tmp" / rec["chapter"] / "converted"   # chapter 07 measures the data it converted
        assert rec["data_path"] in (str((out / "data").resolve()), str(converted.resolve()))
        assert rec["results"] and all(r["samples"] > 0 and r["samples_per_s"] > 0 for r in rec["results"])
        assert rec["runtime_s"] is not None and rec["runtime_s"] > 0
    assert (out / "throughput.png").stat().st_size > 1000
    assert json.loads((out / "data/manifest.json").read_text())["total_samples"] == TINY_DATA["samples"]


def test_executed_notebooks_have_no_errors_and_plots(course):
    out, _ = course
    for nb_path in sorted((out / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(nb_path, as_version=4)
        outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
        assert not [o for o in outputs if o.output_type == "error"], nb_path.name
        assert any("image/png" in o.get("data", {}) for o in outputs), f"{nb_path.name} draws no plot"


# Replayed by nbval in fresh kernels: chapter 00 (the set-up a learner runs first) and chapter 04, whose
# DistributedSampler fingerprint cell is tagged `nbval-check-output`: the replay must print the same orders
# (reproducible epochs, checked across kernels). Every chapter already ran once above; replaying all of them
# doubled the suite's time for no further check.
REPLAYED = ("00_", "04_")


def test_nbval_replays_executed_chapters_and_their_checked_outputs(course):
    out, _ = course
    replay_records = out / "replay-verification"   # the replayed kernels write here, not into the repo's build/
    env = {**os.environ, "COURSE_VERIFICATION_DIR": str(replay_records)}
    replayed = [p for p in sorted((out / "notebooks").glob("*.ipynb")) if p.name.startswith(REPLAYED)]
    assert len(replayed) == len(REPLAYED)
    checked = [c for p in replayed for c in nbformat.read(p, as_version=4).cells
               if "nbval-check-output" in c.metadata.get("tags", [])]
    assert checked and all(c.outputs for c in checked), "a cell nbval compares must have stored outputs"
    proc = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "-q", "-p", "no:cacheprovider",
                           "-p", "no:xdist", *map(str, replayed)], capture_output=True, text=True, cwd=out, env=env,
                          timeout=NBVAL_TIMEOUT_S)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout
    assert len(load_records(replay_records)) == len(REPLAYED)


def test_every_checked_cell_is_in_a_replayed_chapter():
    """A cell tagged `nbval-check-output` in a chapter the replay skips would never be compared: refuse it."""
    tagged = {p.name for p in NOTEBOOKS for c in nbformat.read(p, as_version=4).cells
              if "nbval-check-output" in c.metadata.get("tags", [])}
    assert tagged, "no cell is tagged nbval-check-output: the replay would compare nothing"
    assert all(name.startswith(REPLAYED) for name in tagged), f"add these chapters to REPLAYED: {sorted(tagged)}"


def test_nbval_fails_when_a_checked_output_changes(tmp_path):
    """The check above can fail: a tagged cell whose stored output differs from the replay is reported."""
    nb = nbformat.read(NOTEBOOKS[0], as_version=4)
    cell = nbformat.v4.new_code_cell("print(6 * 7)", metadata={"tags": ["nbval-check-output"]})
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="41\n")]
    cell.execution_count = 1
    small = nbformat.v4.new_notebook(cells=[cell], metadata=nb.metadata)
    nbformat.write(small, tmp_path / "changed.ipynb")
    proc = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "-q", "-p", "no:cacheprovider",
                           "-p", "no:xdist", str(tmp_path / "changed.ipynb")], capture_output=True, text=True,
                          cwd=tmp_path, timeout=NBVAL_TIMEOUT_S)
    assert proc.returncode != 0 and "41" in proc.stdout and "42" in proc.stdout, proc.stdout[-2000:]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebook_is_clean(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "stored outputs: clear them"
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and code.index(tagged[0]) == 0, "one parameters cell, the first code cell"
    assert "data_dir" in tagged[0].source
    assert "verification_checkpoint(" in code[-1].source, "the last cell must be the verification checkpoint"
    assert "start_chapter(" in code[1].source, "the cell after the parameters must start the chapter timer"
    assert nb.cells[0].cell_type == "markdown" and "By the end of this chapter" in nb.cells[0].source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_does_not_redefine_course_lib(path):
    public = set(course_lib.__all__)
    for info in pkgutil.walk_packages(course_lib.__path__, "course_lib."):
        mod = importlib.import_module(info.name)
        public |= {n for n, v in vars(mod).items()
                   if not n.startswith("_") and getattr(v, "__module__", None) == info.name}
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tree = ast.parse(cell.source)
        defined = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        assert not defined & public, f"{path.name} redefines {defined & public}: import it from course_lib"
