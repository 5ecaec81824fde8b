"""What every torchrun run of chapter 06 shares: the rank's context, a tiny model, the training loop (with DDP
``Join`` when asked) and the gather of what every rank saw. ``ddp_stream`` and ``elastic_demo`` build on it."""
from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.distributed.algorithms.join import Join
from torch.nn.parallel import DistributedDataParallel as DDP

from ..measure.throughput import measure_throughput
from .rank_checks import run_report

STUCK_EXIT = 3   # exit code of a rank whose collective timed out


class StuckInCollective(RuntimeError):
    """A collective (the gradient all-reduce) timed out: another rank stopped joining."""


@dataclass
class Context:
    """What every run of one launch shares: arguments, the model, this rank's place."""

    args: argparse.Namespace
    rank: int
    world_size: int
    model: DDP
    optimizer: torch.optim.Optimizer
    status: "RankStatus"
    urls: list[str] = field(default_factory=list)
    block_urls: list[str] = field(default_factory=list)
    scratch: Path = Path(".")       # this rank's temporary folder (shard subsets)

    def step(self, batch: dict[str, torch.Tensor]) -> None:
        """One DDP training step; a timed-out all-reduce becomes :class:`StuckInCollective`."""
        x = batch["x"].float().div_(255)
        loss = F.cross_entropy(self.model(x), batch["y"].long())
        self.optimizer.zero_grad(set_to_none=True)
        try:
            loss.backward()
        except RuntimeError as e:
            if _is_collective_timeout(e):
                raise StuckInCollective(str(e).splitlines()[0]) from e
            raise
        self.optimizer.step()


class RankStatus:
    """``<dir>/rank<R>.json``: where this rank is, rewritten atomically at each change (read by the launcher)."""

    def __init__(self, directory: Path, rank: int):
        self.path = directory / f"rank{rank}.json"
        directory.mkdir(parents=True, exist_ok=True)
        self.rank = rank

    def write(self, **state: Any) -> None:
        """Record ``state`` (with this rank and the time)."""
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"rank": self.rank, "time": time.time(), **state}))
        tmp.replace(self.path)


def tiny_model(sample_shape: tuple[int, ...], classes: int) -> torch.nn.Module:
    """Pool each image to 4x4, then one linear layer: a model whose step costs far less than loading."""
    channels = sample_shape[0]
    return torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten(),
                               torch.nn.Linear(channels * 16, classes))


def train(ctx: Context, label: str, loader: Iterable[dict[str, torch.Tensor]], *, join: bool = False
          ) -> dict[str, Any]:
    """Train on every batch of ``loader``; return this rank's ids (in order), batch count and throughput."""
    iterator = iter(loader)
    first = next(iterator, None)       # workers started and one batch ready on every rank before stepping:
    dist.barrier()                     # start-up time never counts against the short collective timeout
    stream = iterator if first is None else itertools.chain([first], iterator)
    ids: list[np.ndarray] = []

    def steps():
        for batch in stream:
            ctx.status.write(state="training", run=label, batches=len(ids))
            ctx.step(batch)
            ids.append(batch["idx"].numpy().astype(np.int64))
            yield batch

    started = time.perf_counter()
    with Join([ctx.model]) if join else contextlib.nullcontext():
        try:
            throughput = measure_throughput(steps(), warmup=0, progress=False,
                                            label=f"ddp rank {ctx.rank}: {label}").as_dict()
        except ValueError:             # this rank had no batch at all
            throughput = None
    ctx.status.write(state="finished run", run=label, batches=len(ids))
    return {"ids": np.concatenate(ids) if ids else np.empty(0, np.int64), "batches": len(ids),
            "seconds": time.perf_counter() - started, "throughput": throughput}


def gather_report(ctx: Context, name: str, epoch: int, mine: dict[str, Any], total: int,
                  **extra: Any) -> dict[str, Any] | None:
    """Gather every rank's ids on every rank; rank 0 returns the report (others None)."""
    ctx.status.write(state="gathering", run=f"{name}@{epoch}", batches=mine.get("batches", 0))
    everyone: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(everyone, mine)
    if ctx.rank != 0:
        return None
    seconds = [m["seconds"] for m in everyone]
    samples = sum(len(m["ids"]) for m in everyone)
    return run_report(name, epoch, [m["ids"] for m in everyone], [m["batches"] for m in everyone], total,
                      seconds=seconds, throughput=[m["throughput"] for m in everyone],
                      rank_samples_per_s=[len(m["ids"]) / s if s else 0.0 for m, s in zip(everyone, seconds)],
                      total_samples_per_s=samples / max(seconds) if max(seconds) > 0 else 0.0, **extra)


# -- the runs -------------------------------------------------------------------------------------------------

def _is_collective_timeout(e: BaseException) -> bool:
    text = str(e).lower()
    return any(s in text for s in ("timed out", "timeout", "connection closed by peer", "connection reset"))
