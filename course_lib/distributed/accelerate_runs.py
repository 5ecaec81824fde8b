"""What Hugging Face Accelerate does to the course's rank-split loaders, measured in one torchrun launch.

    torchrun --standalone --nproc_per_node=2 -m course_lib.distributed.accelerate_runs \\
        --data-dir DATA_DIR --out result.json --runs mmap:prepare:0 mmap:recipe:2 wds:refused:0 ...

Each run is ``LOADER:VARIANT:WORKERS``. Loaders: ``mmap`` (``MmapShardDataset`` building batches),
``mmap-per-sample`` (samples, batched by the DataLoader: the issue's table), ``wds`` (``make_webdataset``
batching in the pipeline). Variants:

  plain                a DataLoader, no Accelerate: the course's own rank split
  prepare              accelerator.prepare(loader), batches dispatched from process 0 (the default for an
                       IterableDataset); the resharding check switched off, to see what it prevents
  prepare-nodispatch   the same with DataLoaderConfiguration(dispatch_batches=False): IterableDatasetShard
  refused              accelerator.prepare(loader) with the check on: ReshardedError at the first batch
  refused-nodispatch   the same with dispatch_batches=False
  global               the dataset told rank=0, world_size=1 (one global stream), prepare() splits it
  global-nodispatch    the same with dispatch_batches=False: every process reads everything
  recipe               RankLoader, passed through accelerator.prepare(loader) untouched
  resume               RankLoader stopped after half its batches, accelerator.save_state, then a fresh loader
                       and Accelerator continue from accelerator.load_state

Every rank gathers the sample ids it received; rank 0 writes one JSON result with a report per run
(``rank_checks.run_report``: delivered, missing, repeated) or the error the run ended with. The script ends
with ``accelerator.end_training()``, which destroys the process group before the interpreter exits.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch.distributed as dist
from torch.utils.data import DataLoader

from data_gen.layout import NPY, WDS, format_dir, shard_glob

from ..loaders.cli_args import add_data_dir_argument
from ..loaders.mmap_shards import MmapShardDataset
from ..loaders.resharding import ReshardedError, allow_resharding
from ..loaders.shard_index import index_shards
from ..loaders.webdataset_pipeline import make_webdataset
from .accelerate_loader import RankLoader
from .launch import LaunchResult, kill_tree
from .rank_checks import run_report

LOADERS = ("mmap", "mmap-per-sample", "wds")
VARIANTS = ("plain", "prepare", "prepare-nodispatch", "refused", "refused-nodispatch", "global",
            "global-nodispatch", "recipe", "resume")
HOW = {"plain": "DataLoader, no Accelerate", "prepare": "prepare(loader), dispatched (default)",
       "prepare-nodispatch": "prepare(loader), dispatch_batches=False",
       "refused": "prepare(loader), with the course's check", "refused-nodispatch":
       "prepare(loader), dispatch_batches=False, with the check",
       "global": "dataset rank=0, world_size=1; prepare()", "global-nodispatch":
       "dataset rank=0, world_size=1; prepare(), dispatch_batches=False",
       "recipe": "RankLoader (prepare() leaves it alone)", "resume": "RankLoader, save_state half-way, load_state"}


def parse_run(spec: str) -> tuple[str, str, int]:
    """``"mmap:recipe:2"`` -> ``("mmap", "recipe", 2)``; an unknown part is a ValueError naming it."""
    parts = spec.split(":")
    if len(parts) != 3 or parts[0] not in LOADERS or parts[1] not in VARIANTS or not parts[2].isdigit():
        raise ValueError(f"run {spec!r}: expected LOADER:VARIANT:WORKERS with LOADER in {LOADERS}, "
                         f"VARIANT in {VARIANTS}, WORKERS a number")
    return parts[0], parts[1], int(parts[2])


def build(args: argparse.Namespace, loader: str, variant: str, workers: int, device=None):
    """The dataset and loader a run iterates (a DataLoader, or a RankLoader for the recipe)."""
    per_sample = loader == "mmap-per-sample"
    split = {"rank": 0, "world_size": 1} if variant.startswith("global") else {}
    batch = None if per_sample else args.batch_size
    if loader.startswith("mmap"):
        dataset = MmapShardDataset(args.data_dir, batch_size=batch, seed=args.seed, **split)
    else:
        dataset = make_webdataset(args.data_dir, batch_size=args.batch_size, seed=args.seed, shuffle_buffer=100,
                                  **split)
    if variant.startswith("prepare"):
        allow_resharding(dataset)
    outer = args.batch_size if per_sample else None
    if variant in ("recipe", "resume"):
        return dataset, RankLoader(dataset, batch_size=outer, num_workers=workers, device=device)
    return dataset, DataLoader(dataset, batch_size=outer, num_workers=workers)


def accelerator_for(variant: str, timeout_s: float = 60.0):
    """A CPU ``Accelerator``; ``dispatch_batches=False`` for the ``-nodispatch`` variants. ``timeout_s``: the
    process group's collective timeout (set by the first one), so a rank that fails alone cannot hang the rest."""
    from accelerate import Accelerator, DataLoaderConfiguration, InitProcessGroupKwargs
    config = DataLoaderConfiguration(dispatch_batches=False if variant.endswith("nodispatch") else None)
    return Accelerator(cpu=True, dataloader_config=config,
                       kwargs_handlers=[InitProcessGroupKwargs(timeout=timedelta(seconds=timeout_s))])


