"""Fingerprints of an epoch's order, so two runs (or two processes) can be compared with one short string.

Chapter 04, section 2 (fresh process) and section 3 (`DistributedSampler`); chapter 03 counts coverage with it.

    python -m course_lib.measure.fingerprints --data-dir build/data --loader mmap --seed 42 --epochs 0 1 2

prints ``{"0": "...", "1": "...", "2": "..."}``: the fingerprint of each epoch's arrival order, computed in
this fresh process (:func:`fingerprints_in_fresh_process` runs it from Python). ``--runs JSON`` measures several
loaders in one process (``{"name": {"loader": ..., "num_workers": ..., "shards": ...}}``; with ``--reverse`` in
the opposite order) and prints ``{"name": {"0": ..., ...}}`` (:func:`fingerprint_runs_in_fresh_process`): one
interpreter start (importing torch takes seconds) for many fingerprints.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader

from data_gen.layout import WDS

from ..loaders.cli_args import add_data_dir_argument, add_num_workers_argument
from .shuffle_metrics import arrival_order

LOADERS = ("mmap", "mmap-batched", "webdataset")


def order_fingerprint(order: Iterable[int] | np.ndarray) -> str:
    """A 16-hex-digit sha256 of a sequence of sample indices: equal orders, equal fingerprints."""
    ids = np.ascontiguousarray(np.fromiter(order, dtype=np.int64) if not isinstance(order, np.ndarray)
                               else order.astype(np.int64, copy=False))
    return hashlib.sha256(ids.astype("<i8", copy=False).tobytes()).hexdigest()[:16]


@dataclass(frozen=True)
class Coverage:
    """How one epoch's indices cover ``0..total-1``: exactly once means duplicates == missing == 0."""

    samples: int
    distinct: int
    duplicates: int
    missing: int

    @property
    def exactly_once(self) -> bool:
        """Every sample arrived, none twice."""
        return self.duplicates == 0 and self.missing == 0

    def as_dict(self) -> dict:
        """JSON-ready fields."""
        return {**asdict(self), "exactly_once": self.exactly_once}


def coverage(order: np.ndarray, total: int) -> Coverage:
    """Count distinct, duplicated and missing indices of ``order`` against ``0..total-1``."""
    order = np.asarray(order, dtype=np.int64)
    if len(order) and (order.min() < 0 or order.max() >= total):
        raise ValueError(f"indices outside 0..{total - 1}: {order.min()}..{order.max()}")
    distinct = len(np.unique(order))
    return Coverage(samples=len(order), distinct=distinct, duplicates=len(order) - distinct,
                    missing=total - distinct)


def epoch_order(loader: Iterable, epoch: int, set_epoch: Callable[[int], None] | None = None) -> np.ndarray:
    """The arrival order of one epoch: ``set_epoch(epoch)`` (default: the loader's own), then iterate ``loader``."""
    (set_epoch or loader.set_epoch)(epoch)
    return arrival_order(loader)


def epoch_orders(loader: Iterable, epochs: Sequence[int], set_epoch: Callable[[int], None] | None = None
                 ) -> dict[int, np.ndarray]:
    """The arrival order of each epoch, calling ``set_epoch(e)`` (when given) before iterating ``loader``."""
    if set_epoch is None:
        return {e: arrival_order(loader) for e in epochs}
    return {e: epoch_order(loader, e, set_epoch) for e in epochs}


def fingerprints_in_fresh_process(data_dir: str | Path, loader: str = "mmap", *, seed: int = 0,
                                  epochs: Sequence[int] = (0, 1, 2), num_workers: int = 0,
                                  shards: int | None = None, timeout: float = 300) -> dict[str, str]:
    """``{"epoch": fingerprint}`` computed by ``python -m course_lib.measure.fingerprints`` in a new process."""
    cmd = [sys.executable, "-m", __spec__.name, "--data-dir", str(data_dir), "--loader", loader,
           "--seed", str(seed), "--epochs", *map(str, epochs), "--num-workers", str(num_workers)]
    if shards is not None:
        cmd += ["--shards", str(shards)]
    return json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=timeout).stdout)


