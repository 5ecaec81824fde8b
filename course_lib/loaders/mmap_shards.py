"""``MmapShardDataset``: stream data_gen's numpy shards through memory maps, correctly and fast.

The worked solution to chapter 02's exercise (an IterableDataset that splits shards by ``get_worker_info``,
orders blocks per (seed, epoch) and gathers each batch with one copy). Where each step of that loader lives:

| the learner's step              | here                                                                            |
| ------------------------------- | ------------------------------------------------------------------------------- |
| list the shards                 | ``index_shards`` (shard_index.py): headers only, checked against the manifest   |
| map them                        | ``MmapShardDataset._rows`` / ``_map_rows`` (this file): one read-only map each  |
| shuffle (seed, epoch)           | ``epoch_order`` (epoch_plan.py): blocks, windows, runs, spans; keyed_rng.py     |
| split by rank                   | ``deal`` (epoch_plan.py): rounds of world_size batches (README)        |
| split by worker                 | ``EpochPlan.worker_units`` + ``current_worker`` (runtime.py)                    |
| ``set_epoch``                   | ``set_epoch`` (this file); ``SharedEpoch`` (seeding.py) for persistent workers  |
| gather a batch with one copy    | ``MmapShardDataset._gather`` -> ``gather_rows`` (row_gather.py)                 |
| yield (out of a worker)         | ``RecordSender`` (item_sender.py) -> shared-memory slots (worker_transport.py)  |
| read ahead on a cold cache      | ``ReadAhead`` (read_ahead.py)                                                   |
| resume mid-epoch                | ``state_dict`` / ``load_state_dict`` -> ``ResumePosition`` (resume_position.py) |
| resume on another world size    | ``load_state_dict`` -> ``delivered_positions`` (resume_position.py)             |
"""
from __future__ import annotations

import mmap
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from .epoch_plan import SHUFFLE_MODES, STREAMS, EpochPlan, rank_length
from .item_sender import RecordSender, batch_tensors  # noqa: F401  (batch_tensors: imported from here by callers)
from .read_ahead import ReadAhead, advise_records
from .resharding import refuse_resharding
from .resume_position import ResumePosition, delivered_positions, skip_ids
from .row_gather import gather_rows
from .runtime import check_non_negative, check_positive, current_worker, rank_and_world
from .seeding import SharedEpoch
from .shard_index import ShardHeader, index_shards
from .worker_transport import RING_SLOTS, RingSet

Sample = dict[str, torch.Tensor]
_ORDER_KEYS = ("seed", "shuffle", "block_size", "window_blocks", "run_length", "batch_size", "streams", "total")


