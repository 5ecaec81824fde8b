"""Encode the synthetic pixels as JPEG with Pillow: the ``img`` format's members (the decode-bound regime)."""
from __future__ import annotations

import io

import numpy as np

DEFAULT_JPEG_QUALITY = 90
IMAGE_CHANNELS = (1, 3)  # grayscale or RGB: what a JPEG can hold


def check_image_shape(shape: tuple[int, ...]) -> str | None:
    """None when ``shape`` can be stored as a JPEG image (``(1|3, H, W)``), else why not."""
    if len(shape) != 3 or shape[0] not in IMAGE_CHANNELS:
        return f"the img format needs shape (1 or 3, height, width), got {tuple(shape)}"
    return None


def encode_jpeg(x: np.ndarray, quality: int = DEFAULT_JPEG_QUALITY) -> bytes:
    """JPEG bytes of one ``(C, H, W)`` uint8 image (C = 1 or 3), Pillow's encoder, no chroma subsampling."""
    from PIL import Image

    if x.dtype != np.uint8 or (problem := check_image_shape(x.shape)):
        raise ValueError(f"cannot encode a {x.dtype} array of shape {x.shape} as JPEG: needs uint8 (1|3, H, W)")
    pixels = x[0] if x.shape[0] == 1 else np.ascontiguousarray(np.moveaxis(x, 0, -1))
    buf = io.BytesIO()
    # subsampling=0 (4:4:4): the decoded pixels stay close to the originals, so a test can compare them
    Image.fromarray(pixels).save(buf, format="JPEG", quality=int(quality), subsampling=0)
    return buf.getvalue()


def decode_image(data: bytes) -> np.ndarray:
    """``(C, H, W)`` uint8 pixels of encoded image bytes (JPEG or PNG), decoded with Pillow."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        array = np.asarray(img.convert("L" if img.mode in ("L", "I;16", "1") else "RGB"))
    return array[None] if array.ndim == 2 else np.ascontiguousarray(np.moveaxis(array, -1, 0))
