"""Find and check a directory of numpy shards, reading only their headers (no sample data).

A shard that is cut short is never memory-mapped short: ``handler="raise"`` (the default) names it;
``handler="warn"`` keeps its complete records, drops the rest and counts the samples lost in ``index.errors``
(the manifest's count when the header itself is unreadable)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data_gen.layout import NPY, WDS, format_dir, parse_npy_header, shard_glob
from data_gen.manifest import read_manifest

from .shard_errors import ErrorLog, MissingShardError, ShardFormatError

REQUIRED_FIELDS = ("x", "y", "idx")


@dataclass(frozen=True)
class ShardExpectation:
    """What the manifest says one shard holds: its samples and its size in bytes (None when unknown)."""

    samples: int
    bytes: int | None = None


@dataclass(frozen=True)
class ShardHeader:
    """What a ``.npy`` header says: rows, record dtype, and where the data starts."""

    path: Path
    count: int
    dtype: np.dtype
    data_offset: int


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
    errors: ErrorLog | None = None  # with handler="warn": the shards cut short, and the samples they lost

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


def index_shards(data_dir: str | Path, *, handler: str = "raise") -> ShardIndex:
    """Find the ``npy`` shards of ``data_dir``, check every header, size and the manifest's counts and sizes.

    ``handler="raise"``: a bad shard is a :class:`ShardFormatError` naming it. ``"warn"``: a shard cut short
    keeps its complete records, an unreadable one is left out, and each is counted in ``index.errors`` with
    the samples it lost.
    """
    errors = ErrorLog(handler)
    shard_dir = find_shard_dir(data_dir)
    paths = sorted(shard_dir.glob(shard_glob(NPY)))
    if not paths:
        raise MissingShardError(f"{shard_dir}: no {shard_glob(NPY)} files "
                                "(generate them with: python -m data_gen generate --out DIR)")
    listed = manifest_shards(shard_dir.parent, NPY) if shard_dir.name == NPY else {}
    _check_listed(shard_dir, paths, listed)
    read = []
    for path in paths:
        try:
            read.append(read_header(path))
        except ShardFormatError as e:
            want = listed.get(path.name)
            _lose(errors, f"{e}", want.samples if want else None)
    for h in read:
        if h.dtype != read[0].dtype:
            raise ShardFormatError(f"{h.path}: record dtype {h.dtype} differs from "
                                   f"{read[0].path.name}'s {read[0].dtype}")
    headers = [c for c in (_checked(h, listed.get(h.path.name), errors) for h in read) if c is not None]
    if not headers:
        raise ShardFormatError(f"{shard_dir}: no readable shard (every one is damaged: {errors.messages})")
    return ShardIndex(shard_dir, tuple(headers), errors if handler == "warn" else None)


def _checked(h: ShardHeader, want: ShardExpectation | None, errors: ErrorLog) -> ShardHeader | None:
    """``h`` when the file is whole; else an error (raise) or ``h`` cut to its complete records (warn)."""
    promised = h.data_offset + h.count * h.dtype.itemsize
    size = h.path.stat().st_size
    if want is not None and want.samples != h.count:
        raise ShardFormatError(f"{h.path}: header holds {h.count} samples, the manifest says {want.samples}")
    problems = []
    if size != promised:
        problems.append(f"{size:,} bytes on disk, header promises {promised:,} ({h.count} records)")
    if want is not None and want.bytes is not None and size != want.bytes and want.bytes != promised:
        problems.append(f"the manifest says {want.bytes:,} bytes")
    if not problems:
        return h
    whole = max(0, min(h.count, (size - h.data_offset) // h.dtype.itemsize))
    lost = h.count - whole
    message = f"{h.path}: truncated or corrupt ({'; '.join(problems)}): {lost:,} of {h.count:,} samples lost"
    if errors.mode == "raise":
        raise ShardFormatError(message)
    _lose(errors, message, lost)
    return ShardHeader(h.path, whole, h.dtype, h.data_offset) if whole else None


def _lose(errors: ErrorLog, message: str, lost: int | None) -> None:
    if errors.mode == "raise":
        raise ShardFormatError(message)
    if lost is None:
        message += " (no manifest: how many samples were lost is unknown)"
    elif "lost" not in message:
        message += f": {lost:,} samples lost"
    errors.skip(message, lost)


def manifest_counts(data_dir: str | Path, fmt: str = WDS) -> dict[str, int]:
    """``{"shard_0000.npy": samples, ...}`` for one format of a data_gen manifest ({} without a manifest)."""
    return {name: e.samples for name, e in manifest_shards(data_dir, fmt).items()}


def manifest_shards(data_dir: str | Path, fmt: str = WDS) -> dict[str, ShardExpectation]:
    """``{"shard_0000.tar": ShardExpectation(samples, bytes), ...}`` for one format ({} without a manifest)."""
    try:
        manifest = read_manifest(Path(data_dir))
    except ValueError as e:
        raise ShardFormatError(str(e)) from e
    if manifest is None:
        return {}
    entries = manifest["formats"].get(fmt, {}).get("shards", [])
    return {Path(e["file"]).name: ShardExpectation(int(e["samples"]), e.get("bytes")) for e in entries if e}


def _check_listed(shard_dir: Path, paths: list[Path], listed: dict[str, ShardExpectation]) -> None:
    """If a data_gen manifest sits beside the shards, the files must be the ones it lists."""
    if not listed:
        return
    path = shard_dir.parent / "manifest.json"
    found = {p.name for p in paths}
    for name in listed:
        if name not in found:
            raise MissingShardError(f"{shard_dir / name}: listed in {path} but missing")
    for name in sorted(found - listed.keys()):
        raise ShardFormatError(f"{shard_dir / name}: not listed in {path}")
