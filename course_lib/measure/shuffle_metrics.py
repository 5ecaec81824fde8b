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
