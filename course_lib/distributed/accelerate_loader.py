"""``RankLoader``: the course's rank-split loaders inside Hugging Face Accelerate, every sample once per epoch.

Accelerate's ``prepare()`` re-splits a DataLoader across processes (see ``loaders/resharding.py``). A
``RankLoader`` is not a DataLoader, so ``accelerator.prepare(model, optimizer, loader)`` hands it back
untouched: each rank keeps reading only its own part of the epoch (the course's plan: locality, no read
amplification), and the loader moves batches to ``device`` itself. It has ``state_dict``/``load_state_dict``
holding every rank's position, so ``accelerator.register_for_checkpointing(loader)`` and
``save_state``/``load_state`` resume mid-epoch (Accelerate writes custom state from process 0 only: the state
is gathered from every rank when saved, and each rank takes its own entry when loaded).

    accelerator = Accelerator()
    dataset = MmapShardDataset(data_dir, batch_size=256, seed=0)      # rank/world_size from torch.distributed
    loader = RankLoader(dataset, num_workers=2, device=accelerator.device)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)   # the loader comes back as is
    accelerator.register_for_checkpointing(loader)
    for epoch in range(loader.epoch, epochs):
        loader.set_epoch(epoch)
        for batch in loader: ...
    accelerator.end_training()                                          # destroy the process group before exit
"""
from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from ..loaders.runtime import distributed_rank_and_world


class RankLoader:
    """A DataLoader over a dataset that already splits by rank, kept away from a framework's re-sharding.

    ``batch_size`` and ``dataloader_options`` go to the inner ``torch.utils.data.DataLoader`` (``batch_size=None``
    for a dataset that builds its own batches). ``device``: where each batch goes (``accelerator.device``;
    None leaves it where it is). ``samples_seen`` counts the samples this rank has handed to the training loop
    in the current epoch; :meth:`state_dict` saves it (with the dataset's own state where it has one).
    """

    def __init__(self, dataset: Any, *, batch_size: int | None = None, num_workers: int = 0,
                 device: torch.device | str | None = None, **dataloader_options: Any):
        self.dataset = dataset
        self.loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, **dataloader_options)
        self.device = None if device is None else torch.device(device)
        self.epoch = int(getattr(dataset, "epoch", 0))
        self.samples_seen = 0
        self._resume: int | None = None         # samples to continue after, loaded by load_state_dict

    def set_epoch(self, epoch: int) -> None:
        """Start ``epoch`` from its beginning; the epoch a state was loaded into continues where it stopped."""
        if self._resume is not None and int(epoch) == self.epoch:
            return
        self._resume = None
        self.epoch, self.samples_seen = int(epoch), 0
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(self.epoch)

    def __iter__(self) -> Iterator[Any]:
        skip = 0
        if self._resume is not None and not counts_samples(self.dataset):
            skip = self._resume                 # no state of its own: read the consumed samples again, unused
        self._resume = None
        for batch in self.loader:
            count = batch_samples(batch)
            if skip > 0:
                skip -= count
                continue
            self.samples_seen += count
            yield batch if self.device is None else to_device(batch, self.device)

    def state_dict(self) -> dict[str, Any]:
        """Every rank's position (gathered: call it on every rank, as ``accelerator.save_state`` does)."""
        mine = {"epoch": self.epoch, "samples_seen": self.samples_seen}
        if counts_samples(self.dataset):
            mine["dataset"] = self.dataset.state_dict(samples_seen=self.samples_seen)
        world_size = distributed_rank_and_world()[1]
        ranks = [mine]
        if world_size > 1:
            ranks = [None] * world_size
            dist.all_gather_object(ranks, mine)
        return {"world_size": world_size, "ranks": ranks}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue this rank's epoch where :meth:`state_dict` left it (same world size, data and settings)."""
        rank, world_size = distributed_rank_and_world()
        if state.get("world_size") != world_size:
            raise ValueError(f"the saved loader state is of {state.get('world_size')} processes, this run has "
                             f"{world_size}: resume with the same number of processes")
        mine = state["ranks"][rank]
        if "dataset" in mine:
            self.dataset.load_state_dict(mine["dataset"])
        elif hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(int(mine["epoch"]))
        self.epoch, self.samples_seen, self._resume = int(mine["epoch"]), int(mine["samples_seen"]), \
            int(mine["samples_seen"])


def counts_samples(dataset: Any) -> bool:
    """``dataset`` saves and loads its position as samples consumed (``state_dict(samples_seen=n)``, as
    ``MmapShardDataset``); the WebDataset pipelines' shard-level state is not that, so they resume by skipping."""
    state_dict = getattr(dataset, "state_dict", None)
    if state_dict is None or not hasattr(dataset, "load_state_dict"):
        return False
    return "samples_seen" in inspect.signature(state_dict).parameters


def batch_samples(batch: Any) -> int:
    """Samples in a batch: the length of its first tensor (a dict's ``idx`` first), 1 for a single sample."""
    if isinstance(batch, dict):
        values = [batch["idx"]] if "idx" in batch else list(batch.values())
    elif isinstance(batch, (list, tuple)):
        values = list(batch)
    else:
        values = [batch]
    for value in values:
        if torch.is_tensor(value) and value.dim() > 0:
            return int(value.shape[0])
    return 1


def to_device(batch: Any, device: torch.device) -> Any:
    """``batch`` with every tensor in it (dicts, lists and tuples followed) moved to ``device``."""
    if torch.is_tensor(batch):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch
