"""The course runner's command line: `--only` runs the chosen chapters and no others (papermill stubbed out)."""
from __future__ import annotations

import nbformat
import papermill
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from course_lib.course import course_runner


@pytest.fixture
def chapters(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    for name in ("00_setup.ipynb", "05_throughput.ipynb", "06_beyond.ipynb", "scratch.ipynb"):
        cell = new_code_cell('data_dir = ""\nsamples = 0', metadata={"tags": ["parameters"]})
        nb = new_notebook(cells=[cell, new_code_cell("pass")],
                          metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
        nbformat.write(nb, folder / name)
    return folder


def test_only_runs_the_chapters_named(chapters, tmp_path, monkeypatch):
    executed = []

    def fake_execute(source, dest, parameters, **kwargs):
        executed.append((source.rsplit("/", 1)[-1], parameters))
        nbformat.write(nbformat.read(source, as_version=4), dest)

    monkeypatch.setattr(papermill, "execute_notebook", fake_execute)
    out = tmp_path / "out"
    assert course_runner.main(["--out", str(out), "--notebooks", str(chapters), "--samples", "40",
                               "--shard-size", "20", "--shape", "3,4,4", "--only", "05", "06"]) == 0
    assert [name for name, _ in executed] == ["05_throughput.ipynb", "06_beyond.ipynb"]
    assert all(p == {"data_dir": str((out / "data").resolve()), "samples": 40} for _, p in executed)
    assert sorted(p.name for p in (out / "notebooks").iterdir()) == ["05_throughput.ipynb", "06_beyond.ipynb"]
    executed.clear()
    course_runner.main(["--out", str(out), "--notebooks", str(chapters), "--samples", "40", "--shard-size", "20",
                        "--shape", "3,4,4"])
    assert [name for name, _ in executed] == ["00_setup.ipynb", "05_throughput.ipynb", "06_beyond.ipynb"]
