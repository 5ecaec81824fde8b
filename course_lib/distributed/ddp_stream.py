"""Stream shards into a DistributedDataParallel model, one process per rank, and check what every rank saw.

    torchrun --standalone --nproc_per_node=2 -m course_lib.distributed.ddp_stream \\
        --data-dir DATA_DIR --out result.json --runs mmap@0 mmap@1 mmap-drop_last@0 wds@0

CPU and gloo on 127.0.0.1. For each run (``name@epoch``) every rank builds its loader (rank and world size come
from torch.distributed), trains a tiny DDP model on its batches with DataLoader workers, and the sample ids each
rank trained on are gathered; rank 0 writes one JSON result (per-rank counts, fingerprints, coverage,
samples/s). Each rank also writes its state to ``<out stem>.ranks/rank<R>.json`` as it goes, so a run that
times out still says where every rank was.

Runs:
  mmap                 MmapShardDataset (batches built in the dataset), split by rank, then by worker; over the
                       first --npy-shards .npy shards
  mmap-drop_last       the same with drop_last=True: every rank the same number of samples
  wds                  make_webdataset over --source: shards split by node, then by worker; batched in workers
  wds-stock            webdataset's own WebDataset(urls): the default node splitter refuses to run on 2 ranks;
                       with nodesplitter=split_by_node every rank reads its shards (no training)
  uneven               the first --uneven-shards block tar shards (wdsb: make_block_webdataset, the fast path) split
                       by node: ranks get different batch counts, and the rank with more waits in the gradient
                       all-reduce until --timeout, then exits with code 3 (--block-source: other URLs)
  uneven-drop_last     the same samples from the .npy shards, MmapShardDataset(drop_last=True)
  uneven-with_epoch    the uneven stream cut to total // (world_size x batch_size) batches per rank (with_epoch)
  uneven-equal_shards  only as many shards as divide evenly among the ranks
  uneven-join          the uneven stream inside DDP's Join context manager
``s3://`` sources are read through the endpoint in the standard ``AWS_*`` variables (see ``s3_shards``).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist
import webdataset as wds
from torch.distributed.distributed_c10d import _set_pg_timeout  # per-run timeout of one group (gloo)
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader

from ..loaders.mmap_shards import MmapShardDataset
from ..loaders.shard_index import index_shards, manifest_counts
from ..loaders.webdataset_pipeline import make_block_webdataset, make_webdataset, shard_urls
from .ddp_train import STUCK_EXIT, Context, RankStatus, StuckInCollective, gather_report, tiny_model, train

RUNS = ("mmap", "mmap-drop_last", "wds", "wds-stock", "uneven", "uneven-drop_last", "uneven-with_epoch",
        "uneven-equal_shards", "uneven-join")




def npy_subset(ctx: Context, shards: int) -> Path:
    """A folder of links to the first ``shards`` .npy shards (all of them for 0): a smaller dataset, same files."""
    paths = index_shards(ctx.args.data_dir).paths
    if shards <= 0 or shards >= len(paths):
        return Path(ctx.args.data_dir)
    folder = ctx.scratch / f"npy-first-{shards}"
    if not folder.exists():
        folder.mkdir()
        for path in paths[:shards]:
            os.symlink(path, folder / path.name)
    return folder


def run_mmap(ctx: Context, epoch: int, *, drop_last: bool = False, root: str | Path | None = None,
             name: str = "mmap") -> dict[str, Any] | None:
    a = ctx.args
    root = root or npy_subset(ctx, a.npy_shards)
    ds = MmapShardDataset(root, batch_size=a.batch_size, seed=a.seed, drop_last=drop_last)
    ds.set_epoch(epoch)
    mine = train(ctx, f"{name}@{epoch}", DataLoader(ds, batch_size=None, num_workers=a.num_workers))
    return gather_report(ctx, name, epoch, mine, len(ds.index), drop_last=drop_last)


def _pipeline(ctx: Context, urls: list[str], epoch: int, block: bool):
    a = ctx.args
    if block:       # the fast path over pre-batched block shards (chapter 03): same shard-level split
        return make_block_webdataset(urls, batch_size=a.batch_size, seed=a.seed, epoch=epoch)
    return make_webdataset(urls, batch_size=a.batch_size, seed=a.seed, epoch=epoch, shuffle_buffer=a.shuffle_buffer,
                           expected_counts=manifest_counts(a.data_dir, "wds"))


def _total(ctx: Context, urls: list[str], block: bool = False) -> int:
    counts = manifest_counts(ctx.args.data_dir, "wdsb" if block else "wds")
    return sum(counts[Path(u).name] for u in urls)


def run_wds(ctx: Context, epoch: int, *, urls: list[str] | None = None, name: str = "wds", join: bool = False,
            with_epoch: int | None = None, block: bool = False, **extra: Any) -> dict[str, Any] | None:
    urls = urls if urls is not None else ctx.urls[:ctx.args.wds_shards]
    pipeline = _pipeline(ctx, urls, epoch, block)
    if with_epoch is None:
        loader: Any = DataLoader(pipeline, batch_size=None, num_workers=ctx.args.num_workers)
    else:   # WebLoader repeats the stream as often as needed and cuts it after `with_epoch` batches
        loader = wds.WebLoader(pipeline, batch_size=None, num_workers=ctx.args.num_workers).with_epoch(
            nbatches=with_epoch)
    mine = train(ctx, f"{name}@{epoch}", loader, join=join)
    return gather_report(ctx, name, epoch, mine, _total(ctx, urls, block), shards=len(urls), **extra)


def run_wds_stock(ctx: Context, epoch: int) -> dict[str, Any] | None:
    """webdataset's own ``WebDataset``: its default ``nodesplitter`` is ``single_node_only``."""
    urls = ctx.urls[:ctx.args.wds_shards]
    try:
        next(iter(wds.WebDataset(urls, shardshuffle=False, empty_check=False)))
        stock_error = None
    except ValueError as e:
        stock_error = str(e)
    fixed = wds.WebDataset(urls, shardshuffle=False, empty_check=False, nodesplitter=wds.split_by_node)
    ids = np.array([int(s["__key__"]) for s in fixed], dtype=np.int64)
    mine = {"ids": ids, "batches": 0, "seconds": 0.0, "throughput": None}
    return gather_report(ctx, "wds-stock", epoch, mine, _total(ctx, urls), stock_error=stock_error)


