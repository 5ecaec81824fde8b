"""Arrays as a source: ``x.npy`` + ``y.npy`` or an ``.npz`` (memory-mapped, or streamed when compressed), and a
folder of one-record ``.npy`` files."""
from __future__ import annotations

import os
import struct
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .layout import parse_npy_header
from .source_items import ARRAY_MEMBERS, READ_CHUNK, BadSample, Chunk, SourceError, _good_items, _hash_lines


class _NpyArray:
    """One ``.npy`` array, memory-mapped: only the header is read until rows are asked for."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise SourceError(f"{path}: not a readable .npy array ({e})") from e
        self.shape, self.dtype = self.array.shape, self.array.dtype

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Rows ``[start, stop)``: a view of the mapped file (read when copied)."""
        return self.array[start:stop]

    def close(self) -> None:
        """Unmap the file."""
        self.array = None


def _gather(array, rows: np.ndarray) -> np.ndarray:
    """``array``'s ``rows`` in that order, read in file order (sorted) from its map: one pass over the file."""
    data = array.array if isinstance(array, _NpyArray) else array.map
    order = np.argsort(rows, kind="stable")
    out = np.empty((len(rows), *data.shape[1:]), dtype=data.dtype)
    out[order] = data[rows[order]]
    return out


def _npy_header(stream: BinaryIO, where: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    try:
        return parse_npy_header(stream)
    except (ValueError, OSError, EOFError) as e:
        raise SourceError(f"{where}: not a readable .npy array ({e})") from e


class _NpzMember:
    """One array inside an ``.npz``: mapped at its offset when stored, else decompressed as a stream, in order."""

    def __init__(self, path: Path, name: str):
        self.path, self.name, self.where = path, name, f"{path} (member {name}.npy)"
        try:
            with zipfile.ZipFile(path) as zf:
                info = zf.getinfo(f"{name}.npy")
                with zf.open(info) as f:
                    self.shape, fortran, self.dtype = _npy_header(f, self.where)
                    header_bytes = f.tell()
        except KeyError:
            raise SourceError(f"{path}: no member {name!r} (an .npz for convert holds arrays x and y)") from None
        except (zipfile.BadZipFile, OSError) as e:
            raise SourceError(f"{path}: not a readable .npz archive ({e})") from e
        if fortran:
            raise SourceError(f"{self.where}: Fortran-ordered; save it with np.ascontiguousarray first")
        self.compressed = info.compress_type != zipfile.ZIP_STORED
        self.map = None
        if not self.compressed:
            with open(path, "rb") as f:   # the local file header: 30 bytes, then the name and an extra field
                f.seek(info.header_offset)
                local = f.read(30)
            name_len, extra_len = struct.unpack("<HH", local[26:30])
            offset = info.header_offset + 30 + name_len + extra_len + header_bytes
            self.map = np.memmap(path, dtype=self.dtype, mode="r", offset=offset, shape=self.shape)
        self._zip = self._stream = None
        self._pos = 0

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Rows ``[start, stop)``; a compressed member is read forward (re-opened to go back)."""
        if self.map is not None:
            return self.map[start:stop]
        row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        if self._stream is None or start < self._pos:
            self.close()
            self._zip = zipfile.ZipFile(self.path)
            self._stream = self._zip.open(f"{self.name}.npy")
            _npy_header(self._stream, self.where)
            self._pos = 0
        to_skip = (start - self._pos) * row_bytes
        while to_skip:
            got = len(self._stream.read(min(to_skip, READ_CHUNK)))
            if not got:
                raise SourceError(f"{self.where}: ends early (truncated archive?)")
            to_skip -= got
        want = (stop - start) * row_bytes
        data = self._stream.read(want)
        if len(data) != want:
            raise SourceError(f"{self.where}: ends early, {len(data)} of {want} bytes (truncated archive?)")
        self._pos = stop
        return np.frombuffer(data, dtype=self.dtype).reshape(stop - start, *self.shape[1:])

    def close(self) -> None:
        """Close the stream (and drop the map)."""
        for handle in (self._stream, self._zip):
            if handle is not None:
                handle.close()
        self._zip = self._stream = None


class ArraySource:
    """Images ``x`` (N, ...) uint8 and labels ``y`` (N,) integers: ``SRC/x.npy`` + ``SRC/y.npy`` or one ``.npz``.

    Rows are converted in an order shuffled with ``seed``, as image folders are: arrays are often sorted by
    class, and a loader that shuffles blocks and windows only mixes what lies near on disk. A compressed
    ``.npz`` can only be read as a stream, in stored order: ``shuffled`` is then False and ``describe`` says so.
    """

    layout = "arrays"
    hidden = 0
    class_names = None

    def __init__(self, path: Path, shape: tuple[int, ...] | None, seed: int = 0):
        self.path, self.seed = Path(path), seed
        if self.path.suffix == ".npz":
            self.x, self.y = (_NpzMember(self.path, n) for n in ARRAY_MEMBERS)
            self.layout = "npz"
            wx, wy = f"{self.path} (x)", f"{self.path} (y)"
        else:
            self.x, self.y = (_NpyArray(self.path / f"{n}.npy") for n in ARRAY_MEMBERS)
            wx, wy = str(self.path / "x.npy"), str(self.path / "y.npy")
        x, y = self.x, self.y
        if x.dtype != np.uint8 or not 2 <= len(x.shape) <= 5:
            raise SourceError(f"{wx}: expected uint8 images of shape (N, ...) with 1 to 4 sample dimensions, found "
                              f"{x.dtype} {x.shape} (scale and cast first, e.g. (x * 255).astype(np.uint8))")
        if len(y.shape) != 1 or y.dtype.kind not in "iu":
            raise SourceError(f"{wy}: expected integer labels of shape (N,), found {y.dtype} {y.shape}")
        if x.shape[0] != y.shape[0]:
            raise SourceError(f"{self.path}: mixed array lengths: x has {x.shape[0]:,} rows, y has {y.shape[0]:,}")
        if x.shape[0] == 0:
            raise SourceError(f"{self.path}: the arrays hold no samples (nothing to convert)")
        self.shape = tuple(int(d) for d in x.shape[1:])
        if shape is not None and tuple(shape) != self.shape:
            raise SourceError(f"{wx}: samples have shape {self.shape}, --shape asks for {tuple(shape)} "
                              "(arrays are stored as they are: leave --shape out)")
        self.bad: dict[int, str] = {}
        self.shuffled = all(getattr(a, "map", True) is not None for a in (x, y))   # random access: not a stream
        self.order = np.random.default_rng(seed).permutation(len(self)) if self.shuffled else None

    def __len__(self) -> int:
        return self.x.shape[0]

    def fingerprint(self) -> str:
        """A hash of the arrays' shapes, dtypes and file sizes."""
        files = [self.path] if self.path.is_file() else [self.path / "x.npy", self.path / "y.npy"]
        return _hash_lines([f"{self.x.shape} {self.x.dtype} {self.y.shape} {self.y.dtype}",
                            *(f"{f.name}\0{f.stat().st_size}" for f in files)])

    def bad_items(self) -> list[dict[str, str]]:
        """Arrays have no unreadable items: every row is a sample."""
        return []

    def take(self, start: int, count: int, *, stop: int | None = None, skip_bad: bool = False,
             pixels: bool = True, images: bool = False) -> Chunk:
        """Positions ``[start, min(start + count, stop))`` of the conversion order, read from the map or the stream."""
        stop = min(start + count, len(self)) if stop is None else stop
        if self.order is None:
            rows = np.arange(start, stop)
            ys = np.asarray(self.y.rows(start, stop), dtype=np.int64)
            xs = self.x.rows(start, stop) if pixels else None
        else:
            rows = self.order[start:stop]
            ys = np.asarray(_gather(self.y, rows), dtype=np.int64)
            xs = _gather(self.x, rows) if pixels else None
        if len(ys) and ys.min() < 0:
            raise SourceError(f"{self.path}: label {ys.min()} at row {int(rows[np.argmin(ys)])}: labels must be >= 0")
        return Chunk(start, stop, ys, xs)

    def describe(self) -> dict[str, Any]:
        """What the manifest records about this source."""
        order = (f"shuffled with seed {self.seed}" if self.shuffled else
                 "as stored: a compressed .npz is read as a stream (save it uncompressed, np.savez, to shuffle)")
        info = {"path": str(self.path.resolve()), "layout": self.layout, "items": len(self),
                "fingerprint": self.fingerprint(), "order": order}
        if self.layout == "npz":
            info["npz_read"] = "streamed (compressed)" if self.x.compressed else "memory-mapped inside the zip"
        return info

    def close(self) -> None:
        """Release the maps and streams."""
        self.x.close()
        self.y.close()


class PerSampleSource:
    """A folder of ``*.npy`` files, one record (fields ``x``, ``y``) each, in an order shuffled with ``seed``."""

    layout = "per_sample_npy"
    class_names = None

    def __init__(self, root: Path, shape: tuple[int, ...] | None, seed: int = 0):
        self.path, self.seed = Path(root), seed
        names = sorted(e.name for e in os.scandir(root) if e.is_file())
        self.hidden = sum(n.startswith(".") for n in names)
        visible = [n for n in names if not n.startswith(".")]
        self.files = [visible[i] for i in np.random.default_rng(seed).permutation(len(visible))]
        self.bad: dict[int, str] = {}
        shapes: dict[tuple[tuple[int, ...], str], str] = {}
        for pos, name in enumerate(self.files):
            if not name.endswith(".npy"):
                self.bad[pos] = "not a .npy file"
                continue
            try:
                with open(self.path / name, "rb") as f:
                    dims, _, dtype = _npy_header(f, name)
            except (SourceError, OSError) as e:
                self.bad[pos] = str(e).split(": ", 1)[-1]
                continue
            if dtype.names is None or not {"x", "y"} <= set(dtype.names) or int(np.prod(dims)) != 1:
                self.bad[pos] = f"expected one record with fields x and y, found {dtype} {dims}"
                continue
            shapes.setdefault((dtype["x"].shape, str(dtype["x"].base)), name)
        if len(shapes) > 1:
            (a, fa), (b, fb) = list(shapes.items())[:2]
            raise SourceError(f"{root}: mixed samples: {fa} holds x of shape {a[0]} {a[1]}, {fb} holds {b[0]} {b[1]}")
        if not shapes:
            why = f" (e.g. {self.files[0]}: {self.bad[0]})" if self.files else ""
            raise SourceError(f"{root}: no readable per-sample .npy files (nothing to convert){why}")
        (self.shape, dtype_name), first = next(iter(shapes.items()))
        if dtype_name != "uint8":
            raise SourceError(f"{root / first}: x is {dtype_name}, expected uint8 images "
                              "(scale and cast first, e.g. (x * 255).astype(np.uint8))")
        if shape is not None and tuple(shape) != self.shape:
            raise SourceError(f"{root}: samples have shape {self.shape}, --shape asks for {tuple(shape)} "
                              "(arrays are stored as they are: leave --shape out)")

    def __len__(self) -> int:
        return len(self.files)

    def fingerprint(self) -> str:
        """A hash of the file names and sizes."""
        return _hash_lines(f"{n}\0{(self.path / n).stat().st_size}" for n in self.files)

    def bad_items(self) -> list[dict[str, str]]:
        """The files whose headers do not read, in order."""
        return [{"file": self.files[p], "reason": why} for p, why in sorted(self.bad.items())]

    def take(self, start: int, count: int, *, stop: int | None = None, skip_bad: bool = False,
             pixels: bool = True, images: bool = False) -> Chunk:
        """Up to ``count`` good samples from file ``start`` (or all good ones in ``[start, stop)``)."""
        xs, ys, skipped = [], [], []

        def read(pos: int) -> np.void:
            try:
                return np.load(self.path / self.files[pos], allow_pickle=False).reshape(-1)[0]
            except (ValueError, OSError, EOFError) as e:
                raise BadSample(self.files[pos], f"does not read ({e})") from e

        pos, stop_at = start, len(self) if stop is None else stop
        for pos, rec in _good_items(read, self.files.__getitem__, self.bad, start, stop_at, count,  # noqa: B007
                                    skip_bad, skipped):   # pos is read after the loop
            xs.append(rec["x"])
            ys.append(int(rec["y"]))
        if len(ys) < count:
            pos = stop_at  # every item up to stop_at was read or skipped
        x = np.stack(xs) if xs else np.empty((0, *self.shape), np.uint8)
        return Chunk(start, pos, np.asarray(ys, dtype=np.int64), x, None, skipped)

    def describe(self) -> dict[str, Any]:
        """What the manifest records about this source."""
        return {"path": str(self.path.resolve()), "layout": self.layout, "items": len(self),
                "fingerprint": self.fingerprint(), "order": f"shuffled with seed {self.seed}", "hidden": self.hidden}

    def close(self) -> None:
        """Nothing to release."""
