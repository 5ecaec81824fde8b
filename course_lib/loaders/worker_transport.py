"""What a DataLoader worker sends to the main process, and how, so that workers pay on a copy-bound loader.

torch's default: every tensor a worker yields is moved into a *fresh* shared-memory segment (a new file,
``ftruncate``, ``mmap``, a page fault per 4 KiB on both sides, a file descriptor passed over a socket), and a
tensor that is a view of a larger buffer drags the whole buffer along. For a 3 MB batch that costs more than
gathering it; for a 12 KB sample that is a view of its block's 3 MB buffer, it costs ~250x the sample.

Two replacements, used inside workers only, through the one sender in ``item_sender.py`` that
:class:`~course_lib.loaders.mmap_shards.MmapShardDataset` and the WebDataset block path
(:func:`~course_lib.loaders.webdataset_pipeline.make_block_webdataset`) share:

- :class:`BatchRing`: each worker owns a few shared-memory *slots*, created once and mapped once by the main
  process. A :class:`SlotLayout` says where each array of a batch lies in a slot. The first batch of an
  iteration carries the ring and its layout; later ones carry only ``(token, slot, count)`` (a ~60-byte
  message). The worker writes a batch straight into a free slot, every array contiguous (labels included), so
  the main process only wraps the slot in tensors: no copy, no strided label gather, no dtype to unpickle.
  **What protects a batch the training loop still holds:** a slot is marked busy in shared memory until every
  tensor viewing it is gone (a weak reference to the slot's array in the main process); the worker only
  writes to free slots. When none is free (a larger ``prefetch_factor`` keeps more batches in flight, or the
  loop keeps some) the worker adds a ring (:class:`RingSet`, up to ``GROWTH`` rings), and past that sends a
  fresh batch torch's way (slower, never wrong).
- ``InlineSample`` (item_sender.py): a per-sample item whose tensor owns only its row and travels *inside* the
  pickled message (12 KB through the pipe) instead of through a shared-memory segment of its own.

Both are dict subclasses that the main process receives as plain ``dict`` s. If a ``collate_fn`` in the
worker replaces a value, the item is sent as a plain dict in torch's usual way (correct, just not faster).

What is left per item is torch's own protocol (an index sent to the worker, the result received, a profiler
record): ``tools/main_cost.py`` and the bench's "DataLoader per-item protocol" row measure it.
"""
from __future__ import annotations

import functools
import os
import secrets
import weakref
from typing import Any

import numpy as np
import torch

RING_SLOTS = 4  # per worker: DataLoader's prefetch_factor (2) in flight + the batch the loop holds + one spare
GROWTH = 4      # rings a worker may add when every slot is held (a larger prefetch_factor): up to 4 x RING_SLOTS
ALIGN = 64      # each array of a slot starts on a cache line
PAGE = 4096     # each slot starts on a page


