"""For teaching: the seed chapter's WebDataset JPEG pipeline, run with only its bugs fixed.

:data:`SEED_WEBDATASET_SOURCE` is the seed's example as printed. :func:`seed_jpeg_pipeline` is that
pipeline on the course's ``img`` shards: stock webdataset, ``.decode("pil")``, a per-sample
``train_transform``, ``.batched(...)``. Fixed: local shard paths instead of ``s3://`` (chapter 06 streams
remote shards), the label read from ``.cls`` (decimal text) instead of the pickled ``target.pt``, an explicit
``shardshuffle``, and a named identity function instead of ``lambda x: x`` (a lambda cannot be pickled, so
the pipeline would fail under the ``spawn``/``forkserver`` start methods). ``idx`` is kept for counting.
Kept as the seed wrote it: webdataset's default decoders (they would also unpickle ``.pyd``/``.pickle``
members), ``partial=False`` (each worker drops its last short batch).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

SEED_WEBDATASET_SOURCE = '''\
import webdataset as wds
dataset = (
    wds.WebDataset("s3://my-bucket/data/{000000..000999}.tar")
    .shuffle(1000)
    .decode("pil")
    .to_tuple("input.jpg", "target.pt")
    .map_tuple(train_transform, lambda x: x) # Apply transforms
    .batched(32, partial=False)
)
loader = wds.WebLoader(dataset, num_workers=4, batch_size=None)
'''


def keep(value: Any) -> Any:
    """The identity: what the seed's ``lambda x: x`` does, but picklable."""
    return value


def seed_jpeg_pipeline(source: str | Path | Sequence[str | Path], transform: Callable, *, batch_size: int = 32,
                       shuffle_buffer: int = 1000, seed: int = 0):
    """The seed's ``wds.WebDataset(...).shuffle().decode("pil").to_tuple().map_tuple().batched()`` over
    ``img`` shards; yields ``(images, labels, idx)`` batches. Use with ``DataLoader(batch_size=None)``."""
    import webdataset as wds

    from ..loaders.image_pipeline import image_shards

    paths, _ = image_shards(source)
    urls = [str(p) for p in paths]
    return (wds.WebDataset(urls, shardshuffle=len(urls), seed=seed, empty_check=False)
            .shuffle(shuffle_buffer)
            .decode("pil")
            .to_tuple("jpg;jpeg;png", "cls", "idx")
            .map_tuple(transform, keep, int)
            .batched(batch_size, partial=False))


def seed_style_shard(image_dir: str | Path, out: str | Path) -> Path:
    """A one-sample shard the way the seed stores its label: the first image of ``image_dir`` plus a
    ``target.pt`` member written by ``torch.save`` (a pickle). For showing that it is refused."""
    import io

    import torch
    import webdataset as wds

    from ..loaders.image_pipeline import image_shards, read_image_shard

    paths, _ = image_shards(image_dir)
    first = read_image_shard(paths[0])[0]
    target = io.BytesIO()
    torch.save(torch.tensor(first.y), target)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with wds.TarWriter(str(out), encoder=False, mtime=0) as sink:
        sink.write({"__key__": first.key, "jpg": first.data, "target.pt": target.getvalue(),
                    "cls": str(first.y).encode(), "idx": str(first.idx).encode()})
    return out
