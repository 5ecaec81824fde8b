"""What the ranks saw, checked: pure functions over the sample ids and batch counts gathered from every rank.

No process group here: the torchrun script gathers, these functions judge, and the tests call them directly.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..measure.fingerprints import coverage, order_fingerprint


def run_report(name: str, epoch: int, ids: Sequence[np.ndarray], batches: Sequence[int], total: int,
               **extra: Any) -> dict[str, Any]:
    """One run of one epoch across ranks: per-rank counts and fingerprints, coverage of ``0..total-1``, costs.

    ``ids[r]`` are the sample ids rank ``r`` trained on, in order; ``batches[r]`` its batch count. ``dropped``
    counts samples no rank saw, ``repeated`` extra arrivals of samples seen more than once.
    """
    if len(ids) != len(batches):
        raise ValueError(f"{len(ids)} ranks of ids but {len(batches)} batch counts")
    arrays = [np.asarray(i, dtype=np.int64) for i in ids]
    every = np.concatenate(arrays) if arrays else np.empty(0, dtype=np.int64)
    cov = coverage(every, total)
    return {"name": name, "epoch": int(epoch), "total": int(total), "world_size": len(arrays),
            "samples": [len(a) for a in arrays], "batches": [int(b) for b in batches],
            "fingerprints": [order_fingerprint(a) for a in arrays], "fingerprint": order_fingerprint(every),
            "coverage": cov.as_dict(), "exactly_once": cov.exactly_once, "equal_batches": len(set(batches)) <= 1,
            "dropped": cov.missing, "repeated": cov.duplicates, **extra}


def ranks_disjoint(ids: Sequence[np.ndarray]) -> bool:
    """No sample id appears on two ranks."""
    seen: set[int] = set()
    for a in ids:
        mine = set(np.asarray(a).tolist())
        if seen & mine:
            return False
        seen |= mine
    return True


def same_order(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Two reports of the same (run, epoch) delivered every rank the same ids in the same order."""
    return a["fingerprints"] == b["fingerprints"]


def find_run(result: dict[str, Any], name: str, epoch: int = 0) -> dict[str, Any]:
    """The report of run ``name`` at ``epoch`` in a script result; the error lists what there is."""
    for run in result.get("runs", []):
        if run["name"] == name and run["epoch"] == epoch:
            return run
    have = [f"{r['name']}@{r['epoch']}" for r in result.get("runs", [])]
    raise KeyError(f"no run {name}@{epoch} in this result; it has {have}")
