"""In CI (CI=true or COURSE_STRICT=1, which `make test` sets) a dependency the set-up installs that is missing or
broken FAILS its test with the import error; elsewhere the test is skipped with the reason (tests/conftest.py)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

PLANTED = f'''
import sys
sys.path.insert(0, {str(TESTS)!r})
import conftest
from conftest import require, require_program


def test_needs_an_absent_module():
    require("no_such_module_for_the_course_xyz", install="pip install nothing")


def test_needs_a_broken_module():
    require("broken_module_for_the_course_xyz")


def test_needs_an_absent_program():
    require_program("no-such-program-for-the-course", install="apt-get install nothing")


def test_needs_an_installed_module():
    assert require("json").dumps(1) == "1"


def test_needs_a_broken_fork_unsafe_module():
    conftest.FORK_UNSAFE.add("broken_fork_unsafe_for_the_course_xyz")   # imported in a subprocess, like lance
    require("broken_fork_unsafe_for_the_course_xyz")
    assert "broken_fork_unsafe_for_the_course_xyz" not in sys.modules
'''


def _run(tmp_path: Path, **env: str) -> str:
    (tmp_path / "test_planted_deps.py").write_text(PLANTED)
    (tmp_path / "broken_module_for_the_course_xyz.py").write_text("raise RuntimeError('half-installed')\n")
    (tmp_path / "broken_fork_unsafe_for_the_course_xyz.py").write_text("raise OSError('no such runtime')\n")
    clean = {k: v for k, v in os.environ.items() if k not in ("CI", "COURSE_STRICT")}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rfs", "-p", "no:cacheprovider", "-p", "no:xdist",
                           "--rootdir", str(tmp_path), "-c", os.devnull, "test_planted_deps.py"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env={**clean, "PYTHONPATH": str(tmp_path), **env})
    return proc.stdout + proc.stderr


@pytest.mark.parametrize("env", [{"CI": "true"}, {"COURSE_STRICT": "1"}], ids=["CI=true", "COURSE_STRICT=1"])
def test_in_ci_a_missing_or_broken_dependency_fails_with_its_error(tmp_path, env):
    out = _run(tmp_path, **env)
    assert "4 failed, 1 passed" in out, out[-3000:]
    assert "broken_fork_unsafe_for_the_course_xyz does not import (OSError: no such runtime)" in out, out[-3000:]
    assert "no_such_module_for_the_course_xyz does not import (ModuleNotFoundError" in out, out[-3000:]
    assert "RuntimeError: half-installed" in out and "no no-such-program-for-the-course on PATH" in out, out[-3000:]


def test_outside_ci_it_is_skipped_with_the_reason(tmp_path):
    out = _run(tmp_path, COURSE_STRICT="0")
    assert "1 passed, 4 skipped" in out, out[-3000:]
    assert "install it with: pip install nothing" in out and "install it with: apt-get install nothing" in out, out
