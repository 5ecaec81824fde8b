"""torchdata's ``StatefulDataLoader`` over the course's own datasets, timed beside a plain ``DataLoader`` over the
same datasets in the same peer subprocess (so the ratio is resumability's cost, not a difference of processes)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from torch.utils.data import DataLoader

from ..loaders.image_pipeline import ImageShardDataset
from ..loaders.mmap_shards import MmapShardDataset
from ..loaders.shard_index import index_shards
from .regime_runs import LoaderSpec
from .regimes import jpeg_bytes_per_sample


def torchdata_specs(image_dir: Path, peers_dir: Path, *, batch_size: int, crop_size: int, seed: int = 0,
                    timings: dict[str, float]) -> list[LoaderSpec]:
    """torchdata's StatefulDataLoader (resumable) over the course's own datasets: what resumability costs, timed
    in alternation with a plain ``DataLoader`` over the same datasets in the same process (library ``course, same
    process``), so the ratio is not a difference between this subprocess and the caller's (issue 22 item 16)."""
    from torchdata.stateful_dataloader import StatefulDataLoader  # noqa: F401  (fail here if missing)

    raw_args, jpeg_args = (MmapShardDataset, image_dir), (ImageShardDataset, image_dir)
    raw_kw = dict(shuffle="block", batch_size=batch_size, seed=seed)
    jpeg_kw = dict(batch_size=batch_size, size=crop_size, seed=seed)
    raw, jpeg = _Stateful(*raw_args, **raw_kw), _Stateful(*jpeg_args, **jpeg_kw)
    plain_raw, plain_jpeg = _Stateful(*raw_args, plain=True, **raw_kw), _Stateful(*jpeg_args, plain=True, **jpeg_kw)
    raw_bytes, jpeg_bytes = index_shards(image_dir).bytes_per_sample, jpeg_bytes_per_sample(image_dir)
    return [LoaderSpec("StatefulDataLoader over MmapShardDataset", "torchdata", "raw", raw, raw_bytes, raw.dataset,
                       wraps_course=True),
            LoaderSpec("DataLoader over MmapShardDataset", SAME_PROCESS, "raw", plain_raw, raw_bytes,
                       wraps_course=True),
            LoaderSpec("StatefulDataLoader over ImageShardDataset", "torchdata", "JPEG", jpeg, jpeg_bytes,
                       wraps_course=True),
            LoaderSpec("DataLoader over ImageShardDataset", SAME_PROCESS, "JPEG", plain_jpeg, jpeg_bytes,
                       wraps_course=True)]


SAME_PROCESS = "course, same process"  # the course's loaders timed beside torchdata's, in its subprocess


class _Stateful:
    def __init__(self, cls, *args: Any, plain: bool = False, **kwargs: Any):
        self.cls, self.args, self.kwargs, self.plain = cls, args, kwargs, plain

    def dataset(self):
        return self.cls(*self.args, **self.kwargs)

    def __call__(self, num_workers: int):
        from torchdata.stateful_dataloader import StatefulDataLoader

        make = DataLoader if self.plain else StatefulDataLoader
        return make(self.dataset(), batch_size=None, num_workers=num_workers)
