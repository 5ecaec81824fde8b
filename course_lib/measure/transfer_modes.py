"""The four ways to feed a device (:class:`~course_lib.loaders.device_transfer.DeviceLoader`'s modes), side by side.

    python -m course_lib.measure.transfer_modes --data-dir build/data   # every mode, as JSON lines
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Iterable, Iterator

import torch

from ..loaders.cli_args import add_data_dir_argument
from ..loaders.device_transfer import MODES, Batch, DeviceLoader
from ..loaders.mmap_shards import MmapShardDataset
from .throughput import ThroughputResult, measure_throughput


def compare_modes(data_dir: str | Path, *, batch_size: int = 256, device: str | torch.device | None = None,
                  repeat: int = 3, work: bool = True, seed: int = 0,
                  max_samples: int | None = None) -> list[ThroughputResult]:
    """Each transfer mode over one epoch of ``MmapShardDataset`` batches; per mode the median of ``repeat`` runs.

    With ``work``, each batch is also turned into float on the device (a stand-in for the model's first step),
    so prefetching has something to overlap with. ``max_samples`` caps each run (default: whole epochs).
    """
    ds = MmapShardDataset(data_dir, batch_size=batch_size, seed=seed)
    out = []
    for mode in MODES:
        loader = DeviceLoader(ds, device, mode=mode)
        out.append(measure_throughput(_Stepped(loader, _consume if work else None),
                                      bytes_per_sample=ds.bytes_per_sample, progress=False,
                                      label=f"{mode} -> {loader.device}", touch=False, repeat=repeat,
                                      files=ds.index.paths, max_samples=max_samples))
    return out


class _Stepped:
    """``loader``'s batches, each passed to ``step`` first; iterable again for every repeat."""

    def __init__(self, loader: Iterable[Batch], step):
        self.loader, self.step = loader, step

    def __iter__(self) -> Iterator[Batch]:
        return _each(self.loader, self.step)


def _consume(batch: Batch) -> None:
    batch["x"].float().mul_(1 / 255)


def _each(loader: Iterable[Batch], step) -> Iterator[Batch]:
    for batch in loader:
        if step is not None:
            step(batch)
        yield batch


def main(argv: list[str] | None = None) -> int:
    """CLI: print the transfer modes side by side as JSON lines."""
    parser = argparse.ArgumentParser(prog="python -m course_lib.measure.transfer_modes", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_dir_argument(parser)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    for r in compare_modes(args.data_dir, batch_size=args.batch_size, device=args.device, repeat=args.repeat):
        print(json.dumps({"mode": r.label, "batch_size": args.batch_size, "samples_per_s": round(r.samples_per_s),
                          "mb_per_s": round(r.mb_per_s)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