def fingerprint_runs_in_fresh_process(data_dir: str | Path, runs: dict[str, dict], *, seed: int = 0,
                                      epochs: Sequence[int] = (0, 1, 2), reverse: bool = False,
                                      timeout: float = 300) -> dict[str, dict[str, str]]:
    """``{name: {"epoch": fingerprint}}`` for several loaders (``runs``: name -> ``fingerprint_loader`` keywords:
    ``loader``, ``num_workers``, ``shards``, ``batch_size``, ``block_size``), all computed in one new process;
    ``reverse`` runs them last to first."""
    cmd = [sys.executable, "-m", __spec__.name, "--data-dir", str(data_dir), "--seed", str(seed),
           "--epochs", *map(str, epochs), "--runs", json.dumps(runs)] + (["--reverse"] if reverse else [])
    out = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=timeout).stdout)
    return {name: out[name] for name in runs}


def fingerprint_runs(data_dir: str | Path, runs: dict[str, dict], *, seed: int = 0,
                     epochs: Sequence[int] = (0, 1, 2), reverse: bool = False) -> dict[str, dict[str, str]]:
    """``{name: {"epoch": fingerprint}}`` for several loaders, in this process (``runs`` as in
    :func:`fingerprint_runs_in_fresh_process`, which runs this in a new one)."""
    names = list(runs)[::-1] if reverse else list(runs)
    out = {name: _fingerprints(data_dir, seed=seed, epochs=epochs, **{"loader": "mmap", **runs[name]})
           for name in names}
    return {name: out[name] for name in runs}


def _fingerprints(data_dir: str | Path, loader: str, *, seed: int, epochs: Sequence[int], **options) -> dict[str, str]:
    built, set_epoch = fingerprint_loader(data_dir, loader, seed=seed, **options)
    return {str(e): order_fingerprint(o) for e, o in epoch_orders(built, epochs, set_epoch).items()}


def fingerprint_loader(data_dir: str | Path, kind: str, *, seed: int, num_workers: int = 0,
                       shards: int | None = None, batch_size: int = 256, block_size: int = 256):
    """A course loader over ``data_dir`` by name (see ``LOADERS``) and the function that sets its epoch.

    ``shards`` limits the webdataset loader to the first tar shards (its per-sample pipeline is slow);
    ``batch_size`` and ``block_size`` configure ``mmap-batched`` (``block_size`` also ``mmap``).
    """
    from ..loaders.mmap_shards import MmapShardDataset
    from ..loaders.webdataset_pipeline import make_webdataset, shard_urls

    if kind == "mmap":
        ds = MmapShardDataset(data_dir, seed=seed, block_size=block_size)
    elif kind == "mmap-batched":
        ds = MmapShardDataset(data_dir, seed=seed, batch_size=batch_size, block_size=block_size)
    elif kind == "webdataset":
        ds = make_webdataset(shard_urls(data_dir, WDS)[:shards], seed=seed, shuffle_buffer=100)
    else:
        raise ValueError(f"--loader must be one of {LOADERS}, got {kind!r}")
    loader = ds if num_workers == 0 else DataLoader(ds, batch_size=None, num_workers=num_workers)
    return loader, ds.set_epoch


def main(argv: list[str] | None = None) -> int:
    """CLI: print each epoch's fingerprint as JSON."""
    parser = argparse.ArgumentParser(prog="python -m course_lib.measure.fingerprints", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_dir_argument(parser)
    parser.add_argument("--loader", default="mmap", choices=LOADERS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, nargs="+", default=[0, 1, 2])
    add_num_workers_argument(parser, help="DataLoader workers (0: iterate directly)")
    parser.add_argument("--shards", type=int, default=None, help="webdataset: only the first N tar shards")
    parser.add_argument("--runs", type=json.loads, default=None,
                        help='several loaders in this one process: {"name": {"loader": ..., "num_workers": ...}}')
    parser.add_argument("--reverse", action="store_true", help="with --runs: run them last to first")
    args = parser.parse_args(argv)
    if args.runs is not None:
        for name, run in args.runs.items():
            if run.get("loader", "mmap") not in LOADERS:
                parser.error(f"--runs {name}: loader must be one of {LOADERS}")
        print(json.dumps(fingerprint_runs(args.data_dir, args.runs, seed=args.seed, epochs=args.epochs,
                                          reverse=args.reverse)))
        return 0
    if args.num_workers < 0:
        parser.error(f"--num-workers must be >= 0, got {args.num_workers}")
    if args.shards is not None and (args.shards < 1 or args.loader != "webdataset"):
        parser.error(f"--shards must be >= 1 and is for --loader webdataset, got {args.shards}")
    print(json.dumps(_fingerprints(args.data_dir, args.loader, seed=args.seed, epochs=args.epochs,
                                   num_workers=args.num_workers, shards=args.shards)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
