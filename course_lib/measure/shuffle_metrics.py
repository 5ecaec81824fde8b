"""How well a loader shuffles: numbers computed from the order in which sample indices arrive."""
from __future__ import annotations

from typing import Iterable

import numpy as np


def arrival_order(items: Iterable) -> np.ndarray:
    """Global indices (``idx``) in arrival order, from per-sample items or batches."""
    out = []
    for item in items:
        idx = item["idx"]
        out.append(np.atleast_1d(np.asarray(idx)))
    return np.concatenate(out) if out else np.empty(0, dtype=np.int64)


def shuffle_quality(order: np.ndarray) -> dict[str, float]:
    """Three numbers for an arrival order of indices 0..N-1 (written in index order):

    - ``displacement``: mean |arrival position - written position| / N. A uniform shuffle gives ~1/3;
      no shuffle gives 0.
    - ``correlation``: Pearson correlation of arrival position with written position. Uniform ~0; none 1.
    - ``neighbours``: fraction of consecutive arrivals that were also neighbours on disk (|diff| == 1).
      Uniform ~2/N; none 1. Sensitive to blocks read in order.
    """
    order = np.asarray(order, dtype=np.int64)
    n = len(order)
    if n < 2:
        raise ValueError(f"need at least 2 samples to judge a shuffle, got {n}")
    if not np.array_equal(np.sort(order), np.arange(n)):
        raise ValueError("order must be a permutation of 0..N-1 (one epoch, each sample once)")
    position = np.arange(n)
    return {
        "displacement": float(np.abs(order - position).mean() / n),
        "correlation": float(np.corrcoef(position, order)[0, 1]),
        "neighbours": float((np.abs(np.diff(order)) == 1).mean()),
    }


def classes_per_batch(order: np.ndarray, *, classes: int, batch_size: int) -> float:
    """Mean number of distinct labels per batch if the source was written sorted by class (``classes`` equal runs,
    as arrays converted in row order from a class-sorted source are): what a loader's order mixes into a batch.
    A uniform shuffle gives nearly ``min(classes, batch_size)``; no shuffle gives 1 or 2."""
    order = np.asarray(order, dtype=np.int64)
    if classes < 1 or batch_size < 1:
        raise ValueError(f"classes and batch_size must be >= 1, got {classes} and {batch_size}")
    labels = order * classes // max(len(order), 1)
    batches = [labels[i:i + batch_size] for i in range(0, len(labels), batch_size)]
    return float(np.mean([len(np.unique(b)) for b in batches])) if batches else 0.0
