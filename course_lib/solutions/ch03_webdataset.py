"""Chapter 03's exercise solutions (open this file when you are stuck; `make course` and CI run them)."""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from ..course.exercises import solution


def shuffle_buffer(samples: Iterable[Any], size: int, rng: np.random.Generator) -> Iterator[Any]:
    """Chapter 03, exercise 1: hold up to ``size`` samples; when the buffer is full, a random one leaves before
    the next comes in; at the end the rest leave in random order. The library's version (it also grows the
    buffer two in, one out, so the first sample leaves sooner): ``course_lib/loaders/shuffle_buffer.py``."""
    buf: list[Any] = []
    for sample in samples:
        buf.append(sample)
        if len(buf) == size:                      # full: one random sample leaves
            k = int(rng.integers(size))
            buf[k], buf[-1] = buf[-1], buf[k]
            yield buf.pop()
    rng.shuffle(buf)
    yield from buf


@solution("03_shuffle_buffer")
def shuffle_buffer_solution():
    """Chapter 03: the generator above."""
    return shuffle_buffer


def my_shards(shards: list[str], rank: int, world_size: int, worker: int, num_workers: int) -> list[str]:
    """Chapter 03, exercise 2: this reader's shards: every ``world_size``-th from ``rank`` (the rank's share),
    then every ``num_workers``-th of those from ``worker``. The library's version: ``ShardPipeline``'s
    ``_split_by_node`` and ``_split_by_worker`` in ``course_lib/loaders/webdataset_pipeline.py``."""
    return shards[rank::world_size][worker::num_workers]


@solution("03_shard_split")
def my_shards_solution():
    """Chapter 03: the function above."""
    return my_shards
