"""Feeding an accelerator: batches copied to the device through pinned staging buffers, one batch ahead.

A batch from ``MmapShardDataset`` lives in ordinary (pageable) host memory. ``tensor.to("cuda")`` from pageable
memory makes the driver copy it into a pinned bounce buffer first and blocks the Python thread until the
transfer ends. :class:`DeviceLoader` instead copies each batch into a reused *pinned* buffer (the one host copy
it needs anyway, since ``x`` is a strided view of the records) and starts ``non_blocking`` copies on a side
CUDA stream, so the next batch travels while the current one is used. On a CPU-only machine it simply yields
the batches (``.to("cpu")`` is a no-op), so the same training loop runs everywhere.

Four modes (``MODES``): ``pageable`` (plain ``.to``), ``pinned`` (a reused pinned buffer, then a non-blocking
copy), ``pinned+prefetch`` (the same, one batch ahead on a side stream) and ``direct`` (a batched
``MmapShardDataset``'s records gathered straight into pinned memory, cut into ``x``/``y``/``idx`` on the device).

    python -m course_lib.loaders.device_transfer --data-dir build/data   # every mode, side by side
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import torch

from ..measure.throughput import ThroughputResult
from .cli_args import add_data_dir_argument

Batch = dict[str, torch.Tensor]
MODES = ("pageable", "pinned", "pinned+prefetch", "direct")


def default_device() -> torch.device:
    """``cuda`` when torch sees a GPU, else ``cpu``."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class DeviceLoader:
    """Iterate ``loader`` (dict batches of tensors) and yield each batch with its tensors on ``device``.

    ``mode``: ``"pageable"`` (plain ``.to(device)``), ``"pinned"`` (copy into a reused pinned buffer, then a
    non-blocking copy, waited for at once), ``"pinned+prefetch"`` (the default: the same, one batch ahead
    on a side stream) or ``"direct"`` (for a batched ``MmapShardDataset``: gather each batch's records
    straight from the memory maps into pinned memory, send the raw records, and cut ``x``/``y``/``idx``
    out of them on the device, so the host copies each byte once). Non-tensor values pass through
    unchanged. On a non-CUDA device every mode is ``.to``.
    """

    def __init__(self, loader: Iterable[Batch], device: str | torch.device | None = None, *,
                 mode: str = "pinned+prefetch"):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.loader, self.mode = loader, mode
        self.device = default_device() if device is None else torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device={self.device} asked for, but torch sees no CUDA device here")
        if mode == "direct" and not (hasattr(loader, "batch_ids") and getattr(loader, "batch_size", None)):
            raise ValueError("mode='direct' needs a MmapShardDataset built with batch_size (it reads the records "
                             f"itself), got {type(loader).__name__}")

    def __iter__(self) -> Iterator[Batch]:
        if self.device.type != "cuda" or self.mode == "pageable":
            for batch in self.loader:
                yield _map_tensors(batch, lambda t: t.to(self.device))
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            return
        if self.mode == "direct":
            yield from self._direct()
        else:
            yield from (self._prefetched() if self.mode == "pinned+prefetch" else self._pinned())

    def _pinned(self) -> Iterator[Batch]:
        staging = _Staging()
        for batch in self.loader:
            out = self._send(staging, 0, batch)
            torch.cuda.current_stream(self.device).synchronize()   # buffer free again; data on the device
            yield out

    def _prefetched(self) -> Iterator[Batch]:
        staging = _Staging()
        yield from self._overlapped(self.loader, lambda batch, slot: self._send(staging, slot, batch))

    def _direct(self) -> Iterator[Batch]:
        ds, staging = self.loader, _Staging()
        dtype = ds.index.dtype

        def send(ids: np.ndarray, slot: int) -> Batch:
            host = staging.empty(slot, "records", len(ids) * dtype.itemsize, torch.uint8)
            ds.read_records(ids, out=host.numpy().view(dtype))   # the one host copy: mmap -> pinned
            raw = host.to(self.device, non_blocking=True).view(len(ids), dtype.itemsize)
            return record_fields(raw, dtype)

        yield from self._overlapped(ds.batch_ids(), send)

    def _send(self, staging: _Staging, slot: int, batch: dict[str, Any]) -> dict[str, Any]:
        """``batch`` with each tensor copied into pinned buffer ``slot`` and sent on (non-blocking)."""
        return {k: staging.buffer(slot, k, t).to(self.device, non_blocking=True) if isinstance(t, torch.Tensor)
                else t for k, t in batch.items()}

    def _overlapped(self, items: Iterable[Any], send) -> Iterator[Batch]:
        """``send(item, slot)`` each item on a side stream, two pinned slots in turn; yield one batch behind."""
        stream, main = torch.cuda.Stream(self.device), torch.cuda.current_stream(self.device)
        events: list[torch.cuda.Event | None] = [None, None]
        pending, slot = None, 0
        for item in items:
            if events[slot] is not None:
                events[slot].synchronize()          # the copy that last used this slot's pinned buffer has finished
            with torch.cuda.stream(stream):
                out = send(item, slot)
            done = torch.cuda.Event()
            done.record(stream)
            events[slot], slot = done, slot ^ 1
            if pending is not None:
                yield _ready(pending, main)
            pending = (out, done)
        if pending is not None:
            yield _ready(pending, main)
        main.synchronize()


