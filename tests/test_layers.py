"""The layers hold: a module imports only from its own layer or below, as the README's diagram draws them.

data_gen < loaders < teaching < measure < distributed < course (< solutions, the package's top level). Every
``import``/``from ... import`` of every module is parsed, relative imports resolved, function-level imports
included: a late import is still a dependency.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["data_gen", "loaders", "teaching", "measure", "distributed", "course", "solutions", "course_lib"]


def layer_of(module: str) -> str | None:
    """The layer a dotted module name belongs to (``course_lib.measure.memory`` -> ``measure``), or None."""
    parts = module.split(".")
    if parts[0] == "data_gen":
        return "data_gen"
    if parts[0] != "course_lib" or parts[1:] == ["_exports"]:   # the lazy-export helper sits below every layer
        return None
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else "course_lib"


def imports_of(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """(line, absolute module) for every import in ``path``, relative ones resolved against its package."""
    package = list(path.relative_to(root).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            found.append((node.lineno, module))
            if not node.module:   # `from . import x`: x is a module of that package
                found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def violations(root: Path = ROOT) -> list[str]:
    """Every import that reaches up a layer, as ``file:line imports module (layer -> layer)``."""
    out = []
    for path in sorted([*(root / "course_lib").rglob("*.py"), *(root / "data_gen").rglob("*.py")]):
        mine = layer_of(".".join(path.relative_to(root).with_suffix("").parts))
        for line, module in imports_of(path, root):
            theirs = layer_of(module)
            if theirs and mine and LAYERS.index(theirs) > LAYERS.index(mine):
                out.append(f"{path.relative_to(root)}:{line} imports {module} ({mine} -> {theirs})")
    return out


def test_no_module_imports_a_layer_above_its_own():
    assert violations() == []


def test_the_check_sees_an_upward_import(tmp_path):
    """A loader importing measure/ is caught (so the test above can fail)."""
    (tmp_path / "course_lib" / "loaders").mkdir(parents=True)
    (tmp_path / "data_gen").mkdir()
    (tmp_path / "course_lib" / "loaders" / "bad.py").write_text("def f():\n    from ..measure.memory import x\n")
    (tmp_path / "course_lib" / "loaders" / "fine.py").write_text("from .epoch_plan import EpochPlan\n")
    assert violations(tmp_path) == ["course_lib/loaders/bad.py:2 imports course_lib.measure.memory "
                                    "(loaders -> measure)"]


@pytest.mark.parametrize("package", ["course_lib", "course_lib.loaders", "course_lib.measure", "course_lib.teaching",
                                     "course_lib.course", "course_lib.distributed"])
def test_every_exported_name_resolves(package):
    import importlib

    pkg = importlib.import_module(package)
    assert pkg.__all__ == sorted(set(pkg.__all__)), "each name exported once"
    for name in pkg.__all__:
        assert getattr(pkg, name) is not None, f"{package}.{name}"
    with pytest.raises(AttributeError, match="no_such_name"):
        getattr(pkg, "no_such_name")  # noqa: B009 - the lookup itself is the test


@pytest.mark.parametrize("package", ["course_lib", "course_lib.loaders", "course_lib.measure", "course_lib.teaching",
                                     "course_lib.course", "course_lib.distributed"])
def test_no_exported_name_is_also_a_module_of_its_package(package):
    """Importing a submodule sets the package attribute of its name: an exported function named like a module of
    the same package would turn into that module once anything imports it (``measure.shuffle_quality`` did)."""
    import importlib
    import pkgutil

    pkg = importlib.import_module(package)
    assert not set(pkg.__all__) & {m.name for m in pkgutil.iter_modules(pkg.__path__)}


def test_a_name_stays_the_function_after_its_module_is_imported_by_others():
    import subprocess
    import sys

    code = ("import course_lib.measure as m; import course_lib.measure.fingerprints; "
            "from course_lib.measure import arrival_order, shuffle_quality, order_fingerprint; "
            "assert callable(shuffle_quality) and callable(order_fingerprint) and callable(arrival_order); "
            "assert callable(m.shuffle_quality)")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
