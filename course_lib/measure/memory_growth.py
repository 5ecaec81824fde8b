"""What a load-everything loader holds: anonymous memory after each shard is loaded and kept (chapter 01)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..loaders.shard_index import index_shards
from .memory import memory_snapshot


def load_shards_measuring_memory(data_dir: str | Path) -> list[tuple[float, float]]:
    """Load shards fully, one after another, keeping them all; after each, (MB loaded, anonymous MB).

    The list of arrays is released when the function returns: the curve is what a load-everything
    loader would hold.
    """
    index = index_shards(data_dir)
    held, points, loaded = [], [(0.0, memory_snapshot(include_children=False).anon_mb)], 0
    for path in index.paths:
        held.append(np.load(path, allow_pickle=False))
        loaded += held[-1].nbytes
        points.append((loaded / 1e6, memory_snapshot(include_children=False).anon_mb))
    return points
