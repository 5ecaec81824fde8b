"""What the ranks saw, checked: pure functions over the sample ids and batch counts gathered from every rank.

No process group here: the torchrun script gathers, these functions judge, and the tests call them directly.
:func:`gather_ranks_in_process` is the one exception that reads data: it plays every rank in turn in this process
(explicit ``rank``/``world_size``, real DataLoader workers) so a loader's split can be checked without torchrun.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from torch.utils.data import DataLoader

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


def gather_ranks_in_process(make_dataset: Callable[[int, int], Any], *, world_size: int, num_workers: int,
                            total: int, epoch: int = 0, name: str = "in-process") -> dict[str, Any]:
    """Play each rank in turn: ``make_dataset(rank, world_size)`` read through a DataLoader with ``num_workers``
    workers; the ids every rank received are judged by :func:`run_report` against ``0..total-1``.
    Chapter 06 §1 checks the learner's ``RankShardLoader`` with it."""
    if world_size < 1 or num_workers < 0:
        raise ValueError(f"world_size must be >= 1 and num_workers >= 0, got {world_size} and {num_workers}")
    ids, batches = [], []
    for rank in range(world_size):
        dataset = make_dataset(rank, world_size)
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)
        got = [np.asarray(b["idx"], dtype=np.int64) for b in DataLoader(dataset, batch_size=None,
                                                                          num_workers=num_workers)]
        ids.append(np.concatenate(got) if got else np.empty(0, dtype=np.int64))
        batches.append(len(got))
    return run_report(name, epoch, ids, batches, total, num_workers=num_workers,
                      disjoint=ranks_disjoint(ids))