def run_uneven(ctx: Context, epoch: int, fix: str = "none") -> dict[str, Any] | None:
    a = ctx.args
    urls = ctx.block_urls[:a.uneven_shards]
    name = "uneven" if fix == "none" else f"uneven-{fix}"
    if fix == "drop_last":
        return run_mmap(ctx, epoch, drop_last=True, root=npy_subset(ctx, a.uneven_shards), name=name)
    if fix == "with_epoch":
        per_rank = _total(ctx, urls, True) // (ctx.world_size * a.batch_size)
        return run_wds(ctx, epoch, urls=urls, name=name, with_epoch=per_rank, block=True, fix=fix,
                       with_epoch_batches=per_rank)
    if fix == "equal_shards":
        keep = len(urls) - len(urls) % ctx.world_size
        if keep == 0:
            raise ValueError(f"{len(urls)} shard(s) cannot be shared equally by {ctx.world_size} ranks")
        return run_wds(ctx, epoch, urls=urls[:keep], name=name, block=True, fix=fix, shards_kept=keep,
                       samples_left_out=_total(ctx, urls, True) - _total(ctx, urls[:keep], True))
    return run_wds(ctx, epoch, urls=urls, name=name, join=fix == "join", block=True, fix=fix)


RUNNERS: dict[str, Callable[[Context, int], dict[str, Any] | None]] = {
    "mmap": run_mmap,
    "mmap-drop_last": lambda ctx, e: run_mmap(ctx, e, drop_last=True, name="mmap-drop_last"),
    "wds": run_wds,
    "wds-stock": run_wds_stock,
    "uneven": run_uneven,
    "uneven-drop_last": lambda ctx, e: run_uneven(ctx, e, "drop_last"),
    "uneven-with_epoch": lambda ctx, e: run_uneven(ctx, e, "with_epoch"),
    "uneven-equal_shards": lambda ctx, e: run_uneven(ctx, e, "equal_shards"),
    "uneven-join": lambda ctx, e: run_uneven(ctx, e, "join"),
}


# -- the process ----------------------------------------------------------------------------------------------
def parse_run(spec: str) -> tuple[str, int]:
    """``"mmap@1"`` -> ``("mmap", 1)``; ``"mmap"`` is epoch 0."""
    name, _, epoch = spec.partition("@")
    if name not in RUNNERS:
        raise ValueError(f"unknown run {name!r}; choose from {', '.join(RUNS)}")
    return name, int(epoch or 0)



