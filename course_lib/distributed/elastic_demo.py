"""Resume a DDP job on another number of ranks, the way a preempted job restarts on what is free.

    from course_lib.distributed.elastic_demo import elastic_resume
    demo = elastic_resume("build/data", "build/elastic", before=2, after=(1, 3), steps=3)
    demo.exactly_once(3), demo.same_order(3)

Launch 1 (``before`` ranks) trains a tiny DDP model on ``MmapShardDataset`` batches over one epoch and, after
``steps`` steps, rank 0 saves a checkpoint with ``torch.save``: model, optimizer and the loader's
``state_dict(samples_seen=...)`` (all ranks have taken the same number of batches: DDP lockstep). It trains on to
the end of the epoch: that is the uninterrupted run. Then, for each world size in ``after``, a launch loads the
checkpoint on every rank and trains to the end of the epoch. Every rank writes the ids of its batches; the
ranks' batches in rank order are each job's global sequence (README: Elastic determinism).

Each rank runs ``python -m course_lib.distributed.elastic_demo`` under ``launch.torchrun`` (CPU, gloo; DDP's
``Join`` covers the last round, where some ranks have one batch fewer).
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path
from typing import Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.distributed.algorithms.join import Join
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader

from ..loaders.mmap_shards import MmapShardDataset
from .ddp_train import tiny_model
from .launch import LaunchResult, torchrun


def in_rank_order(per_rank: Sequence[Sequence[Sequence[int]]]) -> list[int]:
    """Batch 0 of rank 0, of rank 1, ..., then batch 1 of each: a job's global sequence of sample ids."""
    return [i for round_ in zip_longest(*per_rank) for batch in round_ if batch is not None for i in batch]


@dataclass
class ElasticResume:
    """What the launches delivered: the uninterrupted run's order, what came before the checkpoint, and each
    resumed job's order (by world size)."""

    before: int
    steps: int
    uninterrupted: list[int]
    before_checkpoint: list[int]
    resumed: dict[int, list[int]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def exactly_once(self, world_size: int) -> bool:
        """The samples before the checkpoint and those of the job resumed on ``world_size`` ranks: the whole
        epoch, none twice."""
        both = self.before_checkpoint + self.resumed[world_size]
        return sorted(both) == sorted(self.uninterrupted) and len(set(both)) == len(both)

    def same_order(self, world_size: int) -> bool:
        """Whether the resumed job continued the uninterrupted run's global order exactly."""
        return self.before_checkpoint + self.resumed[world_size] == self.uninterrupted

    def rows(self) -> list[dict[str, object]]:
        """One row per resumed job, for a table."""
        return [{"resumed on": f"{w} rank(s)", "samples before checkpoint": len(self.before_checkpoint),
                 "samples after": len(ids), "exactly once": self.exactly_once(w), "same order": self.same_order(w),
                 "launch s": round(self.seconds.get(f"resume-{w}", float("nan")), 1)}
                for w, ids in self.resumed.items()]


def elastic_resume(data_dir: str | Path, out_dir: str | Path, *, before: int = 2, after: Sequence[int] = (1, 3),
                   steps: int = 3, batch_size: int = 8, num_workers: int = 0, seed: int = 0, epoch: int = 0,
                   timeout_s: float = 120.0) -> ElasticResume:
    """Train on ``before`` ranks, checkpoint after ``steps`` steps, resume on each world size in ``after``."""
    out_dir = Path(out_dir)
    checkpoint = out_dir / "checkpoint.pt"
    options = dict(batch_size=batch_size, num_workers=num_workers, seed=seed, epoch=epoch,
                   checkpoint=checkpoint, timeout_s=timeout_s)
    first = _launch(data_dir, out_dir / "train.json", before, save_after=steps, **options)
    batches = _rank_batches(first, before)
    demo = ElasticResume(before, steps, in_rank_order(batches), in_rank_order([b[:steps] for b in batches]),
                         seconds={"train": first.seconds})
    for world in after:
        launch = _launch(data_dir, out_dir / f"resume-{world}.json", world, resume=1, **options)
        demo.resumed[world] = in_rank_order(_rank_batches(launch, world))
        demo.seconds[f"resume-{world}"] = launch.seconds
    return demo


def _launch(data_dir, out: Path, nproc: int, *, timeout_s: float, **options) -> LaunchResult:
    result = torchrun(data_dir, out, [], nproc=nproc, timeout_s=timeout_s, module=__name__, **options)
    if not result.ok:
        raise RuntimeError(f"{out.stem} on {nproc} rank(s): {result.summary()}\n{result.tail()}")
    return result


def _rank_batches(launch: LaunchResult, world: int) -> list[list[list[int]]]:
    missing = [r for r in range(world) if r not in launch.ranks]
    if missing:
        raise RuntimeError(f"ranks {missing} wrote no ids: {launch.summary()}")
    return [launch.ranks[r]["batches"] for r in range(world)]


# -- one rank ------------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The rank script's command line (``elastic_resume`` builds it)."""
    p = argparse.ArgumentParser(prog="python -m course_lib.distributed.elastic_demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--out", type=Path, required=True, help="rank 0 writes it when every rank is done")
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--save-after", type=int, default=0, help="rank 0 saves the checkpoint after this many steps")
    p.add_argument("--resume", type=int, default=0, help="1: load the checkpoint first")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epoch", type=int, default=0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """One rank: (resume,) train to the end of the epoch, (checkpoint,) write the ids of its batches."""
    args = parse_args(argv)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    ds = MmapShardDataset(args.data_dir, batch_size=args.batch_size, seed=args.seed)   # rank, world: from dist
    ds.set_epoch(args.epoch)
    classes = json.loads((Path(args.data_dir) / "manifest.json").read_text())["classes"]
    torch.manual_seed(args.seed)
    model = DDP(tiny_model(ds.index.sample_shape, classes))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    if args.resume:                                   # every rank loads what rank 0 saved
        saved = torch.load(args.checkpoint, weights_only=True)
        model.module.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        ds.load_state_dict(saved["loader"])           # saved on another world size: fine
    batches, seen = [], 0
    with Join([model]):                               # the last round: some ranks have one batch fewer
        for step, batch in enumerate(DataLoader(ds, batch_size=None, num_workers=args.num_workers), 1):
            loss = F.cross_entropy(model(batch["x"].float().div_(255)), batch["y"].long())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            batches.append(batch["idx"].tolist())
            seen += len(batch["idx"])
            if rank == 0 and step == args.save_after:
                torch.save({"model": model.module.state_dict(), "optimizer": optimizer.state_dict(),
                            "loader": ds.state_dict(samples_seen=seen), "step": step}, args.checkpoint)
    ranks_dir = args.out.parent / f"{args.out.stem}.ranks"
    ranks_dir.mkdir(parents=True, exist_ok=True)
    (ranks_dir / f"rank{rank}.json").write_text(json.dumps({"rank": rank, "world_size": world, "batches": batches}))
    dist.barrier()
    if rank == 0:
        args.out.write_text(json.dumps({"complete": True, "world_size": world, "resumed": bool(args.resume)}))
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
