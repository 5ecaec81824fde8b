"""Who is running this code: distributed rank and world size, DataLoader worker identity, checked integers.

Every loader asks these questions the same way: an explicit ``rank``/``world_size`` wins, else
``torch.distributed`` when it is initialised, else a single process; the worker comes from
``torch.utils.data.get_worker_info()`` (``(0, 1)`` in the main process).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import get_worker_info


def current_worker() -> tuple[int, int]:
    """``(worker id, num_workers)`` inside a DataLoader worker, ``(0, 1)`` in the main process."""
    info = get_worker_info()
    return (info.id, info.num_workers) if info else (0, 1)


def distributed_rank_and_world() -> tuple[int, int]:
    """torch.distributed's ``(rank, world_size)`` when it is initialised, else ``(0, 1)``."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def current_rank() -> int:
    """This process's torch.distributed rank, or 0 when it is not initialised."""
    return distributed_rank_and_world()[0]


def check_positive(name: str, value: Any) -> int:
    """``value`` when it is an integer >= 1; otherwise a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_non_negative(name: str, value: Any) -> int:
    """``value`` when it is an integer >= 0; otherwise a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def check_split(rank: int | None, world_size: int | None) -> None:
    """Both or neither of ``rank``/``world_size``; when given, ``0 <= rank < world_size``."""
    if (rank is None) != (world_size is None):
        raise ValueError("give both rank and world_size, or neither")
    if rank is not None:
        check_positive("world_size", world_size)
        if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or not 0 <= rank < world_size:
            raise ValueError(f"rank must be an integer in [0, world_size={world_size}), got {rank!r}")


def rank_and_world(rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """Explicit ``rank``/``world_size`` (checked), else torch.distributed's when initialised, else ``(0, 1)``."""
    check_split(rank, world_size)
    if rank is None:
        return distributed_rank_and_world()
    return int(rank), int(world_size)