class SlotLayout:
    """Where the arrays of one batch of up to ``capacity`` samples lie in a slot: ``columns`` maps a name to
    ``(dtype, per-sample shape)``; each array is contiguous and starts on a cache line.

    A plain object (pickled once per iteration, with the ring's announcement). :meth:`tensors` is what the
    main process calls for every batch; override it to present the arrays differently (``RecordLayout``).
    """

    def __init__(self, capacity: int, columns: dict[str, tuple[Any, tuple[int, ...]]]):
        self.capacity = int(capacity)
        self.columns: list[tuple[str, np.dtype, tuple[int, ...], int, int]] = []   # name, dtype, shape, offset, size
        offset = 0
        for name, (dtype, shape) in columns.items():
            dtype, shape = np.dtype(dtype), tuple(int(d) for d in shape)
            size = dtype.itemsize * int(np.prod(shape, dtype=np.int64))
            self.columns.append((name, dtype, shape, offset, size))
            offset += -(-size * self.capacity // ALIGN) * ALIGN
        self.nbytes = offset

    def fits(self, columns: dict[str, tuple[Any, tuple[int, ...]]], count: int) -> bool:
        """Whether a batch of ``count`` samples with these columns has a place in this layout."""
        return count <= self.capacity and [(n, np.dtype(d), tuple(s)) for n, (d, s) in columns.items()] == \
            [(n, d, s) for n, d, s, _, _ in self.columns]

    def arrays(self, buffer: np.ndarray, count: int) -> dict[str, np.ndarray]:
        """The arrays of a batch of ``count`` samples in ``buffer`` (a slot's bytes): what a worker fills."""
        return {name: (buffer[offset:offset + size * count].view(dtype).reshape(count, *shape) if shape
                       else buffer[offset:offset + size * count].view(dtype))
                for name, dtype, shape, offset, size in self.columns}

    def tensors(self, buffer: np.ndarray, count: int) -> dict[str, torch.Tensor]:
        """The batch as tensors viewing ``buffer`` (no copy): what the training loop receives."""
        return {name: torch.from_numpy(array) for name, array in self.arrays(buffer, count).items()}


class RecordLayout(SlotLayout):
    """A slot holding whole records of a structured ``dtype`` (one row copy per record from the shards) plus a
    contiguous copy of each scalar field: the batch is ``{array field: view of the records, scalar field: its
    column}``, so the main process never gathers a label out of 12 KB-strided records."""

    def __init__(self, capacity: int, dtype: np.dtype):
        dtype = np.dtype(dtype)
        self.record_dtype = dtype
        self.scalars = [name for name in dtype.names if dtype.fields[name][0].shape == ()]
        super().__init__(capacity, {"records": (dtype, ()),
                                    **{name: (dtype.fields[name][0], ()) for name in self.scalars}})
        columns = {name: (dt, offset, size) for name, dt, _, offset, size in self.columns}
        self._fields = [(name, columns.get(name)) for name in dtype.names]   # (field, its column or None)

    def fill_scalars(self, arrays: dict[str, np.ndarray]) -> None:
        """Copy each scalar field of the filled records into its column (in the worker, from its cache)."""
        records = arrays["records"]
        for name in self.scalars:
            np.copyto(arrays[name], records[name])

    def tensors(self, buffer: np.ndarray, count: int) -> dict[str, torch.Tensor]:
        records = buffer[:self.record_dtype.itemsize * count].view(self.record_dtype)
        out = {}
        for name, column in self._fields:              # per batch in the main process: views only
            if column is None:
                out[name] = torch.from_numpy(records[name])
            else:
                dtype, offset, size = column
                out[name] = torch.from_numpy(buffer[offset:offset + size * count].view(dtype))
        return out


class BatchRing:
    """A worker's ``slots`` reusable shared-memory buffers laid out by ``layout``, plus one busy flag per slot."""

    def __init__(self, slots: int, layout: SlotLayout, session: str | None = None, index: int = 0):
        self.slots, self.layout = int(slots), layout
        self.session = session or secrets.token_hex(8)        # the rings of one worker's RingSet share it
        self.slot_bytes = -(-layout.nbytes // PAGE) * PAGE
        self.header = PAGE                                        # the busy flags, one page before the slots
        self.storage = torch.empty(self.header + self.slots * self.slot_bytes, dtype=torch.uint8).share_memory_()
        self.array = self.storage.numpy()
        self.flags = self.array[:self.slots]
        self.flags[:] = 0
        self.token = f"{os.getpid()}-{self.session}-{index}"
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

    def buffer(self, slot: int) -> np.ndarray:
        """The bytes of ``slot``."""
        start = self.header + slot * self.slot_bytes
        return self.array[start:start + self.slot_bytes]

    def arrays(self, slot: int, count: int) -> dict[str, np.ndarray]:
        """The arrays of a ``count``-sample batch in ``slot``, for the worker to fill."""
        return self.layout.arrays(self.buffer(slot), count)

    def message(self, slot: int, count: int) -> "RingBatch":
        """The item to yield for the filled ``slot``: the batch as tensors, pickled as a slot reference."""
        batch = RingBatch(self.layout.tensors(self.buffer(slot), count))
        if self._announce:
            batch._ring = (_rebuild_announced, (self.token, self.storage, self.pid, self.session, self.header,
                                                self.slot_bytes, self.layout, slot, count))
            self._announce = False
        else:
            batch._ring = (_rebuild_ring_batch, (self.token, slot, count))
        batch._sent = dict(batch)
        return batch


class RingSet:
    """A worker's rings: ``slots`` slots at first, and another ring of ``slots`` when every slot is held (more
    batches in flight with a larger ``prefetch_factor``, or a loop that keeps a few), up to ``GROWTH`` rings;
    past that a batch goes torch's usual way. ``layout`` may be left for the first :meth:`acquire` to decide
    from its ``columns`` (the WebDataset block path learns the sample shape from the first block). A plain
    object holding no ring until used, so it pickles into workers; :meth:`__getstate__` leaves the rings behind.
    """

    def __init__(self, slots: int = RING_SLOTS, layout: SlotLayout | None = None, capacity: int = 1):
        self.slots, self.layout, self.capacity = int(slots), layout, int(capacity)
        self.rings: list[BatchRing] = []

    def restart(self) -> None:
        """A new iteration (see :meth:`BatchRing.restart`)."""
        for ring in self.rings:
            ring.restart()

    def acquire(self, count: int, columns: dict[str, tuple[Any, tuple[int, ...]]] | None = None
                ) -> tuple[BatchRing, int] | None:
        """A free ``(ring, slot)`` for a ``count``-sample batch (of ``columns``, when given); None with
        ``slots=0``, when the batch does not fit the layout, or when all ``GROWTH`` rings are held."""
        if not self.slots:
            return None
        if self.layout is None:
            self.layout = SlotLayout(max(self.capacity, count), columns)
        elif columns is not None and not self.layout.fits(columns, count) or count > self.layout.capacity:
            return None
        for ring in self.rings:
            slot = ring.acquire()
            if slot is not None:
                return ring, slot
        if len(self.rings) >= GROWTH:
            return None
        session = self.rings[0].session if self.rings else None
        self.rings.append(BatchRing(self.slots, self.layout, session, len(self.rings)))
        return self.rings[-1], self.rings[-1].acquire()

    @staticmethod
    def arrays(handle: tuple[BatchRing, int], count: int) -> dict[str, np.ndarray]:
        """See :meth:`BatchRing.arrays`."""
        return handle[0].arrays(handle[1], count)

    @staticmethod
    def message(handle: tuple[BatchRing, int], count: int) -> "RingBatch":
        """See :meth:`BatchRing.message`."""
        return handle[0].message(handle[1], count)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "rings": []}


class SentItem(dict):
    """An item a worker sends its own way; ``as_sent()`` tells whether it still holds what was put in it (a
    collate_fn that changed it makes it travel torch's usual way). Copies keep what was sent."""

    def __copy__(self) -> "SentItem":
        clone = type(self)(self)
        clone.__dict__.update(self.__dict__)
        return clone

    def as_sent(self) -> bool:
        sent = self.__dict__.get("_sent")
        return sent is not None and sent.keys() == self.keys() and all(self[k] is v for k, v in sent.items())


class RingBatch(SentItem):
    """A batch living in a :class:`BatchRing` slot; pickles to a reference the main process turns into tensors."""

    def __reduce__(self):
        if not self.as_sent():
            return dict, (dict(self),)          # a collate_fn changed it: torch's usual way
        return self._ring


class _MainRing:
    """The main process's side of one worker's ring: mapped once, then every batch is a few views of it."""

    __slots__ = ("pid", "session", "storage", "flags", "bytes", "header", "slot_bytes", "layout", "_held", "_free")

    def __init__(self, pid: int, session: str, storage: torch.Tensor, header: int, slot_bytes: int,
                 layout: SlotLayout):
        array = storage.numpy()
        self.pid, self.session, self.storage, self.flags, self.layout = pid, session, storage, array[:header], layout
        # slices of a memoryview, not of the array: numpy stops collapsing view chains at a non-array base, so
        # every tensor of a batch (and every view of those) keeps that batch's own array alive, and the
        # slot is freed only when the last of them is gone
        self.bytes = memoryview(array)
        self.header, self.slot_bytes = header, slot_bytes
        slots = (len(array) - header) // slot_bytes
        self._held: list[weakref.ref | None] = [None] * slots     # the live batch array of each slot
        self._free = [functools.partial(_release, self.flags, slot) for slot in range(slots)]

    def batch(self, slot: int, count: int) -> dict[str, torch.Tensor]:
        start = self.header + slot * self.slot_bytes
        held = np.frombuffer(self.bytes[start:start + self.slot_bytes], np.uint8)
        self._held[slot] = weakref.ref(held, self._free[slot])   # a plain weakref: cheaper than finalize
        return self.layout.tensors(held, count)


_RINGS: dict[str, _MainRing] = {}  # main process: token -> the ring of a live worker


def _rebuild_announced(token: str, storage: torch.Tensor, pid: int, session: str, header: int, slot_bytes: int,
                       layout: SlotLayout, slot: int, count: int) -> dict[str, torch.Tensor]:
    """Main process, first batch of a ring in a worker's iteration: keep the ring mapped, then read the batch."""
    for key, ring in list(_RINGS.items()):   # drop rings of workers that are gone (or replaced: same pid, new session)
        if key != token and (ring.pid == pid and ring.session != session or not _alive(ring.pid)):
            del _RINGS[key]
    if token not in _RINGS:
        _RINGS[token] = _MainRing(pid, session, storage, header, slot_bytes, layout)
    return _RINGS[token].batch(slot, count)


def _rebuild_ring_batch(token: str, slot: int, count: int) -> dict[str, torch.Tensor]:
    """Main process: the batch in ``slot`` as tensors; the slot is freed when they are all gone."""
    try:
        ring = _RINGS[token]
    except KeyError:
        raise RuntimeError(f"a batch from a DataLoader worker refers to a shared-memory ring ({token}) this "
                           "process never received") from None
    return ring.batch(slot, count)


def _release(flags: np.ndarray, slot: int, _ref: weakref.ref | None = None) -> None:
    flags[slot] = 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
