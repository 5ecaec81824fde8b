"""Run the whole course: generate the default dataset, execute every notebook, collect records, plot.

    python -m course_lib.course.course_runner --out build [--samples N ...] [--notebooks notebooks]

Writes ``OUT/data`` (the dataset), ``OUT/notebooks`` (executed copies), ``OUT/verification`` (one JSON
record per chapter run) and ``OUT/throughput.png`` (every chapter's measured throughput).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[2]
KERNEL_TRANSPORT = "ipc"  # kernels talk over Unix sockets, not plain-text TCP on localhost (ipykernel warns of it)
CELL_TIMEOUT_S = 900  # papermill's execution_timeout: a cell still running after this fails the run (no hang)


def run_course(out: Path, *, notebooks: Path = PROJECT / "notebooks", data_args: dict[str, Any] | None = None,
               parameters: dict[str, Any] | None = None, only: list[str] | None = None,
               progress: bool = True, cell_timeout: float = CELL_TIMEOUT_S) -> dict[str, Any]:
    """Generate data, execute notebooks with papermill and collect the results; returns what was written.

    ``parameters`` go to every chapter that declares them; one that no chapter of the run declares is refused
    (ValueError naming it and the chapters), so a renamed parameter cannot silently run a chapter at full size.
    A cell running longer than ``cell_timeout`` seconds fails the run.
    """
    import matplotlib
    matplotlib.use("Agg")
    import papermill
    from traitlets.config import Config

    from data_gen import generate

    from .plots import plot_records
    from .verification import ENV_DIR, load_records

    out = out.resolve()
    data_dir, nb_out, ver_dir = out / "data", out / "notebooks", out / "verification"
    for d in (nb_out, ver_dir):
        d.mkdir(parents=True, exist_ok=True)
    paths = sorted(notebooks.glob("[0-9]*.ipynb"))
    if only:
        paths = [p for p in paths if any(p.name.startswith(o) for o in only)]
    _refuse_undeclared(paths, parameters or {})   # before minutes of data generation
    data_args = dict(data_args or {})
    generate(data_dir, progress=progress, **data_args)
    executed = []
    # each kernel's Unix sockets in a folder of this run's own: left to jupyter_client they are named
    # kernel-ipc-1..5 in the working folder (notebooks/), the same paths for two runs at once, whose kernels then
    # fail to start ("Kernel didn't respond in 60 seconds"): make course beside make test, or two test halves
    sockets = Path(tempfile.mkdtemp(prefix="course-ipc-"))   # short: a socket path has at most 107 bytes
    if not paths:
        print(f"course: no notebooks in {notebooks} yet; the dataset is ready at {data_dir}")
    previous = os.environ.get(ENV_DIR)
    os.environ[ENV_DIR] = str(ver_dir)  # the kernels inherit it: records land in OUT/verification
    try:
        for i, nb in enumerate(paths):
            started = time.perf_counter()
            local_kernel = Config({"KernelManager": {"transport": KERNEL_TRANSPORT, "ip": str(sockets / f"k{i}")}})
            params = _declared(nb, {"data_dir": str(data_dir), "use_solutions": True, **_data_params(data_args),
                                    **(parameters or {})})
            print(f"course: executing {nb.name} ...", flush=True)
            papermill.execute_notebook(str(nb), str(nb_out / nb.name), parameters=params, cwd=str(notebooks),
                                       kernel_name="python3", progress_bar=False, config=local_kernel,
                                       execution_timeout=cell_timeout)
            executed.append(nb_out / nb.name)
            print(f"course: {nb.name} done in {time.perf_counter() - started:.0f} s", flush=True)
    finally:
        shutil.rmtree(sockets, ignore_errors=True)
        if previous is None:
            os.environ.pop(ENV_DIR, None)
        else:
            os.environ[ENV_DIR] = previous
    records = load_records(ver_dir)
    plot = out / "throughput.png"
    plot_records(records, plot)
    summary = {"data": data_dir, "notebooks": executed, "verification": ver_dir, "records": len(records),
               "plot": plot}
    print("course: done.\n" + "\n".join(f"  {k:<13} {v if not isinstance(v, list) else len(v)}"
                                         for k, v in summary.items()))
    return summary


def _data_params(data_args: dict[str, Any]) -> dict[str, Any]:
    """Generation settings as notebook parameters (chapter 00 generates or reuses the same dataset)."""
    params = dict(data_args)
    if "shape" in params:
        params["shape"] = ",".join(str(d) for d in params["shape"])
    return params


def parameterize(nb: Path, dest: Path, parameters: dict[str, Any]) -> Path:
    """Write a copy of ``nb`` to ``dest`` with the ``parameters`` it declares injected (as papermill does), unexecuted.

    For running a chapter in JupyterLab with other parameters: open the copy and run all cells.
    """
    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    node = parameterize_notebook(load_notebook_node(str(nb)), _declared(nb, parameters), kernel_name="python3")
    dest.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(node, str(dest))
    return dest


def _refuse_undeclared(paths: list[Path], parameters: dict[str, Any]) -> None:
    """Raise ValueError for an explicit parameter that no notebook of ``paths`` declares in its parameters cell."""
    import papermill

    declared = set().union(*(papermill.inspect_notebook(str(nb)) for nb in paths)) if paths else set()
    unknown = sorted(set(parameters) - declared)
    if unknown and paths:
        raise ValueError(f"parameter(s) {', '.join(unknown)} declared by no chapter of this run "
                         f"({', '.join(nb.stem for nb in paths)}): renamed or misspelt? each chapter's "
                         "parameters cell lists what it takes")


def _declared(nb: Path, candidates: dict[str, Any]) -> dict[str, Any]:
    """Only the parameters that the notebook's ``parameters`` cell declares."""
    import papermill

    names = papermill.inspect_notebook(str(nb))
    return {k: v for k, v in candidates.items() if k in names}


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(prog="python -m course_lib.course.course_runner", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=PROJECT / "build")
    parser.add_argument("--notebooks", type=Path, default=PROJECT / "notebooks")
    parser.add_argument("--samples", type=int)
    parser.add_argument("--shard-size", type=int)
    parser.add_argument("--shape", type=lambda s: tuple(int(v) for v in s.split(",")))
    parser.add_argument("--only", nargs="*", help="run only notebooks whose names start with these")
    parser.add_argument("--cell-timeout", type=float, default=CELL_TIMEOUT_S,
                        help="seconds a notebook cell may run before the run fails")
    parser.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="extra papermill parameter for every notebook (value parsed as int/float if it can be)")
    args = parser.parse_args(argv)
    data_args = {k: v for k, v in [("samples", args.samples), ("shard_size", args.shard_size),
                                   ("shape", args.shape)] if v is not None}
    params = {name: _parse(value) for name, value in args.param}
    try:
        run_course(args.out, notebooks=args.notebooks, data_args=data_args, parameters=params, only=args.only,
                   cell_timeout=args.cell_timeout)
    except ValueError as e:
        if "declared by no chapter" not in str(e):
            raise
        parser.error(str(e))
    return 0


def _parse(value: str) -> Any:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


if __name__ == "__main__":
    sys.exit(main())
