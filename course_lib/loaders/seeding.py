"""Randomness that reproduces: one generator per (seed, epoch, rank, worker), never a shared global state.

- :func:`seed_everything` seeds Python's, numpy's and torch's global generators (for code you do not control).
- :func:`worker_rng` gives each DataLoader worker of each rank its own ``numpy`` generator for augmentation,
  keyed by (seed, epoch, rank, worker) through :func:`~.keyed_random.keyed_rng`: independent across workers, new
  each epoch, identical when the run is repeated.
- :func:`seed_worker` is the ``worker_init_fn`` from PyTorch's reproducibility notes (global RNGs per worker);
  PyTorch >= 1.9 already does this in its workers, so it matters for code that reseeds them or for older versions.
- :class:`SharedEpoch` carries the epoch number to persistent DataLoader workers, which keep their own copy
  of the dataset and never see a ``set_epoch`` called in the main process.
"""
from __future__ import annotations

import multiprocessing
import random

import numpy as np
import torch

from .keyed_random import keyed_seed_sequence
from .runtime import check_non_negative, current_rank, current_worker


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, numpy's global RNG and torch's global RNG with ``seed``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def worker_seed_sequence(seed: int, epoch: int, rank: int = 0, worker: int = 0) -> np.random.SeedSequence:
    """The ``SeedSequence`` of one (seed, epoch, rank, worker): distinct keys give independent streams."""
    key = [check_non_negative(name, value) for name, value in
           [("seed", seed), ("epoch", epoch), ("rank", rank), ("worker", worker)]]
    return keyed_seed_sequence(*key)


def worker_rng(seed: int, epoch: int, *, rank: int | None = None, worker: int | None = None) -> np.random.Generator:
    """A numpy generator for this (seed, epoch, rank, worker); rank and worker default to the caller's own."""
    rank = current_rank() if rank is None else rank
    worker = current_worker()[0] if worker is None else worker
    return np.random.default_rng(worker_seed_sequence(seed, epoch, rank, worker))


def seed_worker(worker_id: int) -> None:
    """``worker_init_fn``: seed ``random`` and numpy's global RNG from the seed torch gave this worker."""
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)


class SharedEpoch:
    """An epoch number in shared memory: set it in the main process, read it in (persistent) workers.

    DataLoader workers receive the object when they start (by inheritance), so it must exist before the
    DataLoader's first iterator; it cannot be pickled to a file.
    """

    def __init__(self, epoch: int = 0):
        self._value = multiprocessing.Value("q", int(epoch), lock=False)

    def get(self) -> int:
        """The current epoch."""
        return int(self._value.value)

    def set(self, epoch: int) -> None:
        """Set the epoch every worker will read at its next iterator."""
        self._value.value = int(epoch)
