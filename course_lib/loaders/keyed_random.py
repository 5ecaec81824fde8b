"""Keyed randomness: one generator per key such as (seed, epoch, rank, worker), and no two keys alike.

numpy's ``default_rng([seed, epoch])`` is tempting but overstates its key: a ``SeedSequence`` ignores
trailing zero words (``default_rng([s, 0])`` is ``default_rng(s)``, ``[s, e, 1, 0]`` is ``[s, e, 1]``) and
splits large integers into 32-bit words (``[s, 2**32]`` is ``[s, 0, 1]``). Here the key goes into the
``spawn_key`` instead, each part as two fixed 32-bit words, so keys of different lengths or values give
different streams. Every loader draws its randomness through :func:`keyed_rng`: the epoch plan, the
per-worker ``worker_rng`` and the WebDataset pipeline's shard order and shuffle buffers.
"""
from __future__ import annotations

import numpy as np

_WORD = 1 << 32


def keyed_seed_sequence(seed: int, *key: int) -> np.random.SeedSequence:
    """The ``SeedSequence`` of ``seed`` and ``key`` (each a non-negative integer below 2**64)."""
    for i, value in enumerate((seed, *key)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            name = "seed" if i == 0 else f"key[{i - 1}]"
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    if any(int(k) >= _WORD * _WORD for k in key):
        raise ValueError(f"key parts must be below 2**64, got {key!r}")
    words = tuple(w for k in key for w in (int(k) % _WORD, int(k) // _WORD))
    return np.random.SeedSequence(int(seed), spawn_key=words)


def keyed_rng(seed: int, *key: int) -> np.random.Generator:
    """A numpy generator for (seed, *key): reproducible, independent of any global RNG, distinct per key."""
    return np.random.default_rng(keyed_seed_sequence(seed, *key))
