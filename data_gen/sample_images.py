"""A small image folder the course writes itself, so the "your own data" chapter runs anywhere.

``write_sample_image_folder(dir)`` writes ``dir/<class>/<NNNN>.jpg|png``: JPEG and PNG files of mixed sizes
(some greyscale), in class folders, and exactly one corrupt file (a JPEG cut off after a third of its bytes,
as an interrupted download leaves it). Same arguments, same bytes.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

SAMPLE_CLASSES = ("circles", "stripes", "checks", "noise")


def _picture(rng: np.random.Generator, label: int, height: int, width: int) -> np.ndarray:
    """An RGB picture whose pattern depends on the class (so the labels mean something)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    cy, cx = rng.uniform(0.3, 0.7) * height, rng.uniform(0.3, 0.7) * width
    period = rng.uniform(6, 16)
    if label == 0:
        pattern = np.hypot(yy - cy, xx - cx) % period < period / 2
    elif label == 1:
        pattern = (xx + yy * rng.uniform(-0.5, 0.5)) % period < period / 2
    elif label == 2:
        pattern = ((xx // period) + (yy // period)) % 2 == 0
    else:
        pattern = rng.random((height, width)) < 0.5
    colour_a, colour_b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    image = np.where(pattern[..., None], colour_a, colour_b).astype(np.float32)
    image += rng.normal(0, 6, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def write_sample_image_folder(directory: str | Path, *, images: int = 300, seed: int = 0,
                              min_side: int = 48, max_side: int = 160) -> Path:
    """Write ``images`` files (the last one corrupt) into ``directory/<class>/``; returns the directory.

    Sides are drawn from ``[min_side, max_side]``; every third file is a PNG (one in four of those greyscale),
    the rest JPEGs of varying quality. Refuses a directory that already holds files.
    """
    from PIL import Image

    if images < len(SAMPLE_CLASSES) + 1:
        raise ValueError(f"images must be at least {len(SAMPLE_CLASSES) + 1} (one per class and the corrupt one)")
    root = Path(directory)
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root} is not empty: write the sample folder into a new directory")
    rng = np.random.default_rng(seed)
    for name in SAMPLE_CLASSES:
        (root / name).mkdir(parents=True, exist_ok=True)
    for i in range(images):
        label = i % len(SAMPLE_CLASSES)
        height, width = (int(v) for v in rng.integers(min_side, max_side + 1, 2))
        picture = Image.fromarray(_picture(rng, label, height, width))
        buf = io.BytesIO()
        if i % 3 == 2:
            (picture.convert("L") if i % 12 == 2 else picture).save(buf, format="PNG")
            suffix = "png"
        else:
            picture.save(buf, format="JPEG", quality=int(rng.integers(70, 96)))
            suffix = "jpg"
        data = buf.getvalue()
        if i == images - 1:   # the corrupt one: a JPEG whose download stopped a third of the way
            buf = io.BytesIO()
            picture.save(buf, format="JPEG", quality=90)
            data, suffix = buf.getvalue()[: len(buf.getvalue()) // 3], "jpg"
        (root / SAMPLE_CLASSES[label] / f"{i:04d}.{suffix}").write_bytes(data)
    return root
