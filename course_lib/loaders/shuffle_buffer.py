"""A sample shuffle buffer, as WebDataset pipelines use it: hold up to ``size`` samples, let out a random one.

Chapter 03, section 3: the learner writes the plain version (``course_lib/solutions/ch03_webdataset.py``);
this one adds the growing start (two in, one out until full) and uniforms drawn 1,024 at a time.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

_END = object()


def shuffled(samples: Iterable[Any], size: int, initial: int, rng: np.random.Generator) -> Iterator[Any]:
    """``samples`` in a buffer-shuffled order: the first comes out once ``initial`` are held; the buffer then
    grows (two in, one out) until it holds ``size``; at the end it empties in random order."""
    samples = iter(samples)
    initial = min(initial, size)
    buf: list[Any] = []
    uniform = _uniforms(rng)
    for sample in samples:
        buf.append(sample)
        if len(buf) < size:
            extra = next(samples, _END)
            if extra is not _END:
                buf.append(extra)
        if len(buf) >= initial:
            yield _pop(buf, int(next(uniform) * len(buf)))
    while buf:
        yield _pop(buf, int(next(uniform) * len(buf)))


def _uniforms(rng: np.random.Generator, chunk: int = 1024) -> Iterator[float]:
    """Uniform numbers in [0, 1), drawn ``chunk`` at a time (one numpy call per sample would cost more)."""
    while True:
        yield from rng.random(chunk).tolist()


def _pop(buf: list[Any], k: int) -> Any:
    buf[k], buf[-1] = buf[-1], buf[k]
    return buf.pop()


class ShuffleBuffer:
    """Pipeline stage running :func:`shuffled` with the generator ``rng()`` returns when iteration starts
    (inside the worker that iterates). A plain object, so the pipeline pickles under any start method."""

    def __init__(self, size: int, initial: int, rng: Callable[[], np.random.Generator]):
        self.size, self.initial, self.rng = size, initial, rng

    def __call__(self, samples: Iterable[Any]) -> Iterator[Any]:
        return shuffled(samples, self.size, self.initial, self.rng())
