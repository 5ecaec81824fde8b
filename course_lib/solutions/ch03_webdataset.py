"""Chapter 03's exercise solutions (open this file when you are stuck; `make course` and CI run them)."""
from __future__ import annotations

from ..course.exercises import solution


@solution("03_webdataset")
def split_by_rank(subset: list[str]):
    """Each of two ranks' sample ids: one pipeline per rank, shards split by ``rank``/``world_size``."""
    from ..loaders.webdataset_pipeline import make_webdataset
    from ..measure.shuffle_metrics import arrival_order

    return tuple(arrival_order(make_webdataset(subset, rank=r, world_size=2)) for r in range(2))
