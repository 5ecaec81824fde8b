"""Chapter 06c's exercise solution (open this file when you are stuck; `make course` and CI run it)."""
from __future__ import annotations

from ..course.exercises import solution


@solution("06c_rank_loader")
def rank_loader_factory(*, num_workers, device):
    """Chapter 06c: a function dataset -> loader that Accelerate's prepare() leaves alone and that resumes."""
    from ..distributed.accelerate_loader import RankLoader

    def make_loader(dataset):
        return RankLoader(dataset, num_workers=num_workers, device=device)
    return make_loader
