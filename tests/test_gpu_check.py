"""tools/gpu_check.sh exits non-zero when a GPU test fails (pytest's status survives the log's tail and tee).

Run with stand-ins on PATH: an ``nvidia-smi`` that prints a line, a ``python3`` whose pytest fails (or passes)
and whose other commands succeed; nothing is measured."""
from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _stand_ins(bin_dir: Path, pytest_status: int) -> None:
    bin_dir.mkdir()
    scripts = {"nvidia-smi": "#!/bin/sh\necho 'Fake GPU, 1 MiB, 0'\n",
               "python3": f"#!/bin/sh\ncase \"$*\" in *'-m pytest'*) echo '1 failed' ; exit {pytest_status};; esac\n"
                          "echo \"python3 $*\" >> \"$GPU_CHECK_LOG\"\n"}
    for name, text in scripts.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(stat.S_IRWXU)


@pytest.mark.parametrize("pytest_status, want", [(1, 1), (0, 0)], ids=["gpu-test-fails", "gpu-tests-pass"])
def test_gpu_check_exit_status_follows_pytest(tmp_path, pytest_status, want):
    _stand_ins(tmp_path / "bin", pytest_status)
    log = tmp_path / "calls.log"
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "GPU_CHECK_LOG": str(log)}
    proc = subprocess.run(["bash", str(ROOT / "tools/gpu_check.sh"), str(tmp_path / "out")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == want, proc.stdout + proc.stderr
    measured = log.read_text() if log.exists() else ""
    if want:
        assert "GPU tests failed (pytest exit status 1)" in proc.stderr
        assert "gpu_measure" not in measured   # it stopped at the failure
    else:
        assert "tools/gpu_measure.py" in measured   # it went on to the measurements
    assert (tmp_path / "out/pytest.txt").read_text().strip() == "1 failed"
