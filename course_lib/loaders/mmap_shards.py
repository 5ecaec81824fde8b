"""``MmapShardDataset``: stream data_gen's numpy shards through memory maps, correctly and fast."""
from __future__ import annotations

import mmap

from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from .epoch_plan import SHUFFLE_MODES, EpochPlan, rank_bounds
from .resharding import refuse_resharding
from .resume_position import ResumePosition, skip_ids
from .row_gather import gather_rows
from .runtime import check_non_negative, check_positive, current_worker, rank_and_world
from .seeding import SharedEpoch
from .shard_index import ShardHeader, index_shards
from .worker_transport import RING_SLOTS, RecordLayout, RingSet, inline_sample

Sample = dict[str, torch.Tensor]
_STATE_KEYS = ("seed", "shuffle", "block_size", "window_blocks", "run_length", "rank", "world_size", "drop_last",
               "total")


def default_run_length(batch_size: int | None, window_blocks: int) -> int:
    """The run of consecutive records a batch takes by default: ``batch_size // window_blocks`` (1 per sample)."""
    return max(1, batch_size // window_blocks) if batch_size else 1


class MmapShardDataset(IterableDataset):
    """An IterableDataset over ``shard_*.npy`` files that yields every sample exactly once per epoch.

    - ``shuffle``: ``"none"``, ``"block"`` (default: permuted contiguous blocks, mixed within windows of
      ``window_blocks`` blocks) or ``"sample"`` (full random permutation: random I/O, kept for contrast).
    - ``batch_size=None`` yields ``{"x": tensor, "y": int, "idx": int}`` per sample (the DataLoader's
      collate turns the ints into tensors); an integer yields ready batches of tensors built
      from few large reads (the fast path: use ``DataLoader(ds, batch_size=None)``). Within a batch,
      samples are in file order; which samples share a batch is what the shuffle decides.
    - Work is split by distributed rank (``torch.distributed`` when initialised, or ``rank``/``world_size``)
      and by DataLoader worker. ``drop_last=True`` gives every rank the same count.
    - ``handler``: ``"raise"`` (default) names a truncated or unreadable shard; ``"warn"`` keeps a cut shard's
      complete records, leaves unreadable ones out, and counts the samples lost in ``errors``.
    - ``set_epoch(e)``: the order is a pure function of (seed, epoch). DataLoader workers receive a copy of
      the dataset when an epoch's iterator starts, so call it before iterating. Persistent workers keep
      their first copy: with ``persistent_workers=True`` build the dataset with ``shared_epoch=True`` (the
      epoch then lives in shared memory that the workers read).
    - Inside DataLoader workers, batches are gathered straight into ``worker_slots`` reused shared-memory
      slots per worker and per-sample items carry only their own row (``worker_transport``): what torch does
      by default (a fresh shared-memory segment per tensor) cost more than the reading itself.
      ``worker_slots=0`` sends items torch's default way (kept to measure the difference). A worker whose
      slots are all held (``prefetch_factor`` > 2) adds rings of ``worker_slots`` slots, up to 4.
    - ``read_ahead`` (default on): as each window of the plan begins, ask the kernel for the next one
      (``madvise(MADV_WILLNEED)``), so a cold cache reads ahead of the gathers.
    - ``run_length``: with the block shuffle, permute runs of that many consecutive samples instead of
      single ones: a batch is then a few long copies instead of many 12 KB ones. The default gives batches
      ``batch_size // window_blocks`` (16 for 256 and 16), so a batch still takes ``window_blocks`` runs, about
      one from each block of its window (which blocks share a batch, and where samples go in the epoch, are
      unchanged; only neighbours on disk now arrive together); per sample it is 1. Measured trade:
      ``measure.shuffle_frontier``.
    - ``state_dict()`` / ``load_state_dict()``: resume mid-epoch. The loader yields this rank's stream in
      the same order for any ``num_workers``, so the state is the number of samples consumed: in the main
      process call ``state_dict(samples_seen=n)`` with what the training loop consumed. Inside a DataLoader
      worker (as torchdata's ``StatefulDataLoader`` calls it) the state is that worker's own position,
      and loading it makes the same worker continue where it stopped.
    """

    def __init__(self, data_dir: str | Path, *, shuffle: str = "block", block_size: int = 256,
                 batch_size: int | None = None, seed: int = 0, rank: int | None = None,
                 world_size: int | None = None, drop_last: bool = False, window_blocks: int = 16,
                 shared_epoch: bool = False, worker_slots: int = RING_SLOTS, read_ahead: bool = True,
                 run_length: int | None = None, handler: str = "raise"):
        super().__init__()
        if shuffle not in SHUFFLE_MODES:
            raise ValueError(f"shuffle must be one of {SHUFFLE_MODES}, got {shuffle!r}")
        if run_length is None:
            run_length = default_run_length(batch_size, window_blocks)
        for name, value in [("block_size", block_size), ("window_blocks", window_blocks), ("run_length", run_length)]:
            check_positive(name, value)
        check_non_negative("worker_slots", worker_slots)
        if batch_size is not None:
            check_positive("batch_size", batch_size)
        self.index = index_shards(data_dir, handler=handler)
        self._offsets = self.index.offsets
        self.shuffle, self.block_size, self.batch_size = shuffle, block_size, batch_size
        self.seed, self.drop_last, self.window_blocks = seed, drop_last, window_blocks
        self.rank, self.world_size = rank_and_world(rank, world_size)
        self._shared_epoch = SharedEpoch() if shared_epoch else None
        self.epoch = 0
        self._position = ResumePosition()
        self.worker_slots, self.read_ahead, self.run_length = worker_slots, read_ahead, run_length
        self._maps: list[np.ndarray] | None = None
        self._ring: RingSet | None = None

    @property
    def errors(self):
        """With ``handler="warn"``: the skipped shards (``count``, ``messages``, ``samples_lost``); else None."""
        return self.index.errors

    # -- the plan ---------------------------------------------------------------------------------
    def plan(self, epoch: int | None = None) -> EpochPlan:
        """The integer plan this rank follows in ``epoch`` (default: the current one)."""
        return EpochPlan(self.index.counts, block_size=self.block_size, shuffle=self.shuffle, seed=self.seed,
                         epoch=self.epoch if epoch is None else epoch, rank=self.rank,
                         world_size=self.world_size, drop_last=self.drop_last, window_blocks=self.window_blocks,
                         run_length=self.run_length)

    def __len__(self) -> int:
        """Samples this rank yields per epoch (the same every epoch: no plan needed)."""
        start, stop = rank_bounds(len(self.index), self.rank, self.world_size, self.drop_last)
        return stop - start

    @property
    def bytes_per_sample(self) -> int:
        """Bytes of one record (image, label and index, padded)."""
        return self.index.bytes_per_sample

    @property
    def epoch(self) -> int:
        """The epoch the next iterator plays (from shared memory with ``shared_epoch=True``)."""
        return self._shared_epoch.get() if self._shared_epoch is not None else self._epoch

    @epoch.setter
    def epoch(self, epoch: int) -> None:
        self._epoch = int(epoch)
        if self._shared_epoch is not None:
            self._shared_epoch.set(epoch)

    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch`` from its beginning (call before iterating, as with DistributedSampler)."""
        refuse_resharding(self)                  # split by rank already: never split again (resharding.py)
        self.epoch = epoch
        self._position.restart()

    # -- resumption (the arithmetic is ResumePosition's; see resume_position.py) -------------------
    def state_dict(self, samples_seen: int | None = None) -> dict[str, Any]:
        """Where this rank is in its epoch. ``samples_seen`` defaults to what was yielded in this process.

        Inside a DataLoader worker, with no ``samples_seen``, the state is this worker's own position:
        ``samples_seen`` where its iterator started plus ``worker``, ``num_workers`` and ``worker_samples``.
        """
        position = self._position.state(len(self), *current_worker(), samples_seen=samples_seen)
        return {"epoch": self.epoch, **position, **self._config()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state``: the next iteration yields exactly the samples not yet seen, in order."""
        mine = self._config()
        for key in _STATE_KEYS:
            if state.get(key, 1 if key == "run_length" else None) != mine[key]:   # states from before runs: 1
                raise ValueError(f"state_dict[{key!r}] is {state.get(key)!r} but this dataset has {mine[key]!r}: "
                                 "a resumed run must use the same data and settings")
        self._position.load(state, len(self), *current_worker())
        self.epoch = int(state["epoch"])

    def _config(self) -> dict[str, Any]:
        return {"seed": self.seed, "shuffle": self.shuffle, "block_size": self.block_size,
                "window_blocks": self.window_blocks, "run_length": self.run_length, "rank": self.rank,
                "world_size": self.world_size, "drop_last": self.drop_last, "total": len(self.index)}

    # -- reading ----------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Sample]:
        refuse_resharding(self)
        in_worker = get_worker_info() is not None and self.worker_slots > 0   # 0: torch's default transport
        if self.batch_size:
            yield from (self._ring_batches() if in_worker else (batch_tensors(self._gather(ids))
                                                                for ids in self.batch_ids()))
            return
        worker, workers = current_worker()
        position = self._position
        resume, skip = position.begin()
        plan = self.plan()
        for chunk in skip_ids(plan.worker_chunks(worker, workers, 1, resume, self._reader(plan)), skip):
            for k in range(0, len(chunk), self.block_size):
                ids = chunk[k:k + self.block_size]
                order = np.argsort(ids, kind="stable")
                part = self._gather(ids[order])          # sorted: one copy, grouped by shard
                ys, idxs = part["y"].tolist(), part["idx"].tolist()
                xs = torch.from_numpy(part["x"]).unbind(0)
                if in_worker:  # sent alone, a sample carries only its own row, inside the message (worker_transport)
                    for j in np.argsort(order).tolist():
                        position.seen += 1
                        yield inline_sample({"x": xs[j], "y": ys[j], "idx": idxs[j]})
                    continue
                for j in np.argsort(order).tolist():      # back to stream order
                    position.seen += 1                    # position.advance(1), inlined: once per sample
                    yield {"x": xs[j], "y": ys[j], "idx": idxs[j]}

    def _ring_batches(self) -> Iterator[Sample]:
        """Inside a DataLoader worker: each batch gathered straight into a reused shared-memory slot
        (see ``worker_transport``); a fresh batch only when the main process still holds every slot."""
        if self._ring is None:
            self._ring = RingSet(self.worker_slots, RecordLayout(self.batch_size, self.index.dtype))
        rings = self._ring
        layout = rings.layout
        rings.restart()
        for ids in self.batch_ids():
            handle = rings.acquire(len(ids))
            if handle is None:
                yield batch_tensors(self._gather(ids))
                continue
            arrays = rings.arrays(handle, len(ids))
            self._gather(ids, arrays["records"])
            layout.fill_scalars(arrays)
            yield rings.message(handle, len(ids))

    def batch_ids(self) -> Iterator[np.ndarray]:
        """The sorted global ids of each batch this rank and worker yields this epoch (what ``__iter__`` reads).

        Iterating it counts the batches as yielded (for ``state_dict``); with :meth:`read_records` a caller
        can gather each batch into a buffer of its own (``DeviceLoader`` uses pinned memory).
        """
        if not self.batch_size:
            raise ValueError("batch_ids needs a dataset built with batch_size")
        worker, workers = current_worker()
        resume, skip = self._position.begin()
        plan = self.plan()
        for ids in skip_ids(plan.worker_units(worker, workers, self.batch_size, resume, self._reader(plan)), skip):
            self._position.advance(len(ids))
            yield np.sort(ids)

    def read_records(self, ids: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Records for sorted, unique global ``ids``, gathered with one copy out of the memory maps.

        ``out``: a C-contiguous array of ``len(ids)`` records of this dataset's dtype to fill (for example
        one backed by pinned memory); by default a new one. Sorted ids come grouped by shard and ascending
        within it: each group is one slice copy when it is contiguous, else one gather.
        """
        ids = np.asarray(ids, dtype=np.int64)
        if out is None:
            out = np.empty(len(ids), dtype=self.index.dtype)
        elif (out.dtype != self.index.dtype or out.shape != (len(ids),) or not out.flags.c_contiguous
              or not out.flags.writeable):
            raise ValueError(f"out must be a writable C-contiguous array of {len(ids)} records of dtype "
                             f"{self.index.dtype}, got shape {out.shape}, dtype {out.dtype}, "
                             f"writable={out.flags.writeable}")
        if len(ids) and (np.any(np.diff(ids) <= 0) or ids[0] < 0 or ids[-1] >= len(self.index)):
            raise ValueError(f"ids must be sorted, unique and within 0..{len(self.index) - 1}")
        return self._gather(ids, out) if len(ids) else out

    def _gather(self, ids: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """:meth:`read_records` for ids known to be sorted, unique and in range (the plan's own)."""
        if out is None:
            out = np.empty(len(ids), dtype=self.index.dtype)
        maps, offsets = self._open(), self._offsets
        raw = out.view(np.uint8).reshape(len(ids), -1)
        shard = np.searchsorted(offsets, ids, side="right") - 1
        local = ids - offsets[shard]
        cuts = (np.flatnonzero(np.diff(shard)) + 1).tolist()
        for a, b in zip([0, *cuts], [*cuts, len(ids)]):
            gather_rows(maps[shard[a]], local[a:b], raw[a:b])
        return out

    def _reader(self, plan: EpochPlan):
        """The ``on_window`` hook of the plan: read-ahead of the window after the one beginning (None: off)."""
        if not self.read_ahead:
            return None
        started = []

        def on_window(w: int) -> None:
            if not started:                      # the first window of this iteration: ask for it too
                started.append(w)
                self.advise(plan, w)
            self.advise(plan, w + plan.window)
        return on_window

    def advise(self, plan: EpochPlan, w: int) -> int:
        """Ask the kernel to start reading the window at rank position ``w`` (``madvise(MADV_WILLNEED)`` on
        each run of consecutive records): on a cold cache the reads overlap the work on the current window
        instead of faulting in one page at a time. Returns the number of ranges advised."""
        if not 0 <= w < len(plan):
            return 0
        ids = np.sort(plan.ids(w, min(w + plan.window, len(plan))))
        self._open()
        shard = np.searchsorted(self._offsets, ids, side="right") - 1
        local = ids - self._offsets[shard]
        cuts = np.flatnonzero((np.diff(local) != 1) | (np.diff(shard) != 0)) + 1
        headers, page = self.index.headers, mmap.PAGESIZE
        for a, b in zip([0, *cuts.tolist()], [*cuts.tolist(), len(ids)]):
            h = headers[shard[a]]
            begin = h.data_offset + int(local[a]) * h.dtype.itemsize
            end = h.data_offset + (int(local[b - 1]) + 1) * h.dtype.itemsize
            aligned = begin - begin % page
            self._mmaps[shard[a]].madvise(mmap.MADV_WILLNEED, aligned, end - aligned)
        return len(cuts) + 1

    def _open(self) -> list[np.ndarray]:
        """Memory-map every shard once per process (nothing is read until touched).

        Each map is viewed as a read-only 2-D ``uint8`` array, one row of ``itemsize`` bytes per record:
        plain byte rows gather far faster than structured records. The maps never leave this class.
        """
        if self._maps is None:
            mapped = [_map_rows(h) for h in self.index.headers]
            self._mmaps = [m for m, _ in mapped]
            self._maps = [rows for _, rows in mapped]
        return self._maps

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_maps"] = None  # each DataLoader worker maps the files itself
        state["_ring"] = None  # and makes its own shared-memory ring
        state.pop("_mmaps", None)
        return state


def _map_rows(header: ShardHeader) -> tuple[mmap.mmap, np.ndarray]:
    """A read-only memory map of one shard, and its records as read-only ``(count, itemsize)`` bytes."""
    with open(header.path, "rb") as f:
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    itemsize = header.dtype.itemsize
    rows = np.frombuffer(mapped, np.uint8, count=header.count * itemsize,
                         offset=header.data_offset).reshape(header.count, itemsize)
    return mapped, rows


def batch_tensors(batch: np.ndarray) -> Sample:
    """A batch of records as tensors: ``x`` is a view (no copy); the small label arrays are copied."""
    return {"x": torch.from_numpy(batch["x"]),
            "y": torch.from_numpy(np.ascontiguousarray(batch["y"])),
            "idx": torch.from_numpy(np.ascontiguousarray(batch["idx"]))}
