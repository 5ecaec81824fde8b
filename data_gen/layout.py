"""The on-disk layout data_gen writes and course_lib reads: record dtype, file names, manifest fields.

One numpy shard ``npy/shard_0000.npy`` is a 1-D structured array, one record per sample::

    x    uint8, shape ``shape``   the image (channels, height, width)
    y    int64                     the class label
    idx  int64                     the sample's global index (proves exactly-once delivery)

The dtype is built with ``align=True``, so every record is padded to a multiple of 8 bytes and the
int64 fields stay aligned (torch can view them without a copy). Read a shard with
``np.load(path, mmap_mode="r", allow_pickle=False)``.

One WebDataset shard ``wds/shard_0000.tar`` holds, per sample with key ``%09d`` of its index, the
members ``<key>.x.npy`` (the image as ``.npy`` bytes), ``<key>.cls`` and ``<key>.idx`` (decimal text).

One block-WebDataset shard ``wdsb/shard_0000.tar`` holds the same samples pre-batched: per block of
``WDS_BLOCK`` consecutive samples (key = index of its first sample) the members ``<key>.x.npy``
(``(n, *shape)`` uint8), ``<key>.y.npy`` and ``<key>.idx.npy`` (``(n,)`` int64). Few large members make
the tar cheap to parse: the fast WebDataset path.

One image-WebDataset shard ``img/shard_0000.tar`` holds, per sample with key ``%09d`` of its index, the
encoded image as it would be stored on disk (``<key>.jpg`` or ``<key>.png``: compressed bytes, decoded by the
reader — the decode-bound regime), ``<key>.cls`` and ``<key>.idx`` (decimal text). Nothing in it is a pickle.
"""
from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import numpy as np

FORMAT_VERSION = 1
NPY, WDS, WDSB, IMG = "npy", "wds", "wdsb", "img"   # format names, also the sub-folders of a data_dir
FORMATS = (NPY, WDS, WDSB)     # what generate writes by default
ALL_FORMATS = FORMATS + (IMG,)  # img (JPEG members) on request: ``formats=[..., "img"]``
WDS_BLOCK = 256
SHARD_NAME = "shard_{:04d}"
EXTENSIONS = {NPY: ".npy", WDS: ".tar", WDSB: ".tar", IMG: ".tar"}
IMAGE_EXTENSIONS = ("jpg", "png")  # the image members an ``img`` shard may carry
MANIFEST_NAME = "manifest.json"
KEY_WIDTH = 9


def record_dtype(shape: tuple[int, ...]) -> np.dtype:
    """The structured dtype of one sample record in a numpy shard."""
    return np.dtype([("x", np.uint8, tuple(shape)), ("y", "<i8"), ("idx", "<i8")], align=True)


def shard_file(fmt: str, shard: int) -> str:
    """Relative path of shard number ``shard`` of format ``fmt`` (e.g. ``npy/shard_0003.npy``)."""
    return f"{fmt}/{SHARD_NAME.format(shard)}{EXTENSIONS[fmt]}"


def shard_glob(fmt: str) -> str:
    """The glob that finds every shard of format ``fmt`` in its folder (e.g. ``shard_*.npy``)."""
    return f"{SHARD_NAME.split('{')[0]}*{EXTENSIONS[fmt]}"


def format_dir(data_dir: str | Path, fmt: str) -> Path:
    """The folder holding ``fmt`` shards: ``data_dir/fmt`` in a data_gen directory, else ``data_dir`` itself."""
    data_dir = Path(data_dir)
    return data_dir / fmt if (data_dir / fmt).is_dir() else data_dir


def sample_key(index: int) -> str:
    """The WebDataset key of a sample: its global index, zero-padded."""
    return f"{index:0{KEY_WIDTH}d}"


def shard_ranges(samples: int, shard_size: int) -> list[tuple[int, int]]:
    """The ``[start, stop)`` global index range of each shard."""
    return [(s, min(s + shard_size, samples)) for s in range(0, samples, shard_size)]


def parse_npy_header(stream: BinaryIO) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran_order, dtype) from a stream at the start of ``.npy`` data; leaves it at the data.

    The seed's ``np.lib.format.read_array_header`` does not exist: the magic says which version's reader to use.
    """
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(stream)
    return np.lib.format.read_array_header_2_0(stream)
