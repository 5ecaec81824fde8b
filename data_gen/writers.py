"""Write one shard in each format, atomically. Returns nothing: the caller hashes the final file."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from .atomic import atomic_open
from .layout import IMAGE_EXTENSIONS, NPY, WDS, WDS_BLOCK, WDSB, record_dtype, sample_key


def write_npy_shard(path: Path, xs: np.ndarray, ys: np.ndarray, first_index: int) -> None:
    """Write samples as one structured ``.npy`` array (fields x, y, idx)."""
    records = np.empty(len(xs), dtype=record_dtype(xs.shape[1:]))
    records["x"] = xs
    records["y"] = ys
    records["idx"] = np.arange(first_index, first_index + len(xs), dtype=np.int64)
    with atomic_open(path) as f:
        np.save(f, records, allow_pickle=False)


def npy_bytes(array: np.ndarray) -> bytes:
    """The ``.npy`` file bytes of one array (no pickle)."""
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def _tar_writer(f):
    """webdataset's TarWriter on an open file: fixed integer mtime, members written as given (no encoder).

    Imported here, not at module level: webdataset imports torch (seconds), which ``python -m data_gen``'s
    argument errors and the numpy-only format do not need."""
    import webdataset as wds

    return wds.TarWriter(f, encoder=False, mtime=0)


def write_wds_shard(path: Path, xs: np.ndarray, ys: np.ndarray, first_index: int) -> None:
    """Write samples as a WebDataset tar with webdataset's own TarWriter.

    The mtime is a fixed integer: the same bytes every run, and no per-member pax header (a float mtime
    adds one, doubling the headers a reader must parse).
    """
    with atomic_open(path) as f:
        with _tar_writer(f) as sink:
            for i, (x, y) in enumerate(zip(xs, ys)):
                index = first_index + i
                sink.write({
                    "__key__": sample_key(index),
                    "x.npy": npy_bytes(x),
                    "cls": str(int(y)).encode(),
                    "idx": str(index).encode(),
                })


def write_wdsb_shard(path: Path, xs: np.ndarray, ys: np.ndarray, first_index: int) -> None:
    """Write samples as a WebDataset tar of pre-batched blocks of ``WDS_BLOCK`` samples (``.npy`` members)."""
    with atomic_open(path) as f:
        with _tar_writer(f) as sink:
            for start in range(0, len(xs), WDS_BLOCK):
                stop = min(start + WDS_BLOCK, len(xs))
                sink.write({
                    "__key__": sample_key(first_index + start),
                    "x.npy": npy_bytes(np.ascontiguousarray(xs[start:stop])),
                    "y.npy": npy_bytes(ys[start:stop].astype(np.int64)),
                    "idx.npy": npy_bytes(np.arange(first_index + start, first_index + stop, dtype=np.int64)),
                })


def write_img_shard(path: Path, images: list[tuple[bytes, str]], ys: np.ndarray, first_index: int) -> None:
    """Write encoded images (``(bytes, "jpg" | "png")`` each, stored as they are) with labels as a WebDataset tar."""
    if len(images) != len(ys):
        raise ValueError(f"{path}: {len(images)} images but {len(ys)} labels")
    with atomic_open(path) as f:
        with _tar_writer(f) as sink:
            for i, ((data, ext), y) in enumerate(zip(images, ys)):
                if ext not in IMAGE_EXTENSIONS:
                    raise ValueError(f"{path}: image extension must be one of {IMAGE_EXTENSIONS}, got {ext!r}")
                index = first_index + i
                sink.write({"__key__": sample_key(index), ext: bytes(data), "cls": str(int(y)).encode(),
                            "idx": str(index).encode()})


WRITERS = {NPY: write_npy_shard, WDS: write_wds_shard, WDSB: write_wdsb_shard}