def record_fields(raw: torch.Tensor, dtype) -> Batch:
    """Views of each field of ``(n, itemsize)`` uint8 record bytes (on any device), shaped like the records.

    Every field is a strided view (no copy, no kernel launch): images reshaped, scalar fields such as labels
    reinterpreted in place. Call ``.contiguous()`` where an operation needs it.
    """
    n = raw.shape[0]
    out = {}
    for name, spec in dtype.fields.items():
        field, offset = spec[0], spec[1]
        tdtype = torch.from_numpy(np.empty(0, dtype=field.base)).dtype
        cols = raw[:, offset:offset + field.itemsize].view(tdtype)
        out[name] = cols.view(n, *field.shape)
    return out


class _Staging:
    """Pinned host buffers, two slots per key, grown when a batch is larger; reused across batches."""

    def __init__(self):
        self._buffers: dict[tuple[int, str], torch.Tensor] = {}

    def empty(self, slot: int, key: str, numel: int, dtype: torch.dtype) -> torch.Tensor:
        """The first ``numel`` elements of the pinned buffer of (slot, key), allocated or grown as needed."""
        buf = self._buffers.get((slot, key))
        if buf is None or buf.dtype != dtype or buf.numel() < numel:
            buf = torch.empty(numel, dtype=dtype, pin_memory=True)
            self._buffers[(slot, key)] = buf
        return buf[:numel]

    def buffer(self, slot: int, key: str, t: torch.Tensor) -> torch.Tensor:
        """``t`` copied into the pinned buffer of (slot, key); returns the view holding it."""
        view = self.empty(slot, key, t.numel(), t.dtype).view(t.shape)
        view.copy_(t)
        return view


def _ready(pending: tuple[dict[str, Any], torch.cuda.Event], main: torch.cuda.Stream) -> dict[str, Any]:
    """Make the main stream wait for a prefetched batch, and tell the allocator who uses its memory now."""
    out, done = pending
    main.wait_event(done)
    for t in out.values():
        if isinstance(t, torch.Tensor) and t.is_cuda:
            t.record_stream(main)
    return out


def _map_tensors(batch: dict[str, Any], fn) -> dict[str, Any]:
    return {k: fn(v) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def compare_modes(data_dir: str | Path, *, batch_size: int = 256, device: str | torch.device | None = None,
                  repeat: int = 3, work: bool = True, seed: int = 0,
                  max_samples: int | None = None) -> list[ThroughputResult]:
    """Each transfer mode over one epoch of ``MmapShardDataset`` batches; per mode the median of ``repeat`` runs.

    With ``work``, each batch is also turned into float on the device (a stand-in for the model's first step),
    so prefetching has something to overlap with. ``max_samples`` caps each run (default: whole epochs).
    """
    from ..measure.throughput import measure_throughput
    from .mmap_shards import MmapShardDataset

    ds = MmapShardDataset(data_dir, batch_size=batch_size, seed=seed)
    out = []
    for mode in MODES:
        loader = DeviceLoader(ds, device, mode=mode)
        out.append(measure_throughput(_Stepped(loader, _consume if work else None),
                                      bytes_per_sample=ds.bytes_per_sample, progress=False,
                                      label=f"{mode} -> {loader.device}", touch=False, repeat=repeat,
                                      files=ds.index.paths, max_samples=max_samples))
    return out


class _Stepped:
    """``loader``'s batches, each passed to ``step`` first; iterable again for every repeat."""

    def __init__(self, loader: Iterable[Batch], step):
        self.loader, self.step = loader, step

    def __iter__(self) -> Iterator[Batch]:
        return _each(self.loader, self.step)


def _consume(batch: Batch) -> None:
    batch["x"].float().mul_(1 / 255)


def _each(loader: Iterable[Batch], step) -> Iterator[Batch]:
    for batch in loader:
        if step is not None:
            step(batch)
        yield batch


def main(argv: list[str] | None = None) -> int:
    """CLI: print the transfer modes side by side as JSON lines."""
    parser = argparse.ArgumentParser(prog="python -m course_lib.loaders.device_transfer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_dir_argument(parser)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    for r in compare_modes(args.data_dir, batch_size=args.batch_size, device=args.device, repeat=args.repeat):
        print(json.dumps({"mode": r.label, "batch_size": args.batch_size, "samples_per_s": round(r.samples_per_s),
                          "mb_per_s": round(r.mb_per_s)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
