"""Chapter 06b's exercise solutions (open this file when you are stuck; `make course` and CI run them)."""
from __future__ import annotations

from ..course.exercises import solution


def delivered(k: int, world_size: int, batch_size: int, total: int) -> range:
    """The positions of the epoch order that ``world_size`` ranks delivered after ``k`` batches each (lockstep).

    Rank ``r`` takes batch ``r`` of every round of ``world_size`` batches, so ``k`` batches on every rank are the
    first ``k`` rounds: a prefix of the epoch order (all of it once the last, short round is in)."""
    return range(min(k * world_size * batch_size, total))


@solution("06b_delivered")
def delivered_solution():
    """Chapter 06b: the function above."""
    return delivered


def urllib3_wait(retry: int, policy, retry_after: float | None = None) -> float:
    """Seconds urllib3 waits before retry number ``retry`` (1, 2, ...) of a 503, with ``policy``'s settings.

    A ``Retry-After`` header wins (capped at ``retry_after_max``); otherwise the first retry goes at once and the
    ``n``-th waits ``backoff * 2 ** (n - 1)``, capped at ``backoff_max``."""
    if retry_after:
        return min(float(retry_after), policy.retry_after_max)
    if retry <= 1:
        return 0.0
    return min(policy.backoff * 2 ** (retry - 1), policy.backoff_max)


@solution("06b_backoff")
def backoff_solution():
    """Chapter 06b: the function above."""
    return urllib3_wait
