"""Peer libraries on the course's data, for side-by-side measurement (optional: used only when installed).

litdata streams its own chunk format, so :func:`prepare_litdata` converts the ``npy`` shards once with
``litdata.optimize`` (not timed) and :func:`litdata_loader` reads them back with its ``StreamingDataset``.
"""
from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..loaders.shard_index import index_shards


def missing(package: str) -> str | None:
    """None when ``package`` imports; the reason when it is not installed (for a "skipped" line in a table).

    Only the package itself being absent counts as missing: an installed package that fails to import (a
    broken dependency, a version clash) raises its error, so a broken install is never reported as absent.
    """
    try:
        importlib.import_module(package)
    except ModuleNotFoundError as e:
        if e.name not in (package, package.split(".")[0]):
            raise  # installed, but something it imports is not: a broken install, not a missing one
        return f"{package} not installed here: {type(e).__name__}: {e}"
    return None


def _records(shard_path: str) -> Iterator[dict[str, Any]]:
    """One shard's samples as litdata items (``x`` as a numpy array, ``y`` and ``idx`` as ints)."""
    records = np.load(shard_path, mmap_mode="r", allow_pickle=False)
    for rec in records:
        yield {"x": np.array(rec["x"]), "y": int(rec["y"]), "idx": int(rec["idx"])}


def prepare_litdata(data_dir: str | Path, out_dir: str | Path, *, chunk_bytes: str = "64MB") -> Path:
    """Convert ``data_dir``'s npy shards to litdata's format in ``out_dir`` once; reused while the count matches."""
    import litdata

    index, out = index_shards(data_dir), Path(out_dir)
    stamp = out / "course_source.json"
    source = {"data": str(Path(data_dir).resolve()), "samples": len(index)}
    if stamp.exists() and json.loads(stamp.read_text()) == source and (out / "index.json").exists():
        return out
    litdata.optimize(fn=_records, inputs=[str(p) for p in index.paths], output_dir=str(out),
                     chunk_bytes=chunk_bytes, num_workers=1, mode="overwrite")
    stamp.write_text(json.dumps(source))
    return out


def litdata_loader(prepared: str | Path, *, batch_size: int | None = None, seed: int = 0,
                   num_workers: int | None = None):
    """litdata's shuffled ``StreamingDataset`` over a prepared folder.

    With ``batch_size``: through litdata's ``StreamingDataLoader``; per sample with ``num_workers``: through a
    plain ``DataLoader(batch_size=None)`` (StreamingDataLoader insists on a batch size); else the dataset itself.
    """
    import litdata
    from torch.utils.data import DataLoader

    ds = litdata.StreamingDataset(str(Path(prepared).resolve()), shuffle=True, seed=seed)
    if batch_size is not None:
        return litdata.StreamingDataLoader(ds, batch_size=batch_size, num_workers=num_workers or 0)
    if num_workers is not None:
        return DataLoader(ds, batch_size=None, num_workers=num_workers)
    return ds
