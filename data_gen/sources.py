"""The layouts a learner's data comes in, read lazily, one shard's worth at a time.

- :class:`ImageFolderSource`: ``SRC/<class>/<file>.jpg|png`` (torchvision's ``ImageFolder`` layout). Labels are
  the class folders' positions in sorted order; the names go into the manifest. Files are taken in a seeded
  shuffled order, because an image folder is sorted by class and a streaming shuffle only mixes nearby samples.
- :class:`ArraySource`: ``SRC/x.npy`` + ``SRC/y.npy``, or one ``.npz`` with members ``x`` and ``y``. ``.npy`` files
  are memory-mapped; an ``.npz`` is a zip archive, so ``np.load`` cannot map it (it reads a member whole): a
  member stored uncompressed (``np.savez``) is mapped at its offset inside the zip, a compressed one
  (``np.savez_compressed``) is decompressed as a stream, in order, one shard at a time. Rows are taken in a
  seeded shuffled order, except from a compressed ``.npz`` (a stream: stored order).
- :class:`PerSampleSource`: a folder of one ``.npy`` file per sample, each a record with fields ``x`` and ``y``
  (what chapter 01's ``export_per_sample_files`` writes), in a seeded shuffled order.

Every source has ``len`` (items), ``shape``, ``class_names``, ``bad`` (items refused before any decoding, with
why), ``fingerprint()`` and ``take(start, count)`` returning a :class:`Chunk`. Names starting with ``.``
(``.DS_Store``, ``.ipynb_checkpoints``) are not samples: they are left out and counted in ``hidden``.
"""
from __future__ import annotations

import os
from pathlib import Path

from .array_sources import ArraySource, PerSampleSource
from .image_folder_source import ImageFolderSource
from .source_items import BadSample, Chunk, SourceError

__all__ = ["ArraySource", "BadSample", "Chunk", "ImageFolderSource", "PerSampleSource", "SourceError", "open_source"]


def open_source(src: str | Path, shape: tuple[int, ...] | None = None, seed: int = 0):
    """The source at ``src``, its layout recognised from what is there; SourceError naming ``src`` otherwise."""
    path = Path(src)
    if not path.exists():
        raise SourceError(f"{path}: no such file or folder")
    if path.is_file():
        if path.suffix == ".npz":
            return ArraySource(path, shape, seed)
        raise SourceError(f"{path}: a single file must be an .npz with members x and y; for .npy arrays give "
                          "the folder holding x.npy and y.npy")
    entries = [e for e in sorted(os.scandir(path), key=lambda e: e.name) if not e.name.startswith(".")]
    names = {e.name for e in entries}
    if {"x.npy", "y.npy"} <= names:
        return ArraySource(path, shape, seed)
    if any(e.is_dir() for e in entries):
        return ImageFolderSource(path, shape, seed)
    if any(e.name.endswith(".npy") for e in entries):
        return PerSampleSource(path, shape, seed)
    if not entries:
        raise SourceError(f"{path}: empty folder (nothing to convert)")
    raise SourceError(f"{path}: not a layout convert reads: expected class folders (SRC/<class>/<file>.jpg|png), "
                      "x.npy + y.npy, an .npz, or one .npy file per sample")
