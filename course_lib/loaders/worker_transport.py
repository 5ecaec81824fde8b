"""What a DataLoader worker sends to the main process, and how, so that workers pay on a copy-bound loader.

torch's default: every tensor a worker yields is moved into a *fresh* shared-memory segment (a new file,
``ftruncate``, ``mmap``, a page fault per 4 KiB on both sides, a file descriptor passed over a socket), and a
tensor that is a view of a larger buffer drags the whole buffer along. For a 3 MB batch that costs more than
gathering it; for a 12 KB sample that is a view of its block's 3 MB buffer, it costs ~250x the sample.

Two replacements, used by :class:`~course_lib.loaders.mmap_shards.MmapShardDataset` inside workers only:

- :class:`BatchRing`: each worker owns a few shared-memory *slots*, created once per iteration and mapped once
  by the main process (the first batch carries the ring; later ones carry only ``(token, slot, count)``). The
  worker gathers a batch straight into a free slot; the main process rebuilds it as tensors viewing that slot.
  **What protects a batch the training loop still holds:** a slot is marked busy in shared memory until every
  tensor viewing it is gone (a ``weakref.finalize`` on the slot's array in the main process); the worker only
  writes to free slots, and when none is free it falls back to a fresh batch of its own (slower, never wrong).
- :class:`InlineSample`: a per-sample item whose tensor owns only its row and travels *inside* the pickled
  message (12 KB through the pipe) instead of through a shared-memory segment of its own.

Both are dict subclasses that the main process receives as plain ``dict`` s. If a ``collate_fn`` in the
worker replaces a value, the item is sent as a plain dict in torch's usual way (correct, just not faster).
"""
from __future__ import annotations

import os
import secrets
import weakref
from typing import Any, Callable

import numpy as np
import torch

RING_SLOTS = 4  # per worker: DataLoader's prefetch_factor (2) in flight + the batch the loop holds + one spare

_RINGS: dict[str, tuple[int, torch.Tensor]] = {}  # main process: token -> (worker pid, ring storage)


class BatchRing:
    """A worker's ``slots`` reusable shared-memory buffers of ``slot_bytes`` each, plus one busy flag per slot."""

    def __init__(self, slots: int, slot_bytes: int):
        self.slots, self.slot_bytes = int(slots), int(slot_bytes)
        self.header = -(-self.slots // 64) * 64                    # flags, padded to a cache line
        self.storage = torch.empty(self.header + self.slots * self.slot_bytes, dtype=torch.uint8).share_memory_()
        self.array = self.storage.numpy()
        self.flags = self.array[:self.slots]
        self.flags[:] = 0
        self.token = f"{os.getpid()}-{secrets.token_hex(8)}"
        self.pid = os.getpid()
        self._next = 0
        self._announce = True

    def restart(self) -> None:
        """A new iteration: the next batch carries the ring again (the main process may have dropped it)."""
        self._announce = True

    def acquire(self) -> int | None:
        """A free slot, now marked busy; None when the main process still holds every slot."""
        for k in range(self.slots):
            slot = (self._next + k) % self.slots
            if not self.flags[slot]:
                self.flags[slot] = 1
                self._next = slot + 1
                return slot
        return None

    def records(self, slot: int, dtype: np.dtype, count: int) -> np.ndarray:
        """``count`` records of ``dtype`` in ``slot``, to be filled by the worker."""
        start = self.header + slot * self.slot_bytes
        return self.array[start:start + count * dtype.itemsize].view(dtype)

    def message(self, slot: int, dtype: np.dtype, count: int, build: Callable[[np.ndarray], dict]) -> "RingBatch":
        """The item to yield for ``slot``: the batch ``build(records)`` makes, sent as a slot reference."""
        batch = RingBatch(build(self.records(slot, dtype, count)))
        batch._ring = (self.token, self.storage if self._announce else None, self.pid, self.header,
                       self.slot_bytes, slot, dtype, count, build)
        batch._sent = dict(batch)
        self._announce = False
        return batch


class RingBatch(dict):
    """A batch living in a :class:`BatchRing` slot; pickles to a reference the main process turns into tensors."""

    def __copy__(self) -> "RingBatch":
        clone = RingBatch(self)
        clone.__dict__.update(self.__dict__)
        return clone

    def __reduce__(self):
        sent = self.__dict__.get("_sent")
        if sent is None or sent.keys() != self.keys() or any(self[k] is not v for k, v in sent.items()):
            return dict, (dict(self),)          # a collate_fn changed it: torch's usual way
        return _rebuild_ring_batch, self._ring


def _rebuild_ring_batch(token: str, storage: torch.Tensor | None, pid: int, header: int, slot_bytes: int,
                        slot: int, dtype: np.dtype, count: int, build: Callable[[np.ndarray], dict]) -> dict:
    """Main process: the batch in ``slot`` as ``build(records)``; the slot is freed when they are all gone."""
    if storage is not None:
        _register(token, pid, storage)
    try:
        ring = _RINGS[token][1]
    except KeyError:
        raise RuntimeError(f"batch from DataLoader worker {pid} refers to a shared-memory ring ({token}) this "
                           "process never received") from None
    array = ring.numpy()
    start = header + slot * slot_bytes
    # an array over a memoryview: numpy stops collapsing view chains at a non-array base, so every tensor of
    # the batch (and every view of those) keeps exactly this array alive, and the finalizer waits for all
    held = np.frombuffer(memoryview(array)[start:start + count * dtype.itemsize], np.uint8)
    weakref.finalize(held, _release, array, slot)
    return build(held.view(dtype))


def _release(array: np.ndarray, slot: int) -> None:
    array[slot] = 0


def _register(token: str, pid: int, storage: torch.Tensor) -> None:
    """Keep ``storage`` mapped for the batches to come; drop rings of workers that are gone (or restarted)."""
    for key, (owner, _) in list(_RINGS.items()):
        if owner == pid or not _alive(owner):
            del _RINGS[key]
    _RINGS[token] = (pid, storage)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class InlineSample(dict):
    """One sample whose arrays travel inside the pickled message: only the bytes of each tensor (a view of a
    larger buffer sends just its own elements), rebuilt in the main process as tensors owning only those."""

    def __copy__(self) -> "InlineSample":
        clone = InlineSample(self)
        clone.__dict__.update(self.__dict__)
        return clone

    def __reduce__(self):
        sent = self.__dict__.get("_sent")
        if sent is None or sent.keys() != self.keys() or any(self[k] is not v for k, v in sent.items()):
            return dict, (dict(self),)
        return _rebuild_inline, ({k: (v.numpy() if isinstance(v, torch.Tensor) else v) for k, v in self.items()},)


def inline_sample(values: dict[str, Any]) -> InlineSample:
    """A per-sample item for a worker to yield (collated in the worker, it is an ordinary dict of tensors)."""
    item = InlineSample(values)
    item._sent = dict(item)
    return item


def _rebuild_inline(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (torch.from_numpy(v) if isinstance(v, np.ndarray) else v) for k, v in values.items()}
