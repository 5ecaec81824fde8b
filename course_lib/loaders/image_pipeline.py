"""The course's decode-bound path: ``img`` shards (encoded JPEG/PNG + label) to normalized float batches.

What makes it faster than the seed's ``.decode("pil").map_tuple(train_transform)`` at equal workers:

- a shard is read with one ``read`` and its tar headers are parsed straight from memory (no per-member
  stream reads, no per-sample dict of handlers);
- the random crop is drawn *before* decoding, so a JPEG is decoded at the smallest DCT scale that still
  covers the crop at the output size (simplejpeg's ``min_height``/``min_width``, or Pillow's ``draft``), then
  cropped and resized in uint8 by one Pillow call;
- flip, float conversion and normalization run once per batch (:func:`finish_batch`), not per sample.

The epoch's order is a function of (seed, epoch): shards are permuted, split by rank and by DataLoader
worker, and the samples of a window of ``window_shards`` shards are permuted together. Every sample arrives
exactly once per epoch whatever the worker count (a worker's last batch may be short). Members other than
one image (``.jpg``/``.jpeg``/``.png``), ``.cls`` and ``.idx`` are refused: a ``.pt`` or ``.pickle`` member
would be unpickled by webdataset's default decoders. The dataset pickles (no lambdas): it works under the
``fork``, ``spawn`` and ``forkserver`` start methods.
"""
from __future__ import annotations

import io
import json
import math
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from data_gen.layout import MANIFEST_NAME

from .image_transforms import MEAN, RATIO, SCALE, STD, crop_box, finish_batch
from .shard_errors import ShardError

IMAGE_MEMBERS = {"jpg": "jpeg", "jpeg": "jpeg", "png": "png"}
LABEL_MEMBERS = ("cls", "idx")
BLOCK = 512


class ImageShardError(ShardError):
    """An ``img`` shard that cannot be read: the message names the shard (and the sample)."""


@dataclass(frozen=True)
class EncodedSample:
    """One sample of an ``img`` shard: its encoded image bytes, their kind, label and global index."""

    key: str
    data: bytes
    kind: str  # "jpeg" or "png"
    y: int
    idx: int


def image_shards(source: str | Path | Sequence[str | Path]) -> tuple[list[Path], dict[str, int]]:
    """The ``img`` shard paths of ``source`` and, when a manifest lists them, their sample counts by file name.

    ``source``: a data_gen directory (its ``img/`` shards), a folder of ``.tar`` files, or a list of paths.
    """
    if isinstance(source, (list, tuple)):
        paths = [Path(p) for p in source]
        counts: dict[str, int] = {}
    else:
        root = Path(source)
        folder = root / "img" if (root / "img").is_dir() else root
        if not folder.is_dir():
            raise ImageShardError(f"{root}: no such directory (expected a data_gen directory with img/ shards)")
        paths = sorted(folder.glob("shard_*.tar")) or sorted(folder.glob("*.tar"))
        counts = _manifest_counts(root)
    if not paths:
        raise ImageShardError(f"{source}: no img shards (.tar) found; generate them with "
                              "`python -m data_gen generate --formats npy,img ...`")
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise ImageShardError(f"{len(missing)} shard(s) missing: {', '.join(missing)}")
    return paths, counts


def _manifest_counts(root: Path) -> dict[str, int]:
    path = root / MANIFEST_NAME
    if not path.exists():
        return {}
    shards = json.loads(path.read_text()).get("formats", {}).get("img", {}).get("shards", [])
    return {Path(e["file"]).name: int(e["samples"]) for e in shards if e}


