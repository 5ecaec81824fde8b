"""environment.yml and pyproject.toml list the same packages; constraints pin torch's CPU build; CI runs make test."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CORE = {"jupyterlab", "numpy", "torch", "webdataset", "matplotlib", "nbval", "papermill", "tqdm", "psutil"}


def _name(spec: str) -> str:
    return re.split(r"[<>=!~\[ ;]", spec.strip(), maxsplit=1)[0].lower().replace("_", "-")


def pyproject_packages() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = project["dependencies"] + [d for extra in project["optional-dependencies"].values() for d in extra]
    return {_name(d) for d in deps}


def environment_packages() -> set[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    names = set()
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            names |= {_name(d) for d in dep["pip"] if not d.startswith("-")}
        elif _name(dep) not in ("python", "pip"):
            names.add(_name(dep))
    return names


def test_environment_and_pyproject_agree():
    assert pyproject_packages() == environment_packages()
    assert CORE <= pyproject_packages()


def test_constraints_pin_cpu_torch_and_every_dependency():
    pins = {_name(line): line.split("==")[1].strip() for line in (ROOT / "constraints.txt").read_text().splitlines()
            if "==" in line and not line.startswith("#")}
    assert pins["torch"] == "2.13.0"
    assert pyproject_packages() <= set(pins), pyproject_packages() - set(pins)


def test_ci_runs_exactly_the_readme_test_command():
    ci = [ln for ln in (ROOT / ".ci/run").read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert ci[-1].strip() == "make test"
    assert "make test" in (ROOT / "README.md").read_text()


def test_every_data_file_of_the_package_is_declared_package_data():
    """A non-editable install carries only .py files unless package-data names the rest (e.g. chapter 05's
    reference figures): every other file under course_lib/ and data_gen/ must match a declared pattern."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    declared = {ROOT.joinpath(*pkg.split("."), "x").parent: patterns
                for pkg, patterns in setuptools.get("package-data", {}).items()}
    data = [p for top in ("course_lib", "data_gen") for p in (ROOT / top).rglob("*")
            if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts]
    assert data, "no data files found: the check would pass vacuously"
    for path in data:
        assert any(path.relative_to(pkg).match(pat) for pkg, pats in declared.items() if pkg in path.parents
                   for pat in pats), f"{path.relative_to(ROOT)} is not package-data in pyproject.toml"


def test_importing_course_lib_leaves_pyplot_for_the_first_plot():
    """Every torchrun rank, spawned worker and peer subprocess imports course_lib; pyplot (~1 s) waits for a plot."""
    import subprocess
    import sys
    code = ("import sys, course_lib; assert 'matplotlib.pyplot' not in sys.modules; "
            "import matplotlib; matplotlib.use('Agg'); from course_lib.course.plots import plt; plt.figure(); "
            "assert 'matplotlib.pyplot' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
