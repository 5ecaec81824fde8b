"""Lazy public names: a package lists ``name -> module`` once, and a name's module is imported on first use.

``import course_lib`` then costs only what a chapter uses (torchrun ranks, spawned workers and peer
subprocesses import the package too), and ``__all__``, ``dir()`` and tab completion come from the same table.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_exports(package: str, table: dict[str, str]
                 ) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """``(__all__, __getattr__, __dir__)`` for ``package`` exporting each name from its module in ``table``."""
    def __getattr__(name: str) -> Any:
        if name not in table:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(table[name], package), name)
        setattr(importlib.import_module(package), name, value)  # later lookups skip __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted(set(table) | set(vars(importlib.import_module(package))))

    return sorted(table), __getattr__, __dir__


def table(text: str) -> dict[str, str]:
    """``"module: name other"`` lines -> ``{"name": ".module", "other": ".module"}``: the export table."""
    rows = [line.split(":", 1) for line in text.strip().splitlines() if line.strip()]
    return {name: f".{module.strip()}" for module, names in rows for name in names.split()}