def read_image_shard(path: str | Path, expected: int | None = None) -> list[EncodedSample]:
    """Every sample of one ``img`` tar, in file order; errors name the shard and the sample.

    ``expected`` (the manifest's count) turns a shard that ends early at a member boundary into an error
    instead of a silently shorter epoch.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ImageShardError(f"{path}: {e.strerror}") from e
    members = _members(data, path)
    samples = _group(members, path)
    if expected is not None and len(samples) != expected:
        raise ImageShardError(f"{path}: {len(samples)} samples, the manifest says {expected} "
                              f"({expected - len(samples)} lost: truncated?)")
    return samples


def _members(data: bytes, path: Path) -> list[tuple[str, memoryview]]:
    """(name, bytes) of each regular member; a plain ustar parse, tarfile for anything unusual."""
    view, out, pos = memoryview(data), [], 0
    while pos + BLOCK <= len(data):
        header = data[pos:pos + BLOCK]
        if header == bytes(BLOCK):
            return out  # end-of-archive
        kind = header[156:157]
        if kind not in (b"0", b"\0", b"5") or header[124] & 0x80:
            return _members_tarfile(data, path)  # pax/GNU long names, base-256 sizes: let tarfile do it
        try:
            size = int(header[124:136].split(b"\0", 1)[0].strip() or b"0", 8)
            checksum = int(header[148:156].split(b"\0", 1)[0].strip() or b"-1", 8)
        except ValueError:
            raise ImageShardError(f"{path}: bad tar header at byte {pos}") from None
        if checksum != int(np.frombuffer(header, dtype=np.uint8).sum()) - sum(header[148:156]) + 256:
            raise ImageShardError(f"{path}: bad tar header checksum at byte {pos} (corrupt shard)")
        name = header[:100].split(b"\0", 1)[0].decode()
        if header[257:262] == b"ustar" and header[345]:
            name = header[345:500].split(b"\0", 1)[0].decode() + "/" + name
        start = pos + BLOCK
        if start + size > len(data):
            raise ImageShardError(f"{path}: member {name} runs past the end of the file (truncated shard)")
        if kind != b"5":
            out.append((name, view[start:start + size]))
        pos = start + -(-size // BLOCK) * BLOCK
    if pos < len(data) or not out:
        raise ImageShardError(f"{path}: ends inside a tar header at byte {pos} (truncated shard)")
    return out  # no end-of-archive blocks: a count check (manifest) decides whether samples are missing


def _members_tarfile(data: bytes, path: Path) -> list[tuple[str, memoryview]]:
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            view = memoryview(data)
            return [(m.name, view[m.offset_data:m.offset_data + m.size]) for m in tar if m.isreg()]
    except tarfile.TarError as e:
        raise ImageShardError(f"{path}: not a readable tar ({e})") from e


def _group(members: list[tuple[str, memoryview]], path: Path) -> list[EncodedSample]:
    """Members grouped by key (the name up to its first dot, after the last slash)."""
    grouped: dict[str, dict[str, memoryview]] = {}
    for name, payload in members:
        base = name.rsplit("/", 1)[-1]
        key, dot, ext = base.partition(".")
        if not dot:
            raise ImageShardError(f"{path}: member {name!r} has no extension")
        grouped.setdefault(key, {})[ext.lower()] = payload
    samples = []
    for key, parts in grouped.items():
        where = f"{path}: sample {key}"
        images = [e for e in parts if e in IMAGE_MEMBERS]
        extra = sorted(e for e in parts if e not in IMAGE_MEMBERS and e not in LABEL_MEMBERS)
        if extra:
            raise ImageShardError(f"{where}: member(s) {extra} refused — an img shard holds one image "
                                  f"({'/'.join(IMAGE_MEMBERS)}), .cls and .idx (pickle-based members such as "
                                  ".pt/.pyd/.pickle can run code when decoded)")
        if len(images) != 1 or any(m not in parts for m in LABEL_MEMBERS):
            raise ImageShardError(f"{where}: needs one image and .cls and .idx, has {sorted(parts)}")
        try:
            y, idx = int(bytes(parts["cls"])), int(bytes(parts["idx"]))
        except ValueError as e:
            raise ImageShardError(f"{where}: bad label ({e})") from e
        samples.append(EncodedSample(key, bytes(parts[images[0]]), IMAGE_MEMBERS[images[0]], y, idx))
    return samples


def _simplejpeg():
    try:
        import simplejpeg
        return simplejpeg
    except ImportError:  # the Pillow path below does the same work, a little slower
        return None


def decode_crop(sample: EncodedSample, size: int, rng: np.random.Generator | None, out: np.ndarray, *,
                scale: tuple[float, float] = SCALE, ratio: tuple[float, float] = RATIO,
                decoder: str = "auto") -> None:
    """Decode ``sample`` into ``out`` (``(size, size, 3)`` uint8): a random resized crop, or the whole image
    resized when ``rng`` is None. The JPEG is decoded at the smallest scale that still covers the crop."""
    from PIL import Image

    try:
        jpeg = sample.kind == "jpeg"
        sj = _simplejpeg() if jpeg and decoder in ("auto", "simplejpeg") else None
        if sj is not None:
            height, width, _, _ = sj.decode_jpeg_header(sample.data)
        else:
            image = Image.open(io.BytesIO(sample.data))
            width, height = image.size
        if rng is None:
            top, left, h, w = 0, 0, height, width
        else:
            top, left, h, w = crop_box(height, width, rng.random, scale, ratio)
        need_h, need_w = math.ceil(height * size / h), math.ceil(width * size / w)  # decoded size that covers it
        if sj is not None:
            decoded = sj.decode_jpeg(sample.data, colorspace="RGB", min_height=min(need_h, height),
                                     min_width=min(need_w, width))
            image = Image.fromarray(decoded)
        elif jpeg:
            image.draft("RGB", (min(need_w, width), min(need_h, height)))
        fy, fx = image.size[1] / height, image.size[0] / width
        if image.mode != "RGB":
            image = image.convert("RGB")
        box = (left * fx, top * fy, (left + w) * fx, (top + h) * fy)
        out[...] = np.asarray(image.resize((size, size), Image.BILINEAR, box=box))
    except ImageShardError:
        raise
    except Exception as e:  # noqa: BLE001 - any decoder error names the sample
        raise ImageShardError(f"sample {sample.key} (idx {sample.idx}): cannot decode its {sample.kind} "
                              f"image ({type(e).__name__}: {e})") from e


class ImageShardDataset(IterableDataset):
    """Batches ``{"x": float32 (B, 3, size, size), "y": int64 (B,), "idx": int64 (B,)}`` from ``img`` shards.

    Use with ``DataLoader(ds, batch_size=None, num_workers=N)``. ``augment=False`` resizes whole images
    (evaluation); ``shuffle=False`` keeps file order; ``decode=False`` yields only ``y``/``idx`` (the order,
    for shuffle statistics, without the decoding cost). ``decoder``: ``"auto"`` (simplejpeg when installed,
    else Pillow), ``"simplejpeg"`` or ``"pillow"``.
    """

    def __init__(self, source: str | Path | Sequence[str | Path], *, batch_size: int = 64, size: int = 64,
                 seed: int = 0, epoch: int = 0, shuffle: bool = True, window_shards: int = 2,
                 augment: bool = True, scale: tuple[float, float] = SCALE, ratio: tuple[float, float] = RATIO,
                 mean: tuple[float, ...] = MEAN, std: tuple[float, ...] = STD, decoder: str = "auto",
                 decode: bool = True, rank: int = 0, world_size: int = 1):
        super().__init__()
        if batch_size < 1 or size < 1 or window_shards < 1:
            raise ValueError(f"batch_size, size and window_shards must be >= 1, got {batch_size}, {size}, "
                             f"{window_shards}")
        if decoder not in ("auto", "simplejpeg", "pillow"):
            raise ValueError(f"decoder must be 'auto', 'simplejpeg' or 'pillow', got {decoder!r}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size), got rank={rank}, world_size={world_size}")
        self.paths, self.counts = image_shards(source)
        self.batch_size, self.size, self.seed, self.epoch = int(batch_size), int(size), int(seed), int(epoch)
        self.shuffle, self.window_shards, self.augment = shuffle, int(window_shards), augment
        self.scale, self.ratio, self.mean, self.std = tuple(scale), tuple(ratio), tuple(mean), tuple(std)
        self.decoder, self.decode, self.rank, self.world_size = decoder, decode, rank, world_size

    def __len__(self) -> int:
        """Samples per epoch (from the manifest, else by reading the shards' headers)."""
        if all(p.name in self.counts for p in self.paths):
            return sum(self.counts[p.name] for p in self.paths)
        return sum(len(_group(_members(p.read_bytes(), p), p)) for p in self.paths)

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle for ``epoch``; the order is a pure function of (seed, epoch)."""
        self.epoch = int(epoch)

    def shard_order(self, worker: int = 0, num_workers: int = 1) -> list[int]:
        """The shards one (rank, worker) reads this epoch, in order: permuted, then split by rank and worker."""
        order = np.arange(len(self.paths))
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.paths))
        return order[self.rank::self.world_size][worker::num_workers].tolist()

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        rng = np.random.default_rng([self.seed, self.epoch, self.rank, worker, 1])      # the order
        augment_rng = np.random.default_rng([self.seed, self.epoch, self.rank, worker, 2])  # crops and flips
        mine = self.shard_order(worker, workers)
        held: list[EncodedSample] = []
        for start in range(0, len(mine), self.window_shards):
            for i in mine[start:start + self.window_shards]:
                path = self.paths[i]
                held += read_image_shard(path, self.counts.get(path.name))
            if self.shuffle:
                held = [held[j] for j in rng.permutation(len(held))]
            full = len(held) - len(held) % self.batch_size
            for b in range(0, full, self.batch_size):
                yield self._batch(held[b:b + self.batch_size], augment_rng)
            held = held[full:]  # the remainder joins the next window's samples
        if held:
            yield self._batch(held, augment_rng)

    def _batch(self, samples: list[EncodedSample], rng: np.random.Generator) -> dict[str, torch.Tensor]:
        y = torch.tensor([s.y for s in samples], dtype=torch.int64)
        idx = torch.tensor([s.idx for s in samples], dtype=torch.int64)
        if not self.decode:
            return {"y": y, "idx": idx}
        images = np.empty((len(samples), self.size, self.size, 3), dtype=np.uint8)
        crop_rng = rng if self.augment else None
        for i, sample in enumerate(samples):
            decode_crop(sample, self.size, crop_rng, images[i], scale=self.scale, ratio=self.ratio,
                        decoder=self.decoder)
        flips = rng.random(len(samples)) < 0.5 if self.augment else None
        return {"x": finish_batch(images, flips, mean=self.mean, std=self.std), "y": y, "idx": idx}
