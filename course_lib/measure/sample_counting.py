"""Counting and touching the samples of one loader item: what ``measure_throughput`` times, split out of it."""
from __future__ import annotations

import ctypes
from typing import Any

import numpy as np
import torch


def _label_of(item: Any) -> Any:
    """The part of an item that says how many samples it holds."""
    if isinstance(item, dict):
        for key in ("y", "idx", "cls", "label"):
            if key in item:
                return item[key]
        raise TypeError(f"cannot count samples in a dict with keys {sorted(item)}: add 'y' or 'idx'")
    if isinstance(item, (tuple, list)):
        return item[-1]
    if isinstance(item, np.void):
        return 0
    if isinstance(item, np.ndarray) and item.dtype.names:
        return item
    raise TypeError(f"cannot count samples in {type(item).__name__}: yield dicts, tuples or record arrays")


def count_samples_in(item: Any) -> int:
    """Samples in one item: a batch counts by its leading dimension, a single sample counts 1.

    The label decides: ``item["y"]`` (or ``idx``) for dicts, the last element for tuples; a 0-d label
    or a Python number means one sample, a 1-d label means a batch of ``len(label)``.
    """
    label = _label_of(item)
    shape = getattr(label, "shape", None)
    if shape is None:
        return 1 if isinstance(label, (int, float, str, bytes)) else len(label)
    return 1 if len(shape) == 0 else int(shape[0])


def _is_single_sample(item: Any) -> bool:
    label = _label_of(item)
    return getattr(label, "ndim", 0) == 0 and not isinstance(label, (list, tuple))


def nbytes_of(item: Any) -> int:
    """Bytes of array data in one item (tensors and arrays, nested in dicts/tuples)."""
    if isinstance(item, torch.Tensor):
        return item.numel() * item.element_size()
    if isinstance(item, (np.ndarray, np.void)):
        return item.nbytes
    if isinstance(item, dict):
        return sum(nbytes_of(v) for v in item.values())
    if isinstance(item, (tuple, list)):
        return sum(nbytes_of(v) for v in item)
    if isinstance(item, (bytes, bytearray)):
        return len(item)
    return 0


PAGE = 4096
SMALL_TENSOR_PAGES = 16  # up to this many pages a tensor's bytes are read by address, not through .numpy()
_byte_at = ctypes.c_ubyte.from_address


def touch_pages(item: Any) -> int:
    """Read one byte per 4 KiB page of every contiguous array in ``item``; returns their sum.

    A memory-map view (``data[i]`` of an ``np.load(mmap_mode="r")`` array) costs nothing until its bytes
    are read, so a loop that never looks at the data would time nothing. Touching one byte per page
    makes the OS really fetch the data. The harness's own cost should not depend on the array type:
    ``tensor.numpy()`` alone can cost more than reading a small sample's few pages, so small CPU
    tensors are read at their data pointer instead (and any dtype, bfloat16 or requiring grad, works).
    """
    kind = type(item)
    values = item.values() if kind is dict else item if kind is tuple or kind is list else (item,)
    total = 0
    for value in values:
        kind = type(value)
        if kind is int or kind is float or kind is str:
            continue
        if kind is dict or kind is tuple or kind is list:
            total += touch_pages(value)
            continue
        if kind is torch.Tensor:
            if not value.is_cpu or not value.is_contiguous():
                continue
            nbytes = value.nbytes
            if nbytes <= SMALL_TENSOR_PAGES * PAGE:
                address = value.data_ptr()
                for offset in range(0, nbytes, PAGE):
                    total += _byte_at(address + offset).value
                continue
            value = value.detach().reshape(-1).view(torch.uint8).numpy()
        elif isinstance(value, np.ndarray):
            if not value.flags.c_contiguous:
                continue
        elif kind is not np.void:
            continue
        total += sum(memoryview(value).cast("B")[::PAGE])
    return total
