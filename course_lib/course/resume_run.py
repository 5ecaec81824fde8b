"""One epoch of a training loop that can be stopped and resumed in a fresh process (chapter 04, section 6).

    python -m course_lib.course.resume_run --data-dir build/data --state run/state.json --ids run/part1.npy \
        --stop-after 5
    python -m course_lib.course.resume_run --data-dir build/data --state run/state.json --ids run/part2.npy

The first call reads 5 batches through torchdata's ``StatefulDataLoader`` over ``MmapShardDataset``, writes the
loader's ``state_dict()`` as JSON (atomically) and the sample indices it consumed; the second call finds the
state, loads it and reads the rest of the epoch. Both parts together are exactly one epoch, in order.
:func:`resume_in_fresh_process` runs one such part from Python and returns its indices.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
from torchdata.stateful_dataloader import StatefulDataLoader

from data_gen.atomic import atomic_write_bytes

from ..loaders.cli_args import add_data_dir_argument, add_num_workers_argument
from ..loaders.mmap_shards import MmapShardDataset
from ..measure.shuffle_metrics import arrival_order

# torchdata 0.11 calls torch.set_vital, which torch 2.13 deprecates: harmless, and not the learner's to fix.
warnings.filterwarnings("ignore", message="'set_vital' is deprecated", category=UserWarning)


def resumable_loader(data_dir: str | Path, *, seed: int = 0, epoch: int = 0, batch_size: int = 64,
                     num_workers: int = 0) -> StatefulDataLoader:
    """The resumable loader: batches from ``MmapShardDataset`` through a ``StatefulDataLoader``."""
    ds = MmapShardDataset(data_dir, seed=seed, batch_size=batch_size)
    ds.set_epoch(epoch)
    return StatefulDataLoader(ds, batch_size=None, num_workers=num_workers)


def run_part(loader: StatefulDataLoader, state_path: Path, stop_after: int | None = None) -> np.ndarray:
    """Resume from ``state_path`` if it exists, read ``stop_after`` batches (None: to the epoch's end), save state."""
    if state_path.exists():
        loader.load_state_dict(json.loads(state_path.read_text()))
    batches = []
    for batch in loader:
        batches.append(batch)
        if stop_after is not None and len(batches) == stop_after:
            break
    atomic_write_bytes(state_path, json.dumps(loader.state_dict()).encode())  # a crash leaves old or new, never half
    return arrival_order(batches)


def resume_in_fresh_process(data_dir: str | Path, state: str | Path, ids: str | Path, *, batch_size: int = 64,
                            num_workers: int = 0, seed: int = 0, epoch: int = 0, stop_after: int | None = None,
                            timeout: float = 300) -> np.ndarray:
    """Run one part (``python -m course_lib.course.resume_run``) in a new Python process; its sample indices."""
    cmd = [sys.executable, "-m", "course_lib.course.resume_run", "--data-dir", str(data_dir), "--state", str(state),
           "--ids", str(ids), "--batch-size", str(batch_size), "--num-workers", str(num_workers),
           "--seed", str(seed), "--epoch", str(epoch)]
    if stop_after is not None:
        cmd += ["--stop-after", str(stop_after)]
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=timeout)
    return np.load(ids)


def main(argv: list[str] | None = None) -> int:
    """CLI: one part of a resumable epoch."""
    parser = argparse.ArgumentParser(prog="python -m course_lib.course.resume_run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_dir_argument(parser)
    parser.add_argument("--state", required=True, type=Path, help="JSON loader state: read if present, then written")
    parser.add_argument("--ids", required=True, type=Path, help="write the consumed sample indices here (.npy)")
    parser.add_argument("--stop-after", type=int, default=None, help="stop after this many batches")
    parser.add_argument("--batch-size", type=int, default=64)
    add_num_workers_argument(parser)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epoch", type=int, default=0)
    args = parser.parse_args(argv)
    for name in ("stop_after", "batch_size"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if args.num_workers < 0:
        parser.error(f"--num-workers must be >= 0, got {args.num_workers}")
    loader = resumable_loader(args.data_dir, seed=args.seed, epoch=args.epoch, batch_size=args.batch_size,
                              num_workers=args.num_workers)
    ids = run_part(loader, args.state, args.stop_after)
    args.ids.parent.mkdir(parents=True, exist_ok=True)
    np.save(args.ids, ids)
    print(json.dumps({"samples": len(ids), "state": str(args.state)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
