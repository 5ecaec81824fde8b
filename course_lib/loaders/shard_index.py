"""Find and check a directory of numpy shards, reading only their headers (no sample data)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from data_gen.layout import NPY, WDS, format_dir, shard_glob
from data_gen.manifest import read_manifest

from .shard_errors import MissingShardError, ShardFormatError
from .vocabulary import renamed_keywords

REQUIRED_FIELDS = ("x", "y", "idx")


@dataclass(frozen=True)
class ShardHeader:
    """What a ``.npy`` header says: rows, record dtype, and where the data starts."""

    path: Path
    count: int
    dtype: np.dtype
    data_offset: int


def parse_npy_header(stream: BinaryIO) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran_order, dtype) from a stream at the start of ``.npy`` data; leaves it at the data.

    The seed's ``np.lib.format.read_array_header`` does not exist: the magic says which version's reader to use.
    """
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(stream)
    return np.lib.format.read_array_header_2_0(stream)


def read_header(path: Path) -> ShardHeader:
    """Read one shard's ``.npy`` header and check it holds a 1-D array of data_gen records."""
    try:
        with open(path, "rb") as f:
            shape, fortran, dtype = parse_npy_header(f)
            offset = f.tell()
    except (ValueError, OSError, EOFError) as e:
        raise ShardFormatError(f"{path}: not a readable .npy file ({e})") from e
    if len(shape) != 1 or fortran:
        raise ShardFormatError(f"{path}: expected a 1-D array of records, found shape {shape}")
    if dtype.names is None or any(f not in dtype.names for f in REQUIRED_FIELDS):
        raise ShardFormatError(f"{path}: expected record fields {REQUIRED_FIELDS}, found dtype {dtype}")
    return ShardHeader(Path(path), int(shape[0]), dtype, offset)


def count_samples(path: Path) -> int:
    """Samples in one shard, from its header alone."""
    return read_header(path).count


@dataclass(frozen=True)
class ShardIndex:
    """The checked shards of one dataset: paths, counts and global offsets."""

    shard_dir: Path
    headers: tuple[ShardHeader, ...]

    @property
    def paths(self) -> list[Path]:
        """Shard files, sorted."""
        return [h.path for h in self.headers]

    @property
    def counts(self) -> list[int]:
        """Samples per shard, from the headers."""
        return [h.count for h in self.headers]

    @property
    def offsets(self) -> np.ndarray:
        """Global id of each shard's first sample, with the total appended."""
        return np.concatenate([[0], np.cumsum(self.counts)]).astype(np.int64)

    @property
    def dtype(self) -> np.dtype:
        """The record dtype all shards share."""
        return self.headers[0].dtype

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one image."""
        return self.dtype["x"].shape

    @property
    def bytes_per_sample(self) -> int:
        """Bytes of one record."""
        return self.dtype.itemsize

    def __len__(self) -> int:
        return int(sum(self.counts))


def find_shard_dir(data_dir: str | Path) -> Path:
    """``data_dir/npy`` when it exists (a data_gen directory), else ``data_dir`` itself."""
    data_dir = Path(data_dir)
    if not data_dir.exists():
        raise MissingShardError(f"{data_dir}: no such directory")
    if not data_dir.is_dir():
        raise ShardFormatError(f"{data_dir}: not a directory")
    return format_dir(data_dir, NPY)


@renamed_keywords(root="data_dir")
def index_shards(data_dir: str | Path) -> ShardIndex:
    """Find the ``npy`` shards of ``data_dir``, check every header, size and the manifest's counts."""
    shard_dir = find_shard_dir(data_dir)
    paths = sorted(shard_dir.glob(shard_glob(NPY)))
    if not paths:
        raise MissingShardError(f"{shard_dir}: no {shard_glob(NPY)} files "
                                "(generate them with: python -m data_gen generate --out DIR)")
    headers = tuple(read_header(p) for p in paths)
    first = headers[0]
    for h in headers:
        if h.dtype != first.dtype:
            raise ShardFormatError(f"{h.path}: record dtype {h.dtype} differs from {first.path.name}'s {first.dtype}")
        expected = h.data_offset + h.count * h.dtype.itemsize
        size = h.path.stat().st_size
        if size != expected:
            raise ShardFormatError(f"{h.path}: {size} bytes on disk, header promises {expected} "
                             f"({h.count} records): truncated or corrupt")
    _check_manifest(shard_dir, headers)
    return ShardIndex(shard_dir, headers)


def manifest_counts(data_dir: str | Path, fmt: str = WDS) -> dict[str, int]:
    """``{"shard_0000.npy": samples, ...}`` for one format of a data_gen manifest ({} without a manifest)."""
    try:
        manifest = read_manifest(Path(data_dir))
    except ValueError as e:
        raise ShardFormatError(str(e)) from e
    if manifest is None:
        return {}
    entries = manifest["formats"].get(fmt, {}).get("shards", [])
    return {Path(e["file"]).name: int(e["samples"]) for e in entries if e}


def _check_manifest(shard_dir: Path, headers: tuple[ShardHeader, ...]) -> None:
    """If a data_gen manifest sits beside the shards, its per-file counts must match the headers."""
    if shard_dir.name != NPY:
        return
    listed = manifest_counts(shard_dir.parent, NPY)
    if not listed:
        return
    path = shard_dir.parent / "manifest.json"
    found = {h.path.name: h.count for h in headers}
    for name, count in listed.items():
        if name not in found:
            raise MissingShardError(f"{shard_dir / name}: listed in {path} but missing")
        if found[name] != count:
            raise ShardFormatError(f"{shard_dir / name}: header holds {found[name]} samples, {path} says {count}")
    for name in found.keys() - listed.keys():
        raise ShardFormatError(f"{shard_dir / name}: not listed in {path}")
