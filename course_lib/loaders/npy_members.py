"""Safe decoding of the members data_gen writes into tar shards: ``.npy`` without pickle, decimal labels.

Only known members are decoded; a sample carrying anything else (``.pyd``, ``.pickle``, ``.pt``, ...) is
refused, because webdataset's default decoders would run pickle on it.
"""
from __future__ import annotations

import functools
import io
from typing import Any

import numpy as np
import torch

from data_gen.layout import parse_npy_header

from .mapped_blocks import LazyBlock, MemberRef
from .shard_errors import ShardReadError

SAMPLE_MEMBERS = {"x.npy", "cls", "idx"}
BLOCK_MEMBERS = {"x.npy", "y.npy", "idx.npy"}


def decode_npy(data: bytes, where: str) -> np.ndarray:
    """An array from ``.npy`` bytes without a copy and without pickle; errors name ``where``.

    The header of every member of one kind is identical, so it is parsed once and cached: this is what
    ``np.load`` would redo (with ``ast.literal_eval``) for every sample.
    """
    try:
        shape, fortran, dtype, offset = _npy_header(bytes(data[:_header_end(data)]))
        count = int(np.prod(shape))
        if len(data) - offset < count * dtype.itemsize:
            raise ValueError(f"truncated: {len(data) - offset} data bytes for {count} x {dtype}")
        array = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
        return array.reshape(shape, order="F" if fortran else "C")
    except ValueError as e:
        raise ShardReadError(f"{where}: bad .npy member ({e})") from e


def _header_end(data: bytes) -> int:
    """Where the data of a ``.npy`` file starts (magic, version, header length, header)."""
    if len(data) < 10 or bytes(data[:6]) != b"\x93NUMPY":
        raise ValueError("not a .npy file (bad magic)")
    if data[6] == 1:
        return 10 + int.from_bytes(data[8:10], "little")
    return 12 + int.from_bytes(data[8:12], "little")


@functools.lru_cache(maxsize=64)
def _npy_header(header: bytes) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    stream = io.BytesIO(header)
    shape, fortran, dtype = parse_npy_header(stream)
    if dtype.hasobject:
        raise ValueError("object arrays need pickle: refused")
    return shape, fortran, dtype, stream.tell()


def check_members(sample: dict[str, Any], allowed: set[str]) -> str:
    """Refuse a sample with members outside ``allowed`` or missing one; returns ``"url: sample key"``."""
    where = f"{sample.get('__url__', '?')}: sample {sample.get('__key__', '?')}"
    extra = sorted(k for k in sample if not k.startswith("__") and k not in allowed)
    if extra:
        raise ShardReadError(f"{where}: member(s) {extra} refused — this pipeline decodes only {sorted(allowed)} "
                             "(pickle-based members such as .pyd/.pickle/.pt can run code when decoded)")
    missing = sorted(allowed - sample.keys())
    if missing:
        raise ShardReadError(f"{where}: missing member(s) {missing}")
    return where


def decode_sample(sample: dict[str, Any]) -> dict[str, Any]:
    """``{"x": uint8 tensor, "y": int, "idx": int}`` from one data_gen sample; refuses unknown members."""
    where = check_members(sample, SAMPLE_MEMBERS)
    x = decode_npy(sample["x.npy"], where)
    try:
        y, idx = int(sample["cls"]), int(sample["idx"])
    except ValueError as e:
        raise ShardReadError(f"{where}: bad label ({e})") from e
    return {"x": torch.from_numpy(x.copy()), "y": y, "idx": idx}


def decode_block(sample: dict[str, Any]) -> dict[str, Any]:
    """A pre-batched block: ``y`` and ``idx`` as arrays, ``x`` as an array or, for a local shard, a
    :class:`LazyBlock` that the mixing window reads later with one copy."""
    where = check_members(sample, BLOCK_MEMBERS)
    block = {k: _small_npy(sample[f"{k}.npy"], where) for k in ("y", "idx")}
    x = sample["x.npy"]
    if isinstance(x, MemberRef):
        head = x.read(0, min(x.size, 4096))
        shape, fortran, dtype, offset = _npy_header(bytes(head[:_header_end(head)]))
        if fortran or x.size - offset != int(np.prod(shape)) * dtype.itemsize:
            raise ShardReadError(f"{where}: bad .npy member (size does not match header {shape} {dtype})")
        block["x"] = LazyBlock(x, offset, shape, dtype)
    else:
        block["x"] = decode_npy(x, where)
    if not len(block["x"]) == len(block["y"]) == len(block["idx"]):
        raise ShardReadError(f"{where}: block members disagree in length")
    return block


def _small_npy(data: Any, where: str) -> np.ndarray:
    return decode_npy(data.read() if isinstance(data, MemberRef) else data, where)