def ids_of(batches, stop: int | None = None) -> list[int]:
    """The sample ids of the batches (of the first ``stop`` batches) in arrival order."""
    ids: list[int] = []
    for n, batch in enumerate(batches, 1):
        ids.extend(batch["idx"].reshape(-1).tolist())
        if n == stop:                  # as a training loop saving after its step: no batch taken beyond it
            break
    return ids


def one_run(args: argparse.Namespace, spec: str, scratch: Path, stop: int) -> dict[str, Any]:
    """This rank's part of one run: ``{"ids": [...], "batches": n}`` or ``{"error": text}``."""
    loader_name, variant, workers = parse_run(spec)
    try:
        if variant == "plain":
            dataset, loader = build(args, loader_name, variant, workers)
            dataset.set_epoch(0)
            ids = ids_of(loader)
        elif variant == "resume":
            ids = resumed_ids(args, loader_name, workers, scratch / spec.replace(":", "-"), stop)
        else:
            accelerator = accelerator_for(variant)
            dataset, loader = build(args, loader_name, variant, workers, accelerator.device)
            prepared = accelerator.prepare(loader)   # (a model and optimizer would go in the same call; a
            #                                           torch.optim optimizer imports torch._dynamo: ~4 s a process)
            if variant == "recipe" and prepared is not loader:
                raise RuntimeError("accelerator.prepare() replaced the RankLoader")
            ids = ids_of(prepared)
    except (ReshardedError, TypeError, RuntimeError) as e:
        return {"error": f"{type(e).__name__}: {str(e).splitlines()[0]}"}
    return {"ids": ids, "batches": -1}


def resumed_ids(args: argparse.Namespace, loader_name: str, workers: int, folder: Path, stop: int) -> list[int]:
    """``stop`` batches through a RankLoader, ``save_state``; a new loader and Accelerator ``load_state``, finish."""
    accelerator = accelerator_for("resume")
    loader = build(args, loader_name, "resume", workers, accelerator.device)[1]
    accelerator.register_for_checkpointing(loader)
    loader.set_epoch(0)
    ids = ids_of(loader, stop=stop)                       # every rank stops after the same number of batches
    accelerator.save_state(str(folder))                  # process 0 writes the files ...
    accelerator.wait_for_everyone()                       # ... before any process reads them
    accelerator = accelerator_for("resume")              # a fresh start: new Accelerator, dataset and loader
    loader = build(args, loader_name, "resume", workers, accelerator.device)[1]
    accelerator.register_for_checkpointing(loader)
    accelerator.load_state(str(folder))
    loader.set_epoch(0)                                   # the loaded epoch: continues, does not restart
    return ids + ids_of(loader)


