"""Encoded images (JPEG, PNG): recognise them by their bytes and decode them to a fixed ``(C, H, W)`` uint8 array.

One decode for everyone: the converter's ``npy`` format, the plain folder ``Dataset`` the course improves on
and the reader of ``img`` tars all call :func:`decode_image`, so the three deliver the same pixels.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")  # file names a folder of images may use (any case)
_MAGIC = {b"\xff\xd8\xff": "jpg", b"\x89PNG\r\n\x1a\n": "png"}
_MODES = {1: "L", 3: "RGB"}


class UnreadableImage(ValueError):
    """A file that is not a JPEG/PNG image or does not decode; the message starts with the file's name."""


def image_kind(head: bytes) -> str | None:
    """``"jpg"`` or ``"png"`` from a file's first bytes (its magic number), else None."""
    for magic, kind in _MAGIC.items():
        if head.startswith(magic):
            return kind
    return None


def check_shape(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """``(C, H, W)`` with C 1 (grey) or 3 (RGB) and positive sides, else ValueError saying why."""
    shape = tuple(int(d) for d in shape)
    if len(shape) != 3 or shape[0] not in _MODES or min(shape) <= 0:
        raise ValueError(f"an image shape is C,H,W with C = 1 (grey) or 3 (RGB) and positive sides, got {shape}")
    return shape  # type: ignore[return-value]


def decode_image(data: bytes, shape: tuple[int, int, int], where: str | Path = "image") -> np.ndarray:
    """Decode JPEG/PNG bytes with Pillow, convert to RGB (or grey), scale to cover ``H x W`` and centre-crop.

    Returns a ``(C, H, W)`` uint8 array. Raises :class:`UnreadableImage` naming ``where`` when the bytes are
    not an image or are damaged (Pillow reads lazily: a truncated file fails here, at ``load``, not at ``open``).
    """
    from PIL import Image, ImageOps

    c, h, w = check_shape(shape)
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            fitted = ImageOps.fit(img.convert(_MODES[c]), (w, h), method=Image.Resampling.BILINEAR)
    except (OSError, ValueError, SyntaxError) as e:  # Pillow's UnidentifiedImageError is an OSError
        raise UnreadableImage(f"{where}: not a readable JPEG/PNG image ({e})") from e
    array = np.asarray(fitted, dtype=np.uint8)
    return array[None] if c == 1 else np.ascontiguousarray(array.transpose(2, 0, 1))


DEFAULT_JPEG_QUALITY = 90


def encode_jpeg(x: np.ndarray, quality: int = DEFAULT_JPEG_QUALITY) -> bytes:
    """JPEG bytes of one ``(C, H, W)`` uint8 image (C = 1 or 3), Pillow's encoder, no chroma subsampling."""
    from PIL import Image

    check_shape(x.shape)
    if x.dtype != np.uint8:
        raise ValueError(f"cannot encode a {x.dtype} array as JPEG: needs uint8")
    pixels = x[0] if x.shape[0] == 1 else np.ascontiguousarray(np.moveaxis(x, 0, -1))
    buf = io.BytesIO()
    # subsampling=0 (4:4:4): the decoded pixels stay close to the originals, so a test can compare them
    Image.fromarray(pixels).save(buf, format="JPEG", quality=int(quality), subsampling=0)
    return buf.getvalue()


def decode_pixels(data: bytes) -> np.ndarray:
    """``(C, H, W)`` uint8 pixels of encoded image bytes (JPEG or PNG) at their own size, decoded with Pillow."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        array = np.asarray(img.convert("L" if img.mode in ("L", "I;16", "1") else "RGB"))
    return array[None] if array.ndim == 2 else np.ascontiguousarray(np.moveaxis(array, -1, 0))
