"""Read ``img`` tar shards (original JPEG/PNG bytes + label) with webdataset's stages, decoding with Pillow.

The decode-bound path for images converted with ``python -m data_gen convert``: every sample costs a decode,
so DataLoader workers pay here (unlike the copy-bound ``npy`` path). Decoding never unpickles: a sample
with any member other than ``jpg``/``png``, ``cls`` and ``idx`` is refused.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Sequence

import torch
import webdataset as wds
from torch.utils.data import default_collate

from data_gen.images import decode_image
from data_gen.layout import IMAGE_EXTENSIONS
from data_gen.manifest import read_manifest

from .shard_errors import ShardReadError
from .webdataset_pipeline import shard_urls

IMAGE_MEMBERS = {*IMAGE_EXTENSIONS, "cls", "idx"}


class DecodeImageSample:
    """``{"x": uint8 (C, H, W) tensor, "y": int, "idx": int}`` from one ``img`` sample (a class: it pickles)."""

    def __init__(self, shape: Sequence[int]):
        self.shape = tuple(int(d) for d in shape)

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        where = f"{sample.get('__url__', '?')}: sample {sample.get('__key__', '?')}"
        members = {k for k in sample if not k.startswith("__")}
        images = members & set(IMAGE_EXTENSIONS)
        if members - IMAGE_MEMBERS or len(images) != 1 or not {"cls", "idx"} <= members:
            raise ShardReadError(f"{where}: members {sorted(members)}; expected one of {list(IMAGE_EXTENSIONS)} "
                                 "plus cls and idx (nothing else is decoded: no pickle)")
        x = decode_image(sample[images.pop()], self.shape, where)
        return {"x": torch.from_numpy(x), "y": int(sample["cls"]), "idx": int(sample["idx"])}


def make_image_webdataset(source: str | Path | Sequence[str], shape: Sequence[int] | None = None, *,
                          batch_size: int | None = None, shuffle_buffer: int = 1000, seed: int = 0,
                          shardshuffle: bool = True) -> wds.DataPipeline:
    """The ``img`` shards of ``source`` (a data_gen directory, a folder of tars or URLs) as decoded samples.

    ``shape`` (C,H,W) defaults to the manifest's. Shards are shuffled with ``seed`` and split across DataLoader
    workers; samples pass a ``shuffle_buffer``; ``batch_size`` batches them (use ``DataLoader(batch_size=None)``).
    """
    if shape is None:
        manifest = read_manifest(Path(source)) if isinstance(source, (str, Path)) else None
        if manifest is None:
            raise ValueError(f"{source}: no manifest.json to take the image shape from: pass shape=(C, H, W)")
        shape = manifest["shape"]
    urls = shard_urls(source, "img")
    if shardshuffle:
        random.Random(seed).shuffle(urls)
    stages: list = [wds.SimpleShardList(urls), wds.split_by_worker, wds.tarfile_to_samples()]
    if shuffle_buffer:
        stages.append(wds.shuffle(shuffle_buffer, initial=shuffle_buffer, rng=random.Random(seed)))
    stages.append(wds.map(DecodeImageSample(shape)))
    if batch_size:
        stages.append(wds.batched(batch_size, collation_fn=default_collate, partial=True))
    return wds.DataPipeline(*stages)
