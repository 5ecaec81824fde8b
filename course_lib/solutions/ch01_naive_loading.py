"""Chapter 01's exercise solutions (open this file when you are stuck; `make course` and CI run them)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..course.exercises import solution


@solution("01_naive_loading")
def read_file_ids(files_dir) -> list[int]:
    """The ``idx`` of every one-sample ``.npy`` file, in file-name order: one open per sample."""
    return [int(np.load(path, allow_pickle=False)[0]["idx"]) for path in sorted(Path(files_dir).glob("sample_*.npy"))]


@solution("01_naive_loading:memory")
def largest_dataset_gb(slope: float, available_gb: float) -> float:
    """GB of data that fit in ``available_gb`` of memory at ``max(slope, 1)`` bytes of RAM per byte of data."""
    return available_gb / max(slope, 1.0)
