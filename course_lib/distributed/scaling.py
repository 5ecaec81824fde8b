"""From one machine to N nodes x G GPUs, on paper: request latency and bandwidth measured here, and what they imply.

Two measured inputs decide shard sizes: the time to the first byte of a request (latency) and the bytes per
second one stream delivers (bandwidth). A reader spends ``latency`` per shard before data flows, so a shard
must take at least ``(1 - overhead) / overhead`` latencies to stream for the latency to cost at most
``overhead`` of the time. Counts decide the rest: every (rank, worker) reader needs shards of its own.
"""
from __future__ import annotations

import math
import statistics
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class StoreTiming:
    """Repeated measurements of one store: seconds to the first byte, and MB/s of whole-shard reads."""

    label: str
    latency_s: tuple[float, ...]
    bandwidth_mb_s: tuple[float, ...]
    shard_bytes: int

    @property
    def latency(self) -> float:
        """Median seconds to the first byte."""
        return statistics.median(self.latency_s)

    @property
    def bandwidth(self) -> float:
        """Median MB/s (1e6 bytes) of one stream."""
        return statistics.median(self.bandwidth_mb_s)

    def row(self) -> tuple[Any, ...]:
        """(label, latency ms median [min-max], MB/s median [min-max], repeats)."""
        lat = [v * 1e3 for v in self.latency_s]
        return (self.label, f"{statistics.median(lat):.2f} [{min(lat):.2f}-{max(lat):.2f}]",
                f"{self.bandwidth:,.0f} [{min(self.bandwidth_mb_s):,.0f}-{max(self.bandwidth_mb_s):,.0f}]",
                f"{len(self.latency_s)} / {len(self.bandwidth_mb_s)}")


def time_store(label: str, first_byte: Callable[[], Any], whole: Callable[[], bytes], *, latency_repeats: int = 20,
               bandwidth_repeats: int = 3) -> StoreTiming:
    """Time ``first_byte()`` (a 1-byte ranged read) and ``whole()`` (one whole shard) on the same object."""
    latency = []
    for _ in range(latency_repeats):
        t = time.perf_counter()
        first_byte()
        latency.append(time.perf_counter() - t)
    bandwidth, size = [], 0
    for _ in range(bandwidth_repeats):
        t = time.perf_counter()
        size = len(whole())
        bandwidth.append(size / (time.perf_counter() - t) / 1e6)
    return StoreTiming(label, tuple(latency), tuple(bandwidth), size)


def time_s3(url: str, endpoint, **repeats: int) -> StoreTiming:
    """:func:`time_store` for an ``s3://`` object through s3fs (``endpoint``: an ``S3Endpoint``)."""
    fs, key = endpoint.filesystem(), url[len("s3://"):]
    return time_store(f"S3 API ({endpoint.describe()})", lambda: fs.cat_file(key, start=0, end=1),
                      lambda: fs.cat_file(key), **repeats)


def time_http(url: str, **repeats: int) -> StoreTiming:
    """:func:`time_store` for an HTTP URL (``Range: bytes=0-0``, then the whole body)."""
    def get(headers: dict[str, str]) -> bytes:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
            return r.read()
    return time_store("HTTP (http.server)", lambda: get({"Range": "bytes=0-0"}), lambda: get({}), **repeats)


def time_file(path: str, **repeats: int) -> StoreTiming:
    """:func:`time_store` for a local file (page cache warm after the first read)."""
    def read(n: int | None) -> bytes:
        with open(path, "rb") as f:
            return f.read(n) if n else f.read()
    return time_store("local file", lambda: read(1), lambda: read(None), **repeats)


def min_shard_bytes(latency_s: float, bandwidth_mb_s: float, overhead: float = 0.1) -> float:
    """Smallest shard whose request latency costs at most ``overhead`` of the time to read it."""
    if not 0 < overhead < 1:
        raise ValueError(f"overhead must be in (0, 1), got {overhead}")
    return (1 - overhead) / overhead * latency_s * bandwidth_mb_s * 1e6


def scaling_rows(layouts: Sequence[tuple[int, int]], *, num_workers: int, timing: StoreTiming,
                 dataset_samples: int, bytes_per_sample: float, shards: int, demand_samples_per_s: float,
                 overhead: float = 0.1) -> list[dict[str, Any]]:
    """One row per (nodes, GPUs per node): readers, the shard counts and sizes that keep them busy, bandwidth.

    ``shards``: how many the dataset has now; ``demand_samples_per_s``: what one GPU's training step consumes.
    ``latency within rule``: whether the shard count keeps the latency share <= ``overhead`` (chapter 06 §5).
    """
    dataset_bytes = dataset_samples * bytes_per_sample
    smallest = min_shard_bytes(timing.latency, timing.bandwidth, overhead)
    most_shards = max(1, int(dataset_bytes // smallest))           # more, and latency costs > overhead
    rows = []
    for nodes, gpus in layouts:
        ranks = nodes * gpus
        readers = ranks * num_workers
        fits = readers <= most_shards
        count = readers * max(1, most_shards // readers) if fits else readers   # a multiple of readers: equal counts
        node_demand = gpus * demand_samples_per_s * bytes_per_sample / 1e6
        rows.append({
            "layout": f"{nodes} x {gpus}", "ranks": ranks, "readers": readers,
            "shards now": shards, "idle readers now": max(0, readers - shards),
            "equal counts now": shards % readers == 0,
            "shards to use": count, "shard MB": dataset_bytes / count / 1e6,
            "latency share": (share := timing.latency / (timing.latency + dataset_bytes / count
                                                          / (timing.bandwidth * 1e6))),
            "latency within rule": share <= overhead + 1e-9,
            "samples per rank": dataset_samples // ranks,
            "node demand MB/s": node_demand,
            "streams per node needed": math.ceil(node_demand / timing.bandwidth),
            "streams per node": gpus * num_workers,
        })
    return rows
