"""Which peer libraries are installed: absent is a reason to skip (outside CI), a broken install is an error.

The peers themselves are measured in their own processes (:mod:`.peer_runner`, builders in :mod:`.peer_loaders`).
"""
from __future__ import annotations

import importlib


def missing(package: str) -> str | None:
    """None when ``package`` imports; the reason when it is not installed (for a "skipped" line in a table).

    Only the package itself being absent counts as missing: an installed package that fails to import (a
    broken dependency, a version clash) raises its error, so a broken install is never reported as absent.
    """
    try:
        importlib.import_module(package)
    except ModuleNotFoundError as e:
        if e.name not in (package, package.split(".")[0]):
            raise  # installed, but something it imports is not: a broken install, not a missing one
        return f"{package} not installed here: {type(e).__name__}: {e}"
    return None
