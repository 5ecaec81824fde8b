"""What an epoch boundary costs: time to the first item of each epoch (worker start-up) and the epoch's order.

Chapter 04, section 5 (persistent workers: where does the epoch live?).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass

from .fingerprints import order_fingerprint
from .shuffle_metrics import arrival_order


@dataclass(frozen=True)
class EpochTiming:
    """One timed epoch: samples, wall time, time until its first item arrived, and its order's fingerprint."""

    epoch: int
    samples: int
    seconds: float
    first_item_seconds: float
    fingerprint: str

    def as_dict(self) -> dict:
        """JSON-ready fields."""
        return asdict(self)


def time_epochs(loader: Iterable, epochs: Sequence[int], set_epoch: Callable[[int], None] | None = None
                ) -> list[EpochTiming]:
    """Iterate ``loader`` once per epoch (``set_epoch(e)`` first, when given), timing each with perf_counter.

    ``first_item_seconds`` runs from asking for the iterator to the first item: for a DataLoader with
    workers it includes starting (or waking) them, which is the hard epoch boundary's cost.
    """
    out = []
    for e in epochs:
        if set_epoch is not None:
            set_epoch(e)
        first: list[float] = []
        start = time.perf_counter()
        order = arrival_order(_noting_first(loader, first, start))
        seconds = time.perf_counter() - start
        out.append(EpochTiming(epoch=e, samples=len(order), seconds=seconds,
                               first_item_seconds=first[0] if first else seconds,
                               fingerprint=order_fingerprint(order)))
    return out


def _noting_first(items: Iterable, first: list[float], start: float) -> Iterator:
    """``items``, appending to ``first`` the seconds from ``start`` to the first one."""
    for item in items:
        if not first:
            first.append(time.perf_counter() - start)
        yield item
