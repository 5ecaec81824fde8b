"""What the chapters say about third-party libraries, asserted against the installed versions.

Each test names the chapter that makes the statement: an upgrade that changes the behaviour fails here and says
which sentence to revisit. Sections are per chapter (each chapter's owner adds below its own heading).
"""
from __future__ import annotations

import importlib.metadata

import pytest  # noqa: F401  (used by the chapters' sections)


def installed(package: str) -> str:
    """The installed version of ``package`` (the statement below holds for it)."""
    return importlib.metadata.version(package)


# --- chapter 02: memory-mapped shard streaming ---------------------------------------------------------------

class _NumpyDraws:
    """An IterableDataset-like source: each worker (or the main process) yields 3 draws of numpy's global generator."""

    def __iter__(self):
        import numpy as np
        from torch.utils.data import get_worker_info

        info = get_worker_info()
        return iter([(info.id if info else -1, int(np.random.randint(1 << 30))) for _ in range(3)])


def _draws(num_workers: int, torch_seed: int, numpy_seed: int | None = None) -> list[tuple[int, int]]:
    import numpy as np
    import torch
    from torch.utils.data import DataLoader, IterableDataset

    dataset = type("Draws", (_NumpyDraws, IterableDataset), {})()
    torch.manual_seed(torch_seed)
    if numpy_seed is not None:
        np.random.seed(numpy_seed)
    return [(int(w), int(v)) for w, v in DataLoader(dataset, batch_size=None, num_workers=num_workers)]


def test_ch02_torch_reseeds_numpy_in_each_worker_from_its_own_seed_but_not_in_the_main_process():
    """Chapter 02, section 3: "In the main process (`num_workers=0`) nothing reseeds it [numpy's global generator]
    ... In DataLoader workers torch (since 1.9) reseeds it per worker, from a base seed drawn from torch's own
    generator for every new iterator: the order changes every run unless you call `torch.manual_seed`." """
    import inspect

    from torch.utils.data._utils import worker

    assert "np.random.seed(" in inspect.getsource(worker._worker_loop), installed("torch")
    one, again, other = _draws(2, torch_seed=0), _draws(2, torch_seed=0), _draws(2, torch_seed=1)
    by_worker = {w: [v for x, v in one if x == w] for w in (0, 1)}
    assert by_worker[0] != by_worker[1]          # each worker reseeded differently
    assert one == again and one != other         # from torch's seed: reproducible only with torch.manual_seed
    main_a, main_b = _draws(0, torch_seed=0, numpy_seed=1), _draws(0, torch_seed=0, numpy_seed=2)
    assert main_a != main_b                      # same torch seed, numpy's state decides: not reseeded


# --- chapter 03: WebDataset tar shards -----------------------------------------------------------------------


# --- chapter 04: reproducible epochs and resumption ---------------------------------------------------------


# --- chapter 05: the training regime side by side ------------------------------------------------------------


# --- chapter 06: beyond one machine (torchrun, object storage, training frameworks) --------------------------


# --- chapter 07: your own data -------------------------------------------------------------------------------
