"""How a batch of gathered records leaves the process that read it: the one sender every batched path shares.

Inside a DataLoader worker a batch is gathered straight into a reused shared-memory slot (``worker_transport``'s
rings) and a per-sample item carries only its own row inside the pickled message (:class:`InlineSample`). In
the main process, or with ``worker_slots=0``, items are plain dicts of tensors (torch's default transport).
:func:`send_batch` is the part the WebDataset block path (``block_mixing``) shares; :class:`RecordSender` adds
the memory-mapped loader's records and samples.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

import numpy as np
import torch

from .worker_transport import RecordLayout, RingSet, SentItem

Batch = dict[str, torch.Tensor]


def send_batch(ring: RingSet | None, count: int, fill: Callable[[dict[str, np.ndarray] | None], Any],
               columns: dict[str, tuple[Any, tuple[int, ...]]] | None = None) -> Batch:
    """The item to yield for a batch of ``count`` samples: ``fill(arrays)`` writes it into a free ring slot,
    which is sent as a slot reference; with no ring (or no free slot) ``fill(None)`` returns the batch itself,
    in new memory, sent torch's usual way."""
    handle = None if ring is None else ring.acquire(count, columns)
    if handle is None:
        return fill(None)
    fill(ring.arrays(handle, count))
    return ring.message(handle, count)


def batch_tensors(batch: np.ndarray) -> Batch:
    """A batch of records as tensors: ``x`` is a view (no copy); the small label arrays are copied."""
    return {"x": torch.from_numpy(batch["x"]),
            "y": torch.from_numpy(np.ascontiguousarray(batch["y"])),
            "idx": torch.from_numpy(np.ascontiguousarray(batch["idx"]))}


class RecordSender:
    """Yields ``(samples, item)`` for each group of ids: one batch (``batch_size`` set), or the group's samples in
    stream order. ``in_worker``: send through shared-memory slots and inline samples (``worker_transport``)."""

    def __init__(self, dtype: np.dtype, batch_size: int | None, in_worker: bool, ring: RingSet | None = None):
        self.dtype, self.batch_size, self.in_worker = np.dtype(dtype), batch_size, in_worker
        self.ring = ring if in_worker and batch_size else None
        if self.ring is not None:
            if self.ring.layout is None:
                self.ring.layout = RecordLayout(batch_size, self.dtype)
            self.ring.restart()

    def items(self, ids: np.ndarray, gather: Callable[[np.ndarray, np.ndarray | None], np.ndarray]
              ) -> Iterator[tuple[int, dict[str, Any]]]:
        """``gather(sorted_ids, out)`` fills records with one copy; this turns them into what is yielded."""
        order = np.argsort(ids, kind="stable")          # sorted: one copy, grouped by shard, in file order
        if self.batch_size:                             # a batch: the plan sorted it, except a last part
            back = None if np.all(order[1:] > order[:-1]) else np.argsort(order)  # split across ranks
            yield len(ids), send_batch(self.ring, len(ids), lambda out: self._fill(gather, ids[order], back, out))
            return
        part = gather(ids[order], None)
        xs, ys, idxs = torch.from_numpy(part["x"]).unbind(0), part["y"].tolist(), part["idx"].tolist()
        wrap = inline_sample if self.in_worker else dict
        for j in np.argsort(order).tolist():            # samples: back to stream order
            yield 1, wrap({"x": xs[j], "y": ys[j], "idx": idxs[j]})

    def _fill(self, gather, ids: np.ndarray, back: np.ndarray | None, out: dict[str, np.ndarray] | None
              ) -> Batch | None:
        """Gather sorted ``ids`` (into ``out``'s records when given); ``back``: the stream order, when not sorted."""
        records = gather(ids, None if out is None else out["records"])
        if back is not None:
            records[:] = records[back]                  # a small last batch: back to the plan's order
        if out is None:
            return batch_tensors(records)
        self.ring.layout.fill_scalars(out)
        return None


class InlineSample(SentItem):
    """One sample whose arrays travel inside the pickled message: only the bytes of each tensor (a view of a
    larger buffer sends just its own elements), so each tensor in the main process owns only its row."""

    def __reduce__(self):
        if not self.as_sent():
            return dict, (dict(self),)
        values, rows = dict(self), {}
        for k, v in self.items():
            if isinstance(v, torch.Tensor):
                try:
                    array = v.numpy()
                except (TypeError, RuntimeError):   # a dtype numpy lacks (bfloat16), a tensor needing grad
                    continue                        # : that one goes torch's way
                values[k] = None
                rows[k] = (np.ascontiguousarray(array).tobytes(), array.dtype.str, array.shape)
        return _rebuild_inline, (values, rows)


def inline_sample(values: dict[str, Any]) -> InlineSample:
    """A per-sample item for a worker to yield (collated in the worker, it is an ordinary dict of tensors)."""
    item = InlineSample(values)
    item._sent = dict(item)
    return item


def _rebuild_inline(values: dict[str, Any], rows: dict[str, tuple[bytes, str, tuple[int, ...]]]) -> dict:
    """Main process: each tensor owns a writable copy of the bytes that came in the message (a ``bytes`` object
    unpickles far faster than a ``bytearray`` or an array; one 12 KB copy costs less than either)."""
    for k, (data, dtype, shape) in rows.items():
        values[k] = torch.from_numpy(np.frombuffer(bytearray(data), dtype).reshape(shape))
    return values
