"""Copy chosen rows of a byte matrix into a batch: the one copy every fast loader path makes."""
from __future__ import annotations

import numpy as np
import torch

RUNS_WORTH_SLICING = 4  # below this mean run length, one np.take beats a Python loop of slice copies


def gather_rows(rows: torch.Tensor | np.ndarray, picked: np.ndarray,
                out: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """``out[:] = rows[picked]`` for ascending ``picked``: one slice copy per run of consecutive rows when runs
    average ``RUNS_WORTH_SLICING`` rows or more, else one ``np.take``.

    Single-threaded on purpose: torch's intra-op threads copied 1.5x faster on an idle 2-core machine but
    3-20x slower when the other core was busy (every copy waits for both threads), and a training loop keeps
    the cores busy; DataLoader workers run one thread each anyway."""
    src = rows.numpy() if isinstance(rows, torch.Tensor) else rows
    dst = out.numpy() if isinstance(out, torch.Tensor) else out
    first, last = int(picked[0]), int(picked[-1])
    if first < 0 or last >= len(src):
        raise IndexError(f"rows {first}..{last} outside 0..{len(src) - 1}")
    if last - first == len(picked) - 1:
        np.copyto(dst, src[first:last + 1])
        return out
    starts = np.flatnonzero(np.diff(picked) != 1) + 1
    if len(starts) + 1 > len(picked) // RUNS_WORTH_SLICING:
        np.take(src, picked, axis=0, out=dst)
        return out
    bounds = [0, *starts.tolist(), len(picked)]            # runs of consecutive rows: one slice copy each
    for a, b in zip(bounds, bounds[1:]):
        row = int(picked[a])
        np.copyto(dst[a:b], src[row:row + b - a])
    return out