def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    p = argparse.ArgumentParser(prog="python -m course_lib.distributed.ddp_stream", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", required=True, help="a data_gen directory (npy/, wds/, wdsb/ and manifest.json)")
    p.add_argument("--out", type=Path, required=True, help="the JSON result rank 0 writes")
    p.add_argument("--runs", nargs="+", default=["mmap@0"], help="name@epoch ... (see above)")
    p.add_argument("--source", help="tar shard URLs for the WebDataset runs: a brace pattern or a folder "
                                    "(default: DATA_DIR/wds); s3:// URLs use the AWS_* endpoint settings")
    p.add_argument("--block-source", help="block tar shard URLs (wdsb) for the uneven runs (default: DATA_DIR/wdsb)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--num-workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--npy-shards", type=int, default=0, help=".npy shards the mmap runs read (0: all)")
    p.add_argument("--wds-shards", type=int, default=4, help="tar shards the wds runs read")
    p.add_argument("--uneven-shards", type=int, default=3, help="tar shards the uneven runs read (odd: uneven)")
    p.add_argument("--shuffle-buffer", type=int, default=500)
    p.add_argument("--timeout", type=float, default=60.0,
                   help="seconds a gradient all-reduce may wait in the uneven run (where a hang is the lesson)")
    p.add_argument("--even-timeout", type=float, default=300.0,
                   help="seconds a collective may wait in every other run (generous: a busy machine is not a hang)")
    return p.parse_args(argv)


LESSON_RUNS = ("uneven",)   # runs meant to get stuck in the all-reduce: their ranks must give up quickly


def collective_timeout(args: argparse.Namespace, name: str) -> float:
    """Seconds the gradient all-reduce of run ``name`` may wait: ``--timeout`` for a lesson run, else generous."""
    return args.timeout if name in LESSON_RUNS else args.even_timeout


def main(argv: list[str] | None = None) -> int:
    """One rank of a launch: run every requested run, write this rank's state, rank 0 writes the result."""
    args = parse_args(argv)
    specs = [parse_run(s) for s in args.runs]
    dist.init_process_group("gloo", timeout=timedelta(seconds=max(args.even_timeout, args.timeout)))
    rank, world = dist.get_rank(), dist.get_world_size()
    steps_group = dist.new_group(backend="gloo", timeout=timedelta(seconds=args.even_timeout))
    status = RankStatus(args.out.parent / f"{args.out.stem}.ranks", rank)
    status.write(state="started", pid=os.getpid())
    urls = shard_urls(args.source if args.source else args.data_dir, "wds")
    block_urls = shard_urls(args.block_source if args.block_source else args.data_dir, "wdsb")
    if any(u.startswith("s3://") for u in urls + block_urls):
        from .s3_shards import S3Endpoint, register_s3
        register_s3(S3Endpoint.from_env())
    index = index_shards(args.data_dir)
    classes = json.loads((Path(args.data_dir) / "manifest.json").read_text())["classes"]
    torch.manual_seed(args.seed)
    model = DDP(tiny_model(index.sample_shape, classes), process_group=steps_group)
    scratch = status.path.parent / f"scratch-rank{rank}"   # shard subsets; the launcher removes it afterwards
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    ctx = Context(args, rank, world, model, torch.optim.SGD(model.parameters(), lr=0.05), status, urls,
                  block_urls, scratch)
    started, reports = time.perf_counter(), []

    def save(complete: bool) -> None:          # after every run: a launch that dies later keeps what it proved
        if rank == 0:
            result = {"world_size": world, "num_workers": args.num_workers, "batch_size": args.batch_size,
                      "seed": args.seed, "source": args.source or str(Path(args.data_dir) / "wds"),
                      "timeout_s": args.timeout, "even_timeout_s": args.even_timeout, "backend": dist.get_backend(),
                      "runs": reports, "complete": complete, "seconds": time.perf_counter() - started}
            tmp = args.out.with_suffix(".tmp")
            tmp.write_text(json.dumps(result, indent=1))
            tmp.replace(args.out)

    try:
        for name, epoch in specs:
            # the short timeout only where a stuck rank is the lesson; elsewhere a stall under load is no hang
            _set_pg_timeout(timedelta(seconds=collective_timeout(args, name)), steps_group)
            report = RUNNERS[name](ctx, epoch)
            if report is not None:
                reports.append(report)
            save(complete=False)
    except StuckInCollective as e:
        batches = json.loads(status.path.read_text()).get("batches")
        message = (f"rank {rank} of {world}: stuck in the gradient all-reduce after {batches} batches of "
                   f"{name}@{epoch}; it waited {args.timeout:g} s for the other rank(s), which had stopped "
                   f"joining (uneven batch counts per rank). Exiting instead of hanging. ({e})")
        status.write(state="stuck", run=f"{name}@{epoch}", batches=batches, waited_s=args.timeout, error=message)
        print(message, file=sys.stderr, flush=True)
        shutil.rmtree(scratch, ignore_errors=True)
        os._exit(STUCK_EXIT)          # no clean-up that could wait on the peers again
    save(complete=True)
    status.write(state="done", seconds=time.perf_counter() - started)
    shutil.rmtree(scratch, ignore_errors=True)
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