def default_run_length(batch_size: int | None, window_blocks: int) -> int:
    """The run of consecutive records a batch takes by default: ``batch_size // window_blocks`` (1 per sample)."""
    return max(1, batch_size // window_blocks) if batch_size else 1


class MmapShardDataset(IterableDataset):
    """Every sample of ``data_dir``'s ``shard_*.npy`` files exactly once per epoch, per sample or in batches.

    - ``shuffle``: ``"none"``, ``"block"`` (default: permuted blocks of ``block_size`` samples, mixed within
      windows of ``window_blocks`` blocks in runs of ``run_length``) or ``"sample"`` (random reads; for contrast).
    - ``batch_size=None`` yields ``{"x": tensor, "y": int, "idx": int}`` per sample; an integer yields batches
      gathered with one copy, in file order within each batch (use ``DataLoader(ds, batch_size=None)``).
    - Split by rank (``torch.distributed``, or ``rank``/``world_size``) and by DataLoader worker; the order is
      the same for any ``num_workers``. ``drop_last=True`` gives every rank the same count.
    - ``set_epoch(e)`` before iterating; with persistent workers build it with ``shared_epoch=True``.
    - ``state_dict(samples_seen=n)`` / ``load_state_dict``: resume mid-epoch (resume_position.py).
    - ``handler="warn"`` keeps a cut shard's complete records and counts the rest in ``errors``.
    - ``worker_slots`` (item_sender.py, worker_transport.py) and ``read_ahead`` (read_ahead.py) are speed only.
    """

    def __init__(self, data_dir: str | Path, *, shuffle: str = "block", block_size: int = 256,
                 batch_size: int | None = None, seed: int = 0, rank: int | None = None,
                 world_size: int | None = None, drop_last: bool = False, window_blocks: int = 16,
                 shared_epoch: bool = False, worker_slots: int = RING_SLOTS, read_ahead: bool = True,
                 run_length: int | None = None, streams: int = STREAMS, handler: str = "raise"):
        super().__init__()
        if shuffle not in SHUFFLE_MODES:
            raise ValueError(f"shuffle must be one of {SHUFFLE_MODES}, got {shuffle!r}")
        if run_length is None:
            run_length = default_run_length(batch_size, window_blocks)
        for name, value in [("block_size", block_size), ("window_blocks", window_blocks), ("run_length", run_length),
                            ("streams", streams)]:
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
        self.streams = streams
        self._done: list[int] = []   # epoch-order positions delivered by a job on another topology (resume)
        self._files: list[mmap.mmap] | None = None     # one read-only memory map per shard (this process's)
        self._records: list[np.ndarray] | None = None  # the same maps as (count, itemsize) uint8 record rows
        self._ring = RingSet(worker_slots)              # a worker's shared-memory slots, made when first used

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
                         run_length=self.run_length, batch_size=self.batch_size, streams=self.streams,
                         done=self._done if epoch is None or epoch == self.epoch else ())

    def __len__(self) -> int:
        """Samples this rank yields this epoch (all of its share, or what is left of it after a resume on
        another topology): arithmetic, no plan needed."""
        left = len(self.index) - sum(b - a for a, b in zip(self._done[0::2], self._done[1::2]))
        return rank_length(left, self.batch_size or 1, self.rank, self.world_size, self.drop_last)

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
        self._done = []
        self._position.restart()

    # -- resumption (the arithmetic is ResumePosition's; see resume_position.py) -------------------
    def state_dict(self, samples_seen: int | None = None) -> dict[str, Any]:
        """Where this rank is in its epoch. ``samples_seen`` defaults to what was yielded in this process.

        Inside a DataLoader worker, with no ``samples_seen``, the state is this worker's own position:
        ``samples_seen`` where its iterator started plus ``worker``, ``num_workers`` and ``worker_samples``.
        """
        position = self._position.state(len(self), *current_worker(), samples_seen=samples_seen)
        return {"epoch": self.epoch, **position, **self._config(), "rank": self.rank, "world_size": self.world_size,
                "drop_last": self.drop_last, "done": list(self._done)}

    def load_state_dict(self, state: dict[str, Any] | list[dict[str, Any]]) -> None:
        """Continue from ``state``: the next iteration yields exactly the samples not yet seen, in order.

        ``state``: this rank's own, or one saved on any rank while all ranks had taken the same number of
        batches (DDP lockstep), or the list of every rank's states. The job may have had another
        ``world_size`` or ``num_workers``: together the two jobs deliver the epoch exactly once, in the
        epoch's order (README: Elastic determinism). Data, seed, shuffle or batch settings that differ are refused.
        """
        states = list(state) if isinstance(state, (list, tuple)) else [state]
        if not states:
            raise ValueError("load_state_dict needs a state or a non-empty list of states")
        mine = self._config()
        for saved in states:
            for key in _ORDER_KEYS:
                if saved.get(key) != mine[key]:
                    raise ValueError(f"state_dict[{key!r}] is {saved.get(key)!r} but this dataset has {mine[key]!r}: "
                                     "a resumed run must use the same data and settings")
        own = [s for s in states if (s.get("rank"), s.get("world_size"), s.get("drop_last")) ==
               (self.rank, self.world_size, self.drop_last)]
        self.epoch = int(states[0]["epoch"])
        if own and (len(states) == 1 or len(states) == self.world_size):   # the same topology: this rank's count
            self._done = list(own[0].get("done", []))
            self._position.load(own[0], len(self), *current_worker())
        else:
            self._done = delivered_positions(states, len(self.index), self.batch_size or 1)
            self._position.load({"samples_seen": 0}, len(self))

    def _config(self) -> dict[str, Any]:
        return {"seed": self.seed, "shuffle": self.shuffle, "block_size": self.block_size,
                "window_blocks": self.window_blocks, "run_length": self.run_length, "batch_size": self.batch_size,
                "streams": self.streams, "total": len(self.index)}

    # -- reading ----------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Sample]:
        refuse_resharding(self)
        sender = RecordSender(self.index.dtype, self.batch_size, self._in_worker(), self._ring)
        for ids in self._planned_ids(*self._position.begin()):   # plan -> this worker's ids, resume applied
            for count, item in sender.items(ids, self._gather):    # gather (one copy) -> a batch, or samples
                self._position.advance(count)
                yield item

    def batch_ids(self) -> Iterator[np.ndarray]:
        """The sorted global ids of each batch the next iteration of this rank and worker yields (from a loaded
        resume point); iterating it changes no state. With :meth:`read_records` a caller can gather each batch
        into a buffer of its own (``DeviceLoader`` uses pinned memory)."""
        if not self.batch_size:
            raise ValueError("batch_ids needs a dataset built with batch_size")
        for ids in self._planned_ids(*self._position.pending):
            yield np.sort(ids)

    def _planned_ids(self, resume: int, skip: int) -> Iterator[np.ndarray]:
        """This worker's groups of ids in stream order: its batches, or per sample groups of ``block_size``.
        ``resume``: the rank-stream position to plan from; ``skip``: this worker's samples to leave out after it."""
        worker, workers = current_worker()
        plan = self.plan()
        hook = ReadAhead(plan.ids, len(plan), plan.window, self._advise) if self.read_ahead else None
        if self.batch_size:
            yield from skip_ids(plan.worker_units(worker, workers, self.batch_size, resume, hook), skip)
            return
        for chunk in skip_ids(plan.worker_chunks(worker, workers, 1, resume, hook), skip):
            yield from (chunk[k:k + self.block_size] for k in range(0, len(chunk), self.block_size))

    def _in_worker(self) -> bool:
        """Inside a DataLoader worker with shared-memory slots (``worker_slots=0``: torch's default transport)."""
        return get_worker_info() is not None and self.worker_slots > 0

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
        records, offsets = self._rows(), self._offsets
        raw = out.view(np.uint8).reshape(len(ids), -1)
        shard = np.searchsorted(offsets, ids, side="right") - 1
        local = ids - offsets[shard]
        cuts = (np.flatnonzero(np.diff(shard)) + 1).tolist()
        for a, b in zip([0, *cuts], [*cuts, len(ids)]):
            gather_rows(records[shard[a]], local[a:b], raw[a:b])
        return out

    def _advise(self, ids: np.ndarray) -> int:
        """Ask the kernel to read the records ``ids`` ahead (read_ahead.py)."""
        self._rows()
        return advise_records(self._files, self.index.headers, self._offsets, ids)

    def _rows(self) -> list[np.ndarray]:
        """Memory-map every shard once per process (nothing is read until touched).

        Each map is viewed as a read-only 2-D ``uint8`` array, one row of ``itemsize`` bytes per record:
        plain byte rows gather far faster than structured records. The maps never leave this class.
        """
        if self._records is None:
            mapped = [_map_rows(h) for h in self.index.headers]
            self._files = [f for f, _ in mapped]
            self._records = [rows for _, rows in mapped]
        return self._records

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_files"] = state["_records"] = None   # each DataLoader worker maps the files itself
        return state                                 # (a RingSet pickles without its rings)


def _map_rows(header: ShardHeader) -> tuple[mmap.mmap, np.ndarray]:
    """A read-only memory map of one shard, and its records as read-only ``(count, itemsize)`` bytes."""
    with open(header.path, "rb") as f:
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    itemsize = header.dtype.itemsize
    rows = np.frombuffer(mapped, np.uint8, count=header.count * itemsize,
                         offset=header.data_offset).reshape(header.count, itemsize)
    return mapped, rows
