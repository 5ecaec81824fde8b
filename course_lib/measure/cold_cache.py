"""Cold-cache runs, side by side: each loader right after its files were evicted, against a cold sequential
read of the same files (the ceiling for anything reading them from the disk)."""
from __future__ import annotations

import gc
import statistics
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterable

from ..loaders.mmap_shards import MmapShardDataset
from ..loaders.shard_index import index_shards
from ..teaching.naive import SeedStreamingDataset
from .page_cache import cold_read_mb_per_s, evict
from .throughput import measure_throughput


def cold_loaders(data_dir: str | Path, batch_size: int = 256) -> dict[str, Callable[[], Iterable]]:
    """The loaders compared cold: the block path with and without read-ahead, and the seed's random pattern."""
    shard_dir = index_shards(data_dir).shard_dir
    return {
        f"mmap block shuffle, batched {batch_size}, read-ahead": lambda: MmapShardDataset(data_dir,
                                                                                           batch_size=batch_size),
        f"mmap block shuffle, batched {batch_size}, no read-ahead": lambda: MmapShardDataset(
            data_dir, batch_size=batch_size, read_ahead=False),
        "seed pattern (sample shuffle, np.void)": lambda: SeedStreamingDataset(shard_dir),
    }


def cold_runs(data_dir: str | Path, *, repeat: int = 3, batch_size: int = 256,
              loaders: dict[str, Callable[[], Iterable]] | None = None) -> dict[str, Any]:
    """Per repeat (alternating order): a cold sequential read, then each loader, every one right after
    :func:`evict`. Returns the medians and spreads, each loader's ratio to the cold read, and whether every
    run really started cold (``cache`` of each result)."""
    index = index_shards(data_dir)
    paths = index.paths
    loaders = cold_loaders(data_dir, batch_size) if loaders is None else loaders
    reads, resident_before_read = [], []
    results: dict[str, list] = {name: [] for name in loaders}
    names = list(loaders)
    for r in range(repeat):
        rate, resident = cold_read_mb_per_s(paths)
        reads.append(rate)
        resident_before_read.append(resident)
        for name in (names if r % 2 == 0 else names[::-1]):
            loader = loaders[name]()
            gc.collect()                      # no live map of an earlier loader keeps pages in the cache
            evict(paths)
            results[name].append(measure_throughput(loader, bytes_per_sample=index.bytes_per_sample, warmup=0,
                                                    progress=False, label=f"{name} (cold)", files=paths))
            del loader
    read = statistics.median(reads)
    rows = []
    for name, runs in results.items():
        mbps = [x.mb_per_s for x in runs]
        median = sorted(runs, key=lambda x: x.samples_per_s)[(len(runs) - 1) // 2]
        median = replace(median, runs_samples_per_s=tuple(x.samples_per_s for x in runs),
                         runs_resident_before=tuple(x.resident_before for x in runs))
        rows.append({"loader": name, "mb_per_s": statistics.median(mbps), "mb_per_s_min": min(mbps),
                     "mb_per_s_max": max(mbps), "samples_per_s": statistics.median(x.samples_per_s for x in runs),
                     "ratio_to_cold_read": statistics.median(mbps) / read, "cache": sorted({x.cache for x in runs}),
                     "result": median.as_dict(), "runs": [x.as_dict() for x in runs]})
    return {"cold_read_mb_per_s": read, "cold_read_min": min(reads), "cold_read_max": max(reads),
            "cold_read_resident_before": max(resident_before_read), "rows": rows}


def cold_lines(cold: dict[str, Any]) -> list[str]:
    """The cold runs as text lines."""
    lines = [f"cold sequential read: {cold['cold_read_mb_per_s']:,.0f} MB/s ({cold['cold_read_min']:,.0f}-"
             f"{cold['cold_read_max']:,.0f}; {cold['cold_read_resident_before']:.0%} cached before it)",
             f"{'cold loader':<56} {'MB/s (min-max)':>22} {'of cold read':>12} {'cache':>8}"]
    for r in cold["rows"]:
        spread = f"{r['mb_per_s']:,.0f} ({r['mb_per_s_min']:,.0f}-{r['mb_per_s_max']:,.0f})"
        lines.append(f"{r['loader']:<56} {spread:>22} {r['ratio_to_cold_read']:>12.0%} {'/'.join(r['cache']):>8}")
    return lines
