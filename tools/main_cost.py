"""Main-process cost per batch of a DataLoader over MmapShardDataset (figures, not a test).

    python tools/main_cost.py DATA_DIR [--workers 0,2,4] [--repeat 3] [--batch-size 256]

For each worker count: one epoch per repeat, timed; the main process's CPU time (all its threads, and the main
thread alone) divided by the batches it received, so the per-batch cost of receiving, rebuilding and handing
a batch to the loop is seen apart from the time it waited. Also the same epoch's samples/s.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import time

from torch.utils.data import DataLoader

from course_lib import MmapShardDataset
from course_lib.measure.throughput import touch_pages


def cpu(who: int) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def one_epoch(loader, touch: bool = True) -> dict:
    it = iter(loader)
    first = next(it)
    touch_pages(first)
    del first
    t0, p0, m0 = time.perf_counter(), cpu(resource.RUSAGE_SELF), cpu(resource.RUSAGE_THREAD)
    samples = batches = 0
    for batch in it:
        if touch:
            touch_pages(batch)
        samples += len(batch["y"])
        batches += 1
    wall = time.perf_counter() - t0
    return {"samples_per_s": samples / wall, "process_us": 1e6 * (cpu(resource.RUSAGE_SELF) - p0) / batches,
            "thread_us": 1e6 * (cpu(resource.RUSAGE_THREAD) - m0) / batches, "wall_us": 1e6 * wall / batches}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir")
    parser.add_argument("--workers", default="0,2,4")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--shuffle", default="block")
    parser.add_argument("--persistent", action="store_true")
    parser.add_argument("--no-touch", action="store_true", help="do not read a byte per page of each batch")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores")
    counts = [int(w) for w in args.workers.split(",")]
    runs = {w: [] for w in counts}
    loaders = {}
    for r in range(args.repeat):
        for w in (counts if r % 2 == 0 else counts[::-1]):
            if w not in loaders or not args.persistent:
                ds = MmapShardDataset(args.data_dir, shuffle=args.shuffle, batch_size=args.batch_size)
                loaders[w] = DataLoader(ds, batch_size=None, num_workers=w,
                                        persistent_workers=args.persistent and w > 0)
            runs[w].append(one_epoch(loaders[w], touch=not args.no_touch))
    base = statistics.median(x["samples_per_s"] for x in runs[counts[0]])
    for w in counts:
        med = {k: statistics.median(x[k] for x in runs[w]) for k in runs[w][0]}
        lo, hi = min(x["samples_per_s"] for x in runs[w]), max(x["samples_per_s"] for x in runs[w])
        print(f"{w:>2} workers: {med['samples_per_s']:>9,.0f} samples/s ({lo:,.0f}-{hi:,.0f}) "
              f"x{med['samples_per_s'] / base:.2f}; main process CPU {med['process_us']:.0f} us/batch "
              f"(main thread {med['thread_us']:.0f}), wall {med['wall_us']:.0f} us/batch")
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
