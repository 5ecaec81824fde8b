"""Random numbers inside DataLoader workers, made visible: which worker drew what (chapter 04, section 4).

``RandomDraws(rng_for)`` yields ``(worker id, number)`` pairs; ``rng_for(worker)`` says where each worker's
generator comes from. A generator built once and copied into every worker repeats the same numbers in each;
``worker_rng(seed, epoch)`` gives each worker its own.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from torch.utils.data import DataLoader, IterableDataset

from ..loaders.runtime import current_worker


class RandomDraws(IterableDataset):
    """Yields ``(worker id, a random number)`` ``per_worker`` times in each worker; ``rng_for(worker)`` is its
    generator."""

    def __init__(self, rng_for: Callable[[int], np.random.Generator], per_worker: int = 4):
        self.rng_for, self.per_worker = rng_for, per_worker

    def __iter__(self):
        worker = current_worker()[0]
        rng = self.rng_for(worker)
        for _ in range(self.per_worker):
            yield worker, float(rng.random())


def draws_by_worker(rng_for: Callable[[int], np.random.Generator], num_workers: int = 2,
                    per_worker: int = 4) -> dict[int, list[float]]:
    """``{worker: [numbers drawn]}`` from :class:`RandomDraws` through a DataLoader with ``num_workers`` workers."""
    out: dict[int, list[float]] = {}
    for worker, x in DataLoader(RandomDraws(rng_for, per_worker), batch_size=None, num_workers=num_workers):
        out.setdefault(int(worker), []).append(float(x))
    return out
