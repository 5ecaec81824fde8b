"""The course runner's command line: `--only` runs the chosen chapters and no others (papermill stubbed out)."""
from __future__ import annotations

from pathlib import Path

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
                          metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                   "language": "python"}})
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


def test_a_parameter_no_chapter_declares_is_refused_by_name(chapters, tmp_path, monkeypatch, capsys):
    """A renamed small-size parameter must not let a chapter silently run at full size."""
    executed = []
    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **k: executed.append(a))
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_:
        course_runner.main(["--out", str(out), "--notebooks", str(chapters), "--only", "05",
                            "-p", "sample", "40"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "parameter(s) sample declared by no chapter" in err and "05_throughput" in err
    assert executed == [] and not (out / "data").exists()   # refused before generating or executing anything
    with pytest.raises(ValueError, match=r"samplez declared by no chapter of this run \(00_setup, 05_throughput"):
        course_runner.run_course(out, notebooks=chapters, parameters={"samplez": 1}, progress=False)


def test_shared_parameters_go_only_to_the_chapters_that_declare_them(tmp_path, monkeypatch):
    """A parameter one chapter declares is passed to it and left out of the others (not refused)."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    for name, source in (("00_a.ipynb", 'data_dir = ""'), ("01_b.ipynb", 'data_dir = ""\nblock_size = 1')):
        cell = new_code_cell(source, metadata={"tags": ["parameters"]})
        nbformat.write(new_notebook(cells=[cell], metadata={"kernelspec": {"name": "python3", "language": "python",
                                                                           "display_name": "Python 3"}}),
                       folder / name)
    executed, timeouts = {}, set()

    def fake_execute(source, dest, parameters, **kwargs):
        executed[source.rsplit("/", 1)[-1]] = parameters
        timeouts.add(kwargs["execution_timeout"])
        nbformat.write(nbformat.read(source, as_version=4), dest)

    monkeypatch.setattr(papermill, "execute_notebook", fake_execute)
    course_runner.run_course(tmp_path / "out", notebooks=folder, data_args=dict(samples=40, shard_size=20,
                                                                                shape=(3, 4, 4)),
                             parameters={"block_size": 4}, progress=False, cell_timeout=12)
    assert "block_size" not in executed["00_a.ipynb"] and executed["01_b.ipynb"]["block_size"] == 4
    assert timeouts == {12}   # papermill's execution_timeout: a hung cell fails the run


def test_each_run_talks_to_its_kernels_through_sockets_of_its_own(tmp_path):
    """Left to jupyter_client, a kernel's Unix sockets were kernel-ipc-1..5 in the working folder (notebooks/): two
    runs at once (make course beside make test, the test suite's two course halves) bound the same paths and the
    second kernel never answered. Now each run names them in a fresh folder of its own, removed afterwards."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    cells = [new_code_cell('data_dir = ""', metadata={"tags": ["parameters"]}),
             new_code_cell("from ipykernel import get_connection_info\nprint(get_connection_info(unpack=True)['ip'])")]
    nbformat.write(new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "language": "python",
                                                                      "display_name": "Python 3"}}),
                   folder / "00_ip.ipynb")
    ips = []
    for run in ("a", "b"):
        course_runner.run_course(tmp_path / run, notebooks=folder, data_args=dict(samples=40, shard_size=20,
                                                                                  shape=(3, 4, 4)), progress=False)
        executed = nbformat.read(tmp_path / run / "notebooks" / "00_ip.ipynb", as_version=4)
        ips.append(executed.cells[-1].outputs[0]["text"].strip())
    assert all(ip.startswith("/") and not ip.startswith(str(folder)) for ip in ips), ips
    assert len({str(Path(ip).parent) for ip in ips}) == 2, ips                 # one folder per run
    assert not any(Path(ip).parent.exists() for ip in ips) and not list(folder.glob("*ipc*"))
