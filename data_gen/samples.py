"""Synthetic image-classification samples: a deterministic function of (seed, index)."""
from __future__ import annotations

import numpy as np


def make_sample(seed: int, index: int, shape: tuple[int, ...], classes: int) -> tuple[np.ndarray, int]:
    """Image and label of sample ``index``: a class-specific stripe pattern plus per-sample noise.

    The stripes make classes visibly different (and learnable); the noise makes every sample unique,
    so neither compression nor a cache can shortcut reading the bytes.
    """
    rng = _rng(seed, index)
    label = int(rng.integers(classes))
    noise = np.frombuffer(rng.bytes(int(np.prod(shape))), dtype=np.uint8).reshape(shape) >> 2
    return _pattern(shape, label, classes) + noise, label


def make_batch(seed: int, start: int, stop: int, shape: tuple[int, ...], classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(stop-start, *shape)`` and labels of samples ``start..stop-1``."""
    xs = np.empty((stop - start, *shape), dtype=np.uint8)
    ys = np.empty(stop - start, dtype=np.int64)
    for i, index in enumerate(range(start, stop)):
        xs[i], ys[i] = make_sample(seed, index, shape, classes)
    return xs, ys


def _rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, index])


_PATTERNS: dict[tuple, np.ndarray] = {}


def _pattern(shape: tuple[int, ...], label: int, classes: int) -> np.ndarray:
    """Stripes whose angle and frequency depend on the class; values 0..160: pattern + noise (0..63) fits uint8."""
    key = (tuple(shape), label, classes)
    if key not in _PATTERNS:
        h = shape[-2] if len(shape) >= 2 else 1
        w = shape[-1]
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
        angle = np.pi * label / max(classes, 1)
        freq = 2 * np.pi * (1 + label % 4) / max(w, 2)
        wave = np.sin(freq * (xx * np.cos(angle) + yy * np.sin(angle)))
        img = ((wave + 1) * 80).astype(np.uint8)
        _PATTERNS[key] = np.broadcast_to(img, shape).copy()
    return _PATTERNS[key]
