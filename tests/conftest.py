"""Shared fixtures: small generated datasets (session-scoped, so each is written once per run)."""
from __future__ import annotations

import os
import shutil
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


LONGEST_FIRST = ("test_notebooks.py", "test_browser.py")


def pytest_collection_modifyitems(config, items):
    """The longest test files first: under pytest-xdist (`make test` runs `-n auto --dist loadfile`) one worker
    starts the course run while the others work through the short files, instead of the course run starting last."""
    items.sort(key=lambda item: item.path.name not in LONGEST_FIRST)
