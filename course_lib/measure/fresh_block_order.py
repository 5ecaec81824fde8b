"""Is a loader's block order a function of (seed, epoch) only? Fingerprint it here and in a fresh process.

A method defined in a notebook cannot be imported by a new process, so it travels as its source
(``inspect.getsource``) with the imports it names; a method from a module travels by its import path. The
fresh process builds ``base`` with the method swapped in and prints each epoch's fingerprint of ``block_order()``:

    python -m course_lib.measure.fresh_block_order '{"base": "module:Class", "data_dir": ..., ...}'
"""
from __future__ import annotations

import dis
import importlib
import inspect
import json
import subprocess
import sys
import textwrap
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .fingerprints import order_fingerprint


def _importable(obj: Any) -> str | None:
    """``module:qualname`` if a new process can import ``obj`` by that path, else None."""
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not module or not qualname or module == "__main__" or "<locals>" in qualname:
        return None
    return f"{module}:{qualname}"


def _load(path: str) -> Any:
    """The object named by ``module:qualname`` (or a module, by ``module:``)."""
    module, _, qualname = path.partition(":")
    obj = importlib.import_module(module)
    for part in filter(None, qualname.split(".")):
        obj = getattr(obj, part)
    return obj


def _names(code: types.CodeType) -> set[str]:
    """Global names a function's code (and its nested functions) loads: not attribute names such as ``self.seed``."""
    names = {i.argval for i in dis.get_instructions(code) if i.opname in ("LOAD_GLOBAL", "LOAD_NAME")}
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names


def method_payload(fn: Callable) -> dict[str, Any]:
    """How a new process gets ``fn``: its import path, or its source plus the imports of the globals it uses.

    Raises ValueError naming the global when ``fn`` uses something defined only in this process (a notebook
    variable), since a fresh process could not see it."""
    path = _importable(fn)
    if path:
        return {"path": path}
    if fn.__name__ == "<lambda>":
        raise ValueError("a lambda cannot be sent to a fresh process by its source: define it with def")
    if fn.__code__.co_freevars:
        raise ValueError(f"{fn.__qualname__} uses {', '.join(fn.__code__.co_freevars)} from an enclosing function: "
                         "a fresh process cannot see it (define the method at the top level of a cell)")
    try:
        source = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError) as e:
        raise ValueError(f"the source of {fn.__qualname__} cannot be found ({e}); define it in a cell or a file") from e
    imports = {}
    for name in sorted(_names(fn.__code__) & set(fn.__globals__)):
        value = fn.__globals__[name]
        target = f"{value.__name__}:" if isinstance(value, types.ModuleType) else _importable(value)
        if target is None:
            raise ValueError(f"{fn.__qualname__} uses {name!r}, defined only in this notebook: a fresh process "
                             "cannot see it (import it from a module, or compute it inside the method)")
        imports[name] = target
    return {"name": fn.__name__, "source": source, "imports": imports}


def _method(payload: dict[str, Any]) -> Callable:
    if "path" in payload:
        return _load(payload["path"])
    namespace = {name: _load(target) for name, target in payload["imports"].items()}
    exec(compile(  # noqa: S102  (the learner's own method, in a process started for it)
        payload["source"], "<method sent to a fresh process>", "exec"), namespace)
    return namespace[payload["name"]]


def block_order_fingerprints(base: type, block_order: Callable, data_dir: str | Path, *, seed: int,
                             epochs: Sequence[int] = (0, 1), **kwargs: Any) -> dict[str, str]:
    """``{"epoch": fingerprint of block_order()}`` for ``base`` with ``block_order`` swapped in, in this process."""
    loader = type("Checked", (base,), {"block_order": block_order})(data_dir, seed=seed, **kwargs)
    out = {}
    for epoch in epochs:
        loader.set_epoch(epoch)
        out[str(epoch)] = order_fingerprint(loader.block_order())
    return out


def block_order_fingerprints_in_fresh_process(base: type, block_order: Callable, data_dir: str | Path, *,
                                              seed: int, epochs: Sequence[int] = (0, 1), timeout: float = 300,
                                              **kwargs: Any) -> dict[str, str]:
    """As :func:`block_order_fingerprints`, computed by a new Python process (fresh generators, fresh hashing)."""
    base_path = _importable(base)
    if base_path is None:
        raise ValueError(f"{base.__qualname__} must be importable by a new process (defined in a module)")
    payload = {"base": base_path, "method": method_payload(block_order), "data_dir": str(data_dir), "seed": seed,
               "epochs": list(epochs), "kwargs": kwargs}
    run = subprocess.run([sys.executable, "-m", __spec__.name, json.dumps(payload)], capture_output=True,
                         text=True, timeout=timeout, check=False)
    if run.returncode != 0:
        raise RuntimeError(f"the fresh process failed:\n{run.stderr[-2000:]}")
    return json.loads(run.stdout)


def main(argv: list[str] | None = None) -> int:
    """CLI: one JSON payload in, the fingerprints as JSON out."""
    payload = json.loads((argv if argv is not None else sys.argv[1:])[0])
    print(json.dumps(block_order_fingerprints(_load(payload["base"]), _method(payload["method"]), payload["data_dir"],
                                              seed=payload["seed"], epochs=payload["epochs"], **payload["kwargs"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
