"""The orders a loader class plays, computed in a fresh process when the class can be imported there.

    python -m course_lib.measure.class_orders --class pkg.module:Name --data-dir build/data --kwargs '{"seed": 42}'
        --epochs 0 1 [--state '{"seed": 42, "epoch": 1, "samples_seen": 1280}']

prints ``{"orders": {"0": fingerprint, ...}, "resumed": {"samples": n, "fingerprint": ...} or null}``: each
epoch's order fingerprint of ``Name(data_dir, **kwargs)`` (after ``set_epoch``) and, with ``--state``, of the
rest of an epoch after ``load_state_dict(state)`` on a new instance. Chapter 04 checks the learner's loader with it.
"""
from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..loaders.cli_args import add_data_dir_argument
from .fingerprints import order_fingerprint
from .shuffle_metrics import arrival_order

FRESH = "a fresh process"
HERE = "this process, new instances (a class defined in a notebook cannot be imported by another process)"


def class_path(cls: type) -> str | None:
    """``"module:QualName"`` if a new process can import ``cls`` by that name, else None."""
    path = f"{cls.__module__}:{cls.__qualname__}"
    if cls.__module__ == "__main__" or "<locals>" in cls.__qualname__:
        return None
    try:
        return path if load_class(path) is cls else None
    except (ImportError, AttributeError):
        return None


def load_class(path: str) -> type:
    """The class named ``"module:QualName"``."""
    module, _, name = path.partition(":")
    obj: Any = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def loader_orders(cls: type, data_dir: str | Path, kwargs: dict[str, Any], epochs: Sequence[int],
                  state: dict[str, Any] | None = None) -> dict[str, Any]:
    """In this process: each epoch's fingerprint from a new ``cls(data_dir, **kwargs)``, and the resumed rest."""
    orders = {}
    for epoch in epochs:
        loader = cls(data_dir, **kwargs)
        loader.set_epoch(epoch)
        orders[str(epoch)] = order_fingerprint(arrival_order(loader))
    resumed = None
    if state is not None:
        loader = cls(data_dir, **kwargs)
        loader.load_state_dict(json.loads(json.dumps(state)))   # what a checkpoint file gives back
        rest = arrival_order(loader)
        resumed = {"samples": len(rest), "fingerprint": order_fingerprint(rest)}
    return {"orders": orders, "resumed": resumed}


def loader_orders_elsewhere(cls: type, data_dir: str | Path, kwargs: dict[str, Any], epochs: Sequence[int],
                            state: dict[str, Any] | None = None, timeout: float = 300) -> tuple[dict[str, Any], str]:
    """:func:`loader_orders` in a fresh process when ``cls`` is importable there, else here; and where it ran."""
    path = class_path(cls)
    if path is None:
        return loader_orders(cls, data_dir, kwargs, epochs, state), HERE
    cmd = [sys.executable, "-m", __spec__.name, "--class", path, "--data-dir", str(data_dir),
           "--kwargs", json.dumps(kwargs), "--epochs", *map(str, epochs)]
    if state is not None:
        cmd += ["--state", json.dumps(state)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{path} in a fresh process failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout), FRESH


def main(argv: list[str] | None = None) -> int:
    """CLI: print the orders as JSON."""
    parser = argparse.ArgumentParser(prog="python -m course_lib.measure.class_orders", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--class", dest="cls", required=True, help="the loader class, module:QualName")
    add_data_dir_argument(parser)
    parser.add_argument("--kwargs", type=json.loads, default={}, help="JSON keyword arguments of the class")
    parser.add_argument("--epochs", type=int, nargs="*", default=[])
    parser.add_argument("--state", type=json.loads, default=None, help="JSON state for load_state_dict")
    args = parser.parse_args(argv)
    try:
        cls = load_class(args.cls)
    except (ImportError, AttributeError, ValueError) as e:
        parser.error(f"--class {args.cls}: cannot import it ({e})")
    print(json.dumps(loader_orders(cls, args.data_dir, args.kwargs, args.epochs, args.state)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
