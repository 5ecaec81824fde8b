"""When converting on a Ray cluster pays: both engines timed on one source, and the arithmetic they imply.

The local engine writes one shard after another in one process: ``per_shard_s`` each. The Ray engine pays a
start-up (``ray_start_s``: its daemons; ``first_task_wait_s``: its workers starting and importing), then runs
shards as tasks, each ``task_work_s`` of work plus what Ray adds between two tasks of a warm worker
(``task_gap_s``: scheduling, moving arguments and results). On ``N`` cores ``S`` shards then take about
``start + wait + ceil(S / N) * (work + gap) + stop``: it beats one process once ``N`` repays the fixed costs,
which :func:`cores_to_beat_local` solves for.
These are this machine's figures: a cluster's start-up and network add to them, so read the result as a bound.
"""
from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from data_gen import convert


@dataclass(frozen=True)
class ConversionTimings:
    """Both engines on the same source, in seconds (``local_s``: the local engine writing its shards, after
    opening the source); ``same_bytes``: every shard's sha256 equal."""

    shards: int
    local_s: float
    ray_start_s: float
    ray_tasks_s: float
    ray_stop_s: float
    first_task_wait_s: float
    task_work_s: float
    task_gap_s: float
    ray_cpus: int
    same_bytes: bool

    @property
    def per_shard_s(self) -> float:
        """One shard's work in one process (the local engine's time over its shards)."""
        return self.local_s / self.shards

    @property
    def per_task_s(self) -> float:
        """One shard as a warm Ray task: its work plus the gap before the next (the gap is 0 if never seen)."""
        return self.task_work_s + (0.0 if math.isnan(self.task_gap_s) else max(0.0, self.task_gap_s))

    @property
    def fixed_s(self) -> float:
        """What a Ray conversion pays whatever its size: start, the first task's wait, stop."""
        return self.ray_start_s + self.first_task_wait_s + self.ray_stop_s


def time_conversions(src: str | Path, work_dir: str | Path, *, shard_size: int, formats: Sequence[str] | None = None,
                     num_cpus: int | None = None, seed: int = 0) -> ConversionTimings:
    """Convert ``src`` with each engine into ``work_dir/local`` and ``work_dir/ray`` (replaced), timing both."""
    work_dir = Path(work_dir)
    outs = {engine: work_dir / engine for engine in ("local", "ray")}
    for out in outs.values():
        shutil.rmtree(out, ignore_errors=True)
    args: dict[str, Any] = dict(shard_size=shard_size, formats=formats, seed=seed, progress=False, report=None)
    local_times: dict[str, float] = {}
    local = convert(src, outs["local"], timings=local_times, **args)
    ray_times: dict[str, float] = {}
    remote = convert(src, outs["ray"], engine="ray", num_cpus=num_cpus, timings=ray_times, **args)
    renamed = {"start_s": "ray_start_s", "tasks_s": "ray_tasks_s", "stop_s": "ray_stop_s"}
    fields = {renamed.get(key, key): ray_times[key] for key in ("start_s", "tasks_s", "stop_s", "first_task_wait_s",
                                                               "task_work_s", "task_gap_s")}
    return ConversionTimings(shards=len(local["convert"]["plan"]), local_s=local_times["write_s"],
                             ray_cpus=int(num_cpus or _cpus()), same_bytes=_hashes(local) == _hashes(remote), **fields)


def cluster_seconds(t: ConversionTimings, shards: int, cores: int) -> float:
    """Predicted Ray conversion time of ``shards`` shards on ``cores`` cores (start-up and stop included)."""
    return t.fixed_s + math.ceil(shards / cores) * t.per_task_s


def cores_to_beat_local(t: ConversionTimings, shards: int) -> int | None:
    """The fewest cores on which Ray converts ``shards`` shards faster than one local process; None if none can."""
    local = shards * t.per_shard_s
    if cluster_seconds(t, shards, shards) >= local:   # even one wave of tasks cannot repay the start-up
        return None
    low, high = 1, shards
    while low < high:   # cluster_seconds only falls as cores grow: bisect for the first that beats local
        mid = (low + high) // 2
        low, high = (mid + 1, high) if cluster_seconds(t, shards, mid) >= local else (low, mid)
    return low


def scale_rows(t: ConversionTimings, dataset_shards: Sequence[int], cores: Sequence[int]) -> list[dict[str, Any]]:
    """Per dataset size: hours in one local process and on each core count, and the cores that beat local."""
    rows = []
    for shards in dataset_shards:
        row: dict[str, Any] = {"shards": shards, "one process, h": shards * t.per_shard_s / 3600}
        row.update({f"ray on {n} cores, h": cluster_seconds(t, shards, n) / 3600 for n in cores})
        row["cores to beat one process"] = cores_to_beat_local(t, shards)
        rows.append(row)
    return rows


def _hashes(manifest: dict[str, Any]) -> dict[str, list[str]]:
    return {fmt: [e["sha256"] for e in info["shards"]] for fmt, info in manifest["formats"].items()}


def _cpus() -> int:
    import os

    return os.cpu_count() or 1
