"""An image folder, ``SRC/<class>/**/<file>``: JPEG and PNG files recognised by their bytes, labelled by folder."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .images import UnreadableImage, check_shape, decode_image, image_kind
from .source_items import BadSample, Chunk, SourceError, _good_items, _hash_lines


class ImageFolderSource:
    """``root/<class>/**/<file>``: JPEG and PNG files recognised by their bytes, labelled by class folder."""

    layout = "image_folder"

    def __init__(self, root: Path, shape: tuple[int, ...] | None, seed: int = 0):
        self.path, self.seed = Path(root), seed
        try:
            self.shape = check_shape(shape if shape is not None else (3, 64, 64))
        except ValueError as e:
            raise SourceError(str(e)) from e
        self.hidden = sum(n.startswith(".") for n in os.listdir(root))
        self.class_names = [e.name for e in sorted(os.scandir(root), key=lambda e: e.name)
                            if e.is_dir() and not e.name.startswith(".")]
        files: list[tuple[str, int]] = []
        for label, name in enumerate(self.class_names):
            files += [(f, label) for f in self._walk(self.path / name)]
        loose = [e.name for e in os.scandir(root) if e.is_file() and not e.name.startswith(".")]
        files += [(f, -1) for f in sorted(loose)]  # not inside a class folder: a bad item, named
        if not files:
            raise SourceError(f"{root}: no files in its class folders {self.class_names} (nothing to convert)")
        order = np.random.default_rng(seed).permutation(len(files))
        self.files = [files[i] for i in order]
        self.sizes = [(self.path / f).stat().st_size for f, _ in self.files]
        self.bad = self._scan()

    def _walk(self, folder: Path) -> list[str]:
        found = []
        for dirpath, dirnames, filenames in os.walk(folder):
            self.hidden += sum(n.startswith(".") for n in dirnames + filenames)
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            found += [os.path.relpath(os.path.join(dirpath, n), self.path)
                      for n in sorted(filenames) if not n.startswith(".")]
        return found

    def _scan(self) -> dict[int, str]:
        """Items refused from their first bytes alone (no decoding): position -> why."""
        bad = {}
        for pos, ((rel, label), _size) in enumerate(zip(self.files, self.sizes)):
            if label < 0:
                bad[pos] = "not inside a class folder (expected SRC/<class>/<file>)"
                continue
            try:
                with open(self.path / rel, "rb") as f:
                    head = f.read(16)
            except OSError as e:
                bad[pos] = f"cannot be read ({e.strerror})"
                continue
            if not head:
                bad[pos] = "empty file (0 bytes)"
            elif image_kind(head) is None:
                bad[pos] = f"not a JPEG or PNG image (it starts with {head[:8]!r})"
        return bad

    def __len__(self) -> int:
        return len(self.files)

    def fingerprint(self) -> str:
        """A hash of the file names, sizes and labels (what a re-run must find unchanged)."""
        return _hash_lines(f"{rel}\0{label}\0{size}" for (rel, label), size in zip(self.files, self.sizes))

    def bad_items(self) -> list[dict[str, str]]:
        """The items refused before decoding: ``{"file", "reason"}`` each, in conversion order."""
        return [{"file": self.files[p][0], "reason": why} for p, why in sorted(self.bad.items())]

    def take(self, start: int, count: int, *, stop: int | None = None, skip_bad: bool = False,
             pixels: bool = True, images: bool = True) -> Chunk:
        """Up to ``count`` good samples from position ``start`` (or all good ones in ``[start, stop)``)."""
        xs, ys, encoded, skipped = [], [], [], []

        def read(pos: int) -> tuple[bytes, np.ndarray, int]:
            rel, label = self.files[pos]
            try:
                data = (self.path / rel).read_bytes()
                return data, decode_image(data, self.shape, rel), label  # a file that does not decode is no sample
            except UnreadableImage as e:
                raise BadSample(rel, str(e).split(": ", 1)[1]) from e
            except OSError as e:
                raise BadSample(rel, f"cannot be read ({e.strerror})") from e

        pos, stop_at = start, len(self) if stop is None else stop
        for pos, (data, x, label) in _good_items(read, lambda p: self.files[p][0], self.bad,  # noqa: B007
                                                 start, stop_at, count, skip_bad, skipped):   # pos: read after
            ys.append(label)
            if pixels:
                xs.append(x)
            if images:
                encoded.append((data, image_kind(data[:16])))
        if len(ys) < count:
            pos = stop_at  # every item up to stop_at was read or skipped
        stacked = np.stack(xs) if pixels and xs else (np.empty((0, *self.shape), np.uint8) if pixels else None)
        return Chunk(start, pos, np.asarray(ys, dtype=np.int64), stacked, encoded if images else None, skipped)

    def describe(self) -> dict[str, Any]:
        """What the manifest records about this source."""
        return {"path": str(self.path.resolve()), "layout": self.layout, "items": len(self),
                "fingerprint": self.fingerprint(), "order": f"shuffled with seed {self.seed}", "hidden": self.hidden}

    def close(self) -> None:
        """Nothing to release."""
