"""Nothing hangs: a planted hang (a DataLoader worker that sleeps forever) fails its test within the timeout
pyproject.toml sets, naming the test and showing where every thread was; run in a pytest subprocess."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PLANTED = '''
import time

from torch.utils.data import DataLoader, Dataset


class SleepsForever(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        time.sleep(10_000)   # a deadlocked worker: never returns a sample


def test_planted_worker_sleeps_forever():
    next(iter(DataLoader(SleepsForever(), num_workers=1)))


def test_planted_neighbour_still_runs():
    assert 1 + 1 == 2
'''


def test_a_hung_dataloader_worker_fails_its_test_by_name(tmp_path):
    planted = tmp_path / "test_planted_hang.py"
    planted.write_text(PLANTED)
    limit_s = 3
    # the project's own pytest configuration (timeout method, xfail_strict, ...), with a short limit
    proc = subprocess.run([sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml"), "--rootdir",
                           str(tmp_path), "-p", "no:cacheprovider", "-p", "no:xdist", "-o", f"timeout={limit_s}",
                           "-q", str(planted)], capture_output=True, text=True, timeout=240, cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-3000:]
    assert "FAILED test_planted_hang.py::test_planted_worker_sleeps_forever" in out, out[-3000:]
    assert f"Timeout (>{limit_s}.0s)" in out or f"Timeout >{limit_s}" in out, out[-3000:]
    assert "1 failed, 1 passed" in out, out[-3000:]
    assert "Timeout" in out and "test_planted_worker_sleeps_forever" in out and "Thread" in out, out[-3000:]
