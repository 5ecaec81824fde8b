"""Chapter 05's exercise solutions (open this file when you are stuck; `make course` and CI run them)."""
from __future__ import annotations

from ..course.exercises import solution


@solution("05_training_regime")
def pick_num_workers(rows, loader="decode at crop size + batch transform", within=0.9):
    """Chapter 05: the smallest worker count whose measured rate is within 10% of the best one."""
    mine = [r for r in rows if r["loader"] == loader and r["regime"] == "JPEG"]
    top = max(r["samples_per_s"] for r in mine)
    return min(r["num_workers"] for r in mine if r["samples_per_s"] >= within * top)

