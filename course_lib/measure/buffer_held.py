"""How many samples a shuffle stage holds at once, counted (not estimated from its arguments)."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np


def held_while_shuffling(shuffle: Callable[..., Iterator[Any]], n: int, size: int, seed: int = 0
                         ) -> tuple[np.ndarray, int]:
    """Run ``shuffle(range(n), size, rng)``; its output order and the most samples it held at once.

    Held = taken from the source - handed out, read each time a sample comes out (that sample included).
    """
    taken = 0

    def source() -> Iterable[int]:
        nonlocal taken
        for i in range(n):
            taken += 1
            yield i

    order, most = [], 0
    for sample in shuffle(source(), size, np.random.default_rng(seed)):
        most = max(most, taken - len(order))
        order.append(sample)
    return np.asarray(order, dtype=np.int64), most
