"""Refuse to be split twice: a dataset that already splits by rank, re-sharded by a training framework.

Hugging Face Accelerate's ``prepare(loader)`` (and so ``transformers.Trainer``) treats every DataLoader as a
global view and splits it again across processes: it either reads on process 0 and dispatches slices of each
batch (``DataLoaderDispatcher``, the default for an IterableDataset), or wraps the dataset in
``IterableDatasetShard`` (``dispatch_batches=False``). Over a dataset that already gave each rank its own part,
both lose ``1 - 1/world_size`` of every epoch without an error. The course's loaders call
:func:`refuse_resharding` when an epoch is set and when an iteration starts; it raises :class:`ReshardedError`
naming the wrapper and the fix. Recognised from the call stack (class names in accelerate's or transformers'
modules), so nothing here imports accelerate. See README, "Training frameworks".
"""
from __future__ import annotations

import os
import sys
from types import FrameType
from typing import Any

from .runtime import distributed_rank_and_world

# (module prefix, class) of the wrappers that split a DataLoader's stream across processes a second time
RESHARDERS = {("accelerate.", "DataLoaderDispatcher"), ("accelerate.", "IterableDatasetShard"),
              ("transformers.", "IterableDatasetShard")}
ALLOW_ATTRIBUTE = "allow_resharding"   # a dataset carrying this attribute set to True is not checked


class ReshardedError(RuntimeError):
    """A dataset that splits by rank was split again by a framework's DataLoader wrapper: samples would be lost."""


def resharder(frame: FrameType | None = None) -> str | None:
    """The re-sharding wrapper on the call stack (``"accelerate.data_loader.DataLoaderDispatcher"``), else None.

    DataLoader workers started with ``fork`` inherit the stack of the process that started them, so a worker
    started while a wrapper iterated finds it too; ``IterableDatasetShard`` iterates inside every worker.
    """
    frame = frame if frame is not None else sys._getframe(1)
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        owner = frame.f_code.co_qualname.split(".")[0]
        if any(module.startswith(prefix) and owner == cls for prefix, cls in RESHARDERS):
            return f"{module}.{owner}"
        frame = frame.f_back
    return None


def dataset_world_size(dataset: Any) -> int:
    """How many ranks ``dataset`` splits among: its own ``world_size``, else torchrun's or torch.distributed's.

    A resampled WebDataset stream (``resampled=True``) does not split by rank at all: 1."""
    if getattr(dataset, "resampled", False):
        return 1
    own = getattr(dataset, "world_size", None)
    if own is not None:
        return int(own)
    if "WORLD_SIZE" in os.environ:          # what webdataset's split_by_node reads first, in workers too
        return int(os.environ["WORLD_SIZE"])
    return distributed_rank_and_world()[1]


def allow_resharding(dataset: Any) -> Any:
    """Switch the check off for ``dataset`` (returned): only to measure what a second split loses."""
    setattr(dataset, ALLOW_ATTRIBUTE, True)
    return dataset


def refuse_resharding(dataset: Any) -> None:
    """Raise :class:`ReshardedError` when ``dataset`` splits by rank and a framework wrapper splits it again.

    Called at ``set_epoch`` (Accelerate calls it on every process as each epoch's iteration starts, before
    any DataLoader worker exists, so workers of any start method never begin) and at the first step of
    each iteration (in the main process, or in a worker that iterates the wrapper or was forked under it).
    """
    if getattr(dataset, ALLOW_ATTRIBUTE, False):
        return
    wrapper = resharder(sys._getframe(1))
    world_size = dataset_world_size(dataset)
    if wrapper is None or world_size < 2:
        return
    raise ReshardedError(
        f"{type(dataset).__name__} already splits its samples across {world_size} ranks, and {wrapper} splits "
        f"them again: each epoch would deliver about 1/{world_size} of the samples, silently. Do not pass this "
        "DataLoader to accelerator.prepare(); wrap the dataset instead: loader = RankLoader(dataset, "
        "batch_size=..., num_workers=..., device=accelerator.device) from course_lib.distributed.accelerate_loader "
        "(prepare() leaves it alone; accelerator.register_for_checkpointing(loader) saves every rank's position). "
        "Or build the dataset with rank=0, world_size=1 to let the framework split one global stream (process 0 "
        "then reads every sample, or every process reads all of them).")