def main(argv: list[str] | None = None) -> int:
    """Run every ``--runs`` entry on this rank; rank 0 writes the result to ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_dir_argument(parser)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--runs", nargs="+", required=True)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for spec in args.runs:
        parse_run(spec)
    accelerator = accelerator_for("plain")               # initialises the gloo process group (CPU)
    rank, world_size = accelerator.process_index, accelerator.num_processes
    scratch = args.out.parent / f"{args.out.stem}.scratch"
    total = len(index_shards(args.data_dir))
    stop = max(1, total // world_size // args.batch_size // 2)     # about half an epoch: where resume stops
    reports = []
    for spec in args.runs:
        started = time.perf_counter()
        print(f"rank {rank}: {spec}", flush=True)
        mine = one_run(args, spec, scratch, stop)
        mine["seconds"] = time.perf_counter() - started
        print(f"rank {rank}: {spec} {mine.get('error') or len(mine['ids'])} in {mine['seconds']:.2f} s", flush=True)
        everyone: list[Any] = [None] * world_size
        dist.all_gather_object(everyone, mine)
        if rank == 0:
            reports.append(report(spec, everyone, total))
    if rank == 0:
        args.out.write_text(json.dumps({"runs": reports, "world_size": world_size, "total": total,
                                        "complete": True}))
        shutil.rmtree(scratch, ignore_errors=True)
    accelerator.end_training()       # destroy the process group before exit (see README, Training frameworks)
    return 0


def report(spec: str, everyone: list[dict[str, Any]], total: int) -> dict[str, Any]:
    """One run across ranks: ``run_report``'s counts, or the errors the ranks ended with."""
    loader, variant, workers = parse_run(spec)
    base = {"run": spec, "loader": loader, "variant": variant, "num_workers": workers, "how": HOW[variant],
            "seconds": max(m["seconds"] for m in everyone)}
    errors = sorted({m["error"] for m in everyone if "error" in m})
    if errors:
        return {**base, "error": errors[0], "name": spec, "epoch": 0}
    ids = [np.asarray(m["ids"], dtype=np.int64) for m in everyone]
    return run_report(spec, 0, ids, [len(i) for i in ids], total, **base)


def subset(data_dir: str | Path, folder: Path, shards: int) -> Path:
    """A data folder of links to the first ``shards`` npy and wds shards of ``data_dir`` (all of it for 0)."""
    npy = sorted(format_dir(data_dir, NPY).glob(shard_glob(NPY)))
    wds = sorted(format_dir(data_dir, WDS).glob(shard_glob(WDS)))
    if shards <= 0 or shards >= min(len(npy), len(wds)):
        return Path(data_dir)
    shutil.rmtree(folder, ignore_errors=True)
    for fmt, paths in ((NPY, npy), (WDS, wds)):
        (folder / fmt).mkdir(parents=True)
        for path in paths[:shards]:
            (folder / fmt / path.name).symlink_to(path.resolve())
    return folder


def accelerate_torchrun(data_dir: str | Path, out: str | Path, runs: list[str], *, nproc: int = 2,
                        timeout_s: float = 120.0, batch_size: int = 32, shards: int = 0) -> LaunchResult:
    """``torchrun --standalone --nproc_per_node=nproc -m course_lib.distributed.accelerate_runs ...`` with a hard
    timeout (torchrun and every process below it killed past it); the result as ``launch.LaunchResult``.
    ``shards``: read only the first that many shards of each format (0: all)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    data_dir = subset(data_dir, out.parent / f"{out.stem}.data", shards)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "course_lib.distributed.accelerate_runs", "--data-dir", str(data_dir), "--out", str(out),
               "--batch-size", str(batch_size), "--runs", *runs]
    log = out.with_suffix(".log")
    started = time.perf_counter()
    with open(log, "w") as sink:
        proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            returncode, timed_out = proc.wait(timeout=timeout_s), False
        except subprocess.TimeoutExpired:
            kill_tree(proc.pid)
            returncode, timed_out = proc.wait(), True
        except BaseException:
            kill_tree(proc.pid)
            proc.wait()
            raise
    result = json.loads(out.read_text()) if out.exists() else None
    return LaunchResult(command, returncode, time.perf_counter() - started, timed_out, log, result)


if __name__ == "__main__":
    sys.exit(main())
