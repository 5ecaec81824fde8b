"""The course end to end: the first half of the chapters executed by the course runner with tiny parameters (the
second half: tests/test_notebooks_later.py), nbval replays, and what every committed chapter must be."""
from __future__ import annotations

import ast
import importlib
import os
import pkgutil
import subprocess
import sys

import nbformat
import pytest

import course_lib
from course_lib.course.verification import load_records

from tiny_course import (
    COURSE_TIMEOUT_S,
    FIRST_HALF,
    NOTEBOOKS,
    SECOND_HALF,
    TINY_PARAMS,
    chapters,
    check_course_run,
    check_notebooks,
    declared,
    run_half,
)

NBVAL_TIMEOUT_S = 600     # the nbval replay subprocess

pytestmark = [pytest.mark.notebooks, pytest.mark.timeout(COURSE_TIMEOUT_S)]


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """Run the first half of the course (chapters 00-05b; tests/test_notebooks_later.py runs the rest) on tiny data."""
    out = tmp_path_factory.mktemp("course")
    return out, run_half(out, FIRST_HALF)


def test_there_are_chapters():
    assert [p.name[:2] for p in NOTEBOOKS][:3] == ["00", "01", "02"]


def test_the_halves_run_every_chapter_once_with_every_tiny_parameter():
    assert chapters(FIRST_HALF) + chapters(SECOND_HALF) == NOTEBOOKS, "a chapter in neither half (or both)"
    assert set(TINY_PARAMS) <= declared(NOTEBOOKS), "a tiny parameter that no chapter declares"


def test_every_notebook_runs_and_writes_a_verification_record(course):
    check_course_run(*course, FIRST_HALF)


def test_executed_notebooks_have_no_errors_and_plots(course):
    check_notebooks(course[0])


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
