"""Solutions to the chapters' exercises, one function each, registered by exercise name (see ``exercises``).

Open this file when you are stuck; ``make course`` and CI run every solution through its chapter's check.
"""
from __future__ import annotations

import numpy as np
from torch.utils.data import get_worker_info

from ..teaching.naive import SeedStreamingDataset
from .exercises import solution  # noqa: F401  (chapters add their solutions below)


@solution("00_setup_and_data")
def npy_header_bytes(manifest: dict, record_bytes: int) -> int:
    """Bytes of the first numpy shard that are not records: its size minus samples x record size."""
    entry = manifest["formats"]["npy"]["shards"][0]
    return entry["bytes"] - entry["samples"] * record_bytes


@solution("01_naive_loading")
def read_file_ids(files_dir) -> list[int]:
    """The ``idx`` of every one-sample ``.npy`` file, in file-name order: one open per sample."""
    from pathlib import Path

    import numpy as np

    return [int(np.load(path, allow_pickle=False)[0]["idx"]) for path in sorted(Path(files_dir).glob("sample_*.npy"))]


@solution("01_naive_loading:memory")
def largest_dataset_gb(slope: float) -> float:
    """GB of data that fit in the memory available now, at ``max(slope, 1)`` bytes of RAM per byte of data."""
    from ..measure.memory import available_mb

    return available_mb() / 1e3 / max(slope, 1.0)


@solution("03_webdataset")
def split_by_rank(subset: list[str]):
    """Each of two ranks' sample ids: one pipeline per rank, shards split by ``rank``/``world_size``."""
    from ..loaders.webdataset_pipeline import make_webdataset
    from ..measure.shuffle_quality import arrival_order

    return tuple(arrival_order(make_webdataset(subset, rank=r, world_size=2)) for r in range(2))


@solution("04_reproducible_epochs")
def checkpoint_by_hand(make_ds, num_workers: int):
    """Stop after 3 batches, save ``state_dict(samples_seen=...)``, resume in a new dataset: (seen, rest)."""
    from torch.utils.data import DataLoader

    from ..measure.shuffle_quality import arrival_order

    ds, seen = make_ds(), []
    for k, batch in enumerate(DataLoader(ds, batch_size=None, num_workers=num_workers)):
        seen += batch["idx"].tolist()
        if k == 2:
            break
    state = ds.state_dict(samples_seen=len(seen))
    resumed = make_ds()
    resumed.load_state_dict(state)
    return seen, arrival_order(DataLoader(resumed, batch_size=None, num_workers=num_workers)).tolist()


@solution("07_your_own_data")
def class_counts(data_dir):
    """Samples per class name in a converted dataset: labels from its npy shards, names from its manifest."""
    from pathlib import Path

    import numpy as np

    from data_gen import read_manifest

    from ..loaders.shard_index import index_shards

    manifest = read_manifest(Path(data_dir))
    names = manifest["class_names"] or [str(i) for i in range(manifest["classes"])]
    counts = np.zeros(len(names), dtype=np.int64)
    for path in index_shards(data_dir).paths:
        counts += np.bincount(np.load(path, mmap_mode="r")["y"], minlength=len(names))
    return {name: int(n) for name, n in zip(names, counts)}


@solution("05_throughput_comparison")
def pick_num_workers(rows, loader="decode at crop size + batch transform", within=0.9):
    """Chapter 05: the smallest worker count whose measured rate is within 10% of the best one."""
    mine = [r for r in rows if r["loader"] == loader and r["regime"] == "JPEG"]
    top = max(r["samples_per_s"] for r in mine)
    return min(r["num_workers"] for r in mine if r["samples_per_s"] >= within * top)



class WorkerSplitSeedDataset(SeedStreamingDataset):
    """Chapter 02's exercise: the seed's dataset with bug 3 fixed, each DataLoader worker reading only the
    shards ``shards[worker::num_workers]`` (``get_worker_info()`` is None in the main process)."""

    def __iter__(self):
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info else (0, 1)
        for shard in self.shards[worker::num_workers]:
            data = np.load(shard, mmap_mode="r")
            for idx in np.random.permutation(len(data)):
                yield data[idx]


@solution("02_mmap_streaming")
def worker_split_seed_dataset():
    """Chapter 02: the class above (a class at module level, so DataLoader workers can pickle it)."""
    return WorkerSplitSeedDataset


@solution("06_rank_worker_split")
def rank_worker_split(counts, *, seed, epoch, batch_size, world_size, num_workers):
    """Chapter 06: the ids each (rank, worker) reads, in order, from the epoch plan MmapShardDataset follows."""
    import numpy as np

    from ..loaders.epoch_plan import EpochPlan
    import inspect

    from ..loaders.mmap_shards import MmapShardDataset, default_run_length

    readers = {}
    window_blocks = inspect.signature(MmapShardDataset).parameters["window_blocks"].default  # as ddp_stream builds it
    for rank in range(world_size):
        plan = EpochPlan(counts, seed=seed, epoch=epoch, rank=rank, world_size=world_size,
                         window_blocks=window_blocks, run_length=default_run_length(batch_size, window_blocks))
        for worker in range(num_workers):
            units = list(plan.worker_units(worker, num_workers, batch_size))
            readers[(rank, worker)] = units if units else [np.empty(0, dtype=np.int64)]
    return readers


@solution("06_equal_batches")
def equal_batches(samples_per_rank, *, batch_size):
    """Chapter 06: the most full batches every rank can run without any rank repeating a sample."""
    return min(samples_per_rank) // batch_size
