"""A training transform written with torch ops (random resized crop, flip, to float, normalize).

torchvision does not import beside the course's torch, so the transform a learner would take from it is
written here twice, with the same random draws:

- :class:`TrainTransform`: per sample, on a decoded image (what ``.map_tuple(train_transform, ...)`` in the
  seed's WebDataset example calls): to float first, then crop, resize, flip and normalize one image at a time.
- :func:`crop_box` + :func:`finish_batch`: the course's batch path. The crop is chosen *before* decoding (so
  the decoder can skip resolution it would throw away), each sample is cropped and resized in uint8, and the
  flip, the float conversion and the normalization run once on the whole ``(B, H, W, C)`` uint8 batch.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

MEAN = (0.485, 0.456, 0.406)  # ImageNet's channel statistics, as torchvision's examples use them
STD = (0.229, 0.224, 0.225)
SCALE = (0.25, 1.0)           # fraction of the image area a random crop covers
RATIO = (3 / 4, 4 / 3)        # its aspect-ratio range


def crop_box(height: int, width: int, uniform: Callable[[], float], scale: tuple[float, float] = SCALE,
             ratio: tuple[float, float] = RATIO) -> tuple[int, int, int, int]:
    """``(top, left, crop_height, crop_width)`` of a random resized crop, torchvision's algorithm.

    Up to 10 tries of a random area fraction in ``scale`` and a log-uniform aspect ratio in ``ratio``; if
    none fits, the largest centre crop within ``ratio``. ``uniform()`` returns a float in [0, 1).
    """
    area = height * width
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(10):
        target = area * (scale[0] + (scale[1] - scale[0]) * uniform())
        aspect = math.exp(log_lo + (log_hi - log_lo) * uniform())
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = min(int(uniform() * (height - h + 1)), height - h)
            left = min(int(uniform() * (width - w + 1)), width - w)
            return top, left, h, w
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        h, w = height, int(round(height * ratio[1]))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def _stats(values: tuple[float, ...], channels: int) -> torch.Tensor:
    t = torch.tensor(values, dtype=torch.float32)
    if len(t) != channels:
        t = t[:1].expand(channels) if len(t) == 1 or channels == 1 else t
    return t.reshape(channels, 1, 1)


class TrainTransform:
    """Per-sample train transform: ``(C, size, size)`` float32, normalized, from a PIL image or uint8 array.

    Order as in torchvision's classic recipe (``RandomResizedCrop``, flip, ``ToTensor``, ``Normalize``), with torch
    ops: the crop box is cut from the uint8 image first, only the crop is converted to float in [0, 1], then
    resized (bilinear, antialiased), flipped with probability ``flip_p`` and normalized with ``mean``/``std``.
    ``generator`` (a ``torch.Generator``) makes the draws reproducible; without it torch's global RNG is
    used (reseeded per DataLoader worker by torch). Picklable: safe for any worker start method.
    """

    def __init__(self, size: int, *, scale: tuple[float, float] = SCALE, ratio: tuple[float, float] = RATIO,
                 flip_p: float = 0.5, mean: tuple[float, ...] = MEAN, std: tuple[float, ...] = STD):
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.size, self.scale, self.ratio, self.flip_p = int(size), tuple(scale), tuple(ratio), float(flip_p)
        self.mean, self.std = tuple(mean), tuple(std)

    def __call__(self, image, generator: torch.Generator | None = None) -> torch.Tensor:
        pixels = to_chw_tensor(image)

        def uniform() -> float:
            return float(torch.rand((), generator=generator))

        top, left, h, w = crop_box(pixels.shape[1], pixels.shape[2], uniform, self.scale, self.ratio)
        crop = pixels[None, :, top:top + h, left:left + w].float().div_(255)  # crop first: float of the crop only
        x = F.interpolate(crop, size=(self.size, self.size), mode="bilinear", align_corners=False,
                          antialias=True)[0]
        if uniform() < self.flip_p:
            x = x.flip(-1)
        channels = x.shape[0]
        return (x - _stats(self.mean, channels)) / _stats(self.std, channels)

    def __repr__(self) -> str:
        return (f"TrainTransform(size={self.size}, scale={self.scale}, ratio=({self.ratio[0]:.3g}, "
                f"{self.ratio[1]:.3g}), flip_p={self.flip_p})")


def to_chw_tensor(image) -> torch.Tensor:
    """A uint8 ``(C, H, W)`` tensor from a PIL image, an ``(H, W[, C])`` uint8 array or a CHW tensor."""
    if isinstance(image, torch.Tensor):
        return image if image.ndim == 3 else image[None]
    array = np.array(image)  # writable (np.asarray of a PIL image is read-only, which torch warns about)
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)


def finish_batch(images: np.ndarray, flips: np.ndarray | None, *, mean: tuple[float, ...] = MEAN,
                 std: tuple[float, ...] = STD) -> torch.Tensor:
    """A float32 ``(B, C, H, W)`` normalized batch from cropped uint8 ``(B, H, W, C)`` images.

    ``flips`` (bool per sample) mirrors those samples. One float conversion for the whole batch, written
    straight into the channels-first output, then one multiply and one add. numpy, not torch: in the main
    process torch's intra-op threads keep spinning after each op and take the core the next decode needs
    (measured: the 0-worker path ran 2.4x slower with torch's 2 threads than with 1).
    """
    x = np.asarray(images)
    if x.ndim != 4 or x.dtype != np.uint8:
        raise ValueError(f"expected uint8 images (B, H, W, C), got {x.dtype} {x.shape}")
    if flips is not None:
        flips = np.asarray(flips, dtype=bool)
        if len(flips) != len(x):
            raise ValueError(f"{len(flips)} flip flags for {len(x)} images")
        if flips.any():
            x = x.copy()  # the caller's images stay as they were
            x[flips] = x[flips, :, ::-1]
    channels = x.shape[3]
    out = np.empty((x.shape[0], channels, x.shape[1], x.shape[2]), dtype=np.float32)
    np.copyto(out, x.transpose(0, 3, 1, 2), casting="unsafe")
    m, s = _stats(mean, channels).numpy(), _stats(std, channels).numpy()
    out *= 1.0 / (255.0 * s)
    out += -m / s
    return torch.from_numpy(out)
