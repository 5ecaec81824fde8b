"""Chapter 07's exercise solutions (open this file when you are stuck; `make course` and CI run them)."""
from __future__ import annotations

import numpy as np

from ..course.exercises import solution


@solution("07_your_own_data")
def class_counts(data_dir):
    """Samples per class name in a converted dataset: labels from its npy shards, names from its manifest."""
    from pathlib import Path

    from data_gen import read_manifest

    from ..loaders.shard_index import index_shards

    manifest = read_manifest(Path(data_dir))
    names = manifest["class_names"] or [str(i) for i in range(manifest["classes"])]
    counts = np.zeros(len(names), dtype=np.int64)
    for path in index_shards(data_dir).paths:
        counts += np.bincount(np.load(path, mmap_mode="r")["y"], minlength=len(names))
    return {name: int(n) for name, n in zip(names, counts)}


@solution("07_break_even")
def break_even_cores(timings, shards):
    """The fewest cores on which a Ray conversion of ``shards`` shards beats one local process, or None.

    Closed form (not the library's search): Ray can afford ``waves`` rounds of tasks, the most whole rounds that
    fit into the local time once the fixed costs are paid; ``shards`` in that many rounds need ``ceil(shards /
    waves)`` cores.
    """
    import math

    local = shards * timings.per_shard_s
    left = local - timings.fixed_s                   # what remains for tasks after start-up, first wait and stop
    waves = math.ceil(left / timings.per_task_s) - 1 if left > 0 else 0   # rounds strictly shorter than left
    return math.ceil(shards / waves) if waves >= 1 else None
