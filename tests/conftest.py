"""Shared fixtures: small generated datasets (session-scoped, so each is written once per run)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from data_gen import generate

SMALL = dict(samples=103, shard_size=20, shape=(3, 4, 4), classes=5, seed=7)


@pytest.fixture(scope="session")
def small_data(tmp_path_factory) -> Path:
    """103 samples in 6 shards (the last one short), every format. Treat as read-only."""
    root = tmp_path_factory.mktemp("small") / "data"
    generate(root, **SMALL, progress=False, report=None)
    return root


@pytest.fixture(scope="session")
def runtime_dir() -> Iterator[str]:
    """Jupyter's runtime folder, with a short path. Kernels talk over Unix sockets named after it, and a socket
    path has at most 107 bytes: under pytest-xdist (``/tmp/pytest-of-root/pytest-N/popen-gw0/...``) JupyterLab's
    kernel sockets overflowed ("Error Starting Kernel: File name too long") and no cell ran."""
    path = tempfile.mkdtemp(prefix="jr-")
    assert len(os.path.join(path, f"kernel-{uuid.uuid4()}-ipc-99")) <= 107, path
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(autouse=True)
def _quiet_home(tmp_path_factory, monkeypatch, runtime_dir):
    """Keep Jupyter, IPython and matplotlib from writing into the real $HOME."""
    home = tmp_path_factory.getbasetemp() / "home"
    for var, sub in [("JUPYTER_CONFIG_DIR", "jupyter-config"), ("JUPYTER_DATA_DIR", "jupyter-data"),
                     ("IPYTHONDIR", "ipython"), ("MPLCONFIGDIR", "mpl")]:
        monkeypatch.setenv(var, str(home / sub))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", runtime_dir)


LONGEST_FIRST = ("test_notebooks_later.py", "test_notebooks.py", "test_browser.py")


def pytest_collection_modifyitems(config, items):
    """The longest test files first, longest of all first: under pytest-xdist (`make test` runs `-n auto --dist
    loadfile --no-loadscope-reorder`) the course halves start at once while the short files fill the gaps, instead
    of a course half starting last (xdist 3.8 orders files by test count unless told not to: the 2-test half ran
    last, at 210 s of a 296 s run)."""
    def rank(item) -> int:
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)


STRICT_VARS = ("CI", "COURSE_STRICT")  # `make test` sets COURSE_STRICT=1; CI services set CI=true


def strict_dependencies() -> bool:
    """True in CI (``CI`` or ``COURSE_STRICT`` set to 1/true/yes): a dependency the set-up installs must work there."""
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes") for v in STRICT_VARS)


def require(module: str, *, install: str = "make setup"):
    """Import ``module`` for a test: in CI an import error FAILS the test with that error (a broken or missing
    install is a bug there); elsewhere the test is skipped with the reason and how to install it."""
    import importlib

    if module.split(".")[0] in FORK_UNSAFE:
        return _import_in_subprocess(module, install)
    try:
        return importlib.import_module(module)
    except Exception as e:  # a broken install raises more than ImportError
        reason = f"{module} does not import ({type(e).__name__}: {e}); install it with: {install}"
        if strict_dependencies():
            pytest.fail(f"{reason} [CI: a dependency the set-up installs must work]", pytrace=False)
        pytest.skip(reason)


# Imported only in a subprocess: lance starts threads when imported and is not fork-safe (it warns so), and this
# pytest worker forks DataLoader workers for the test files that come after.
FORK_UNSAFE = {"lance"}


def _import_in_subprocess(module: str, install: str) -> None:
    """``require`` for a fork-unsafe module: import it in a fresh interpreter; fail (CI) or skip with its error."""
    proc = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=120)
    if proc.returncode == 0:
        return None
    error = (proc.stderr.strip().splitlines() or ["no error output"])[-1]
    reason = f"{module} does not import ({error}); install it with: {install}"
    if strict_dependencies():
        pytest.fail(f"{reason} [CI: a dependency the set-up installs must work]", pytrace=False)
    pytest.skip(reason)


def require_program(name: str, *, install: str) -> str:
    """The path of program ``name`` on PATH: in CI its absence FAILS the test; elsewhere the test is skipped."""
    path = shutil.which(name)
    if path is None:
        reason = f"no {name} on PATH; install it with: {install}"
        if strict_dependencies():
            pytest.fail(f"{reason} [CI: a dependency the set-up installs must work]", pytrace=False)
        pytest.skip(reason)
    return path
