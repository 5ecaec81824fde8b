"""The first few shards of a data_gen directory as a data_gen directory of their own: hard links (copies across
file systems), and a manifest that lists only them, so every reader (mmap, tar, HTTP, S3) sees a smaller dataset
made of the same bytes. Hard links, not symbolic ones: a server that refuses paths leading out of the folder it
serves (``faulty_http``) serves them like any file."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from data_gen.manifest import read_manifest


def first_shards(data_dir: str | Path, out: str | Path, shards: int) -> Path:
    """A folder ``out`` holding links to the first ``shards`` shards of every format of ``data_dir`` and a
    manifest listing only those (``total_samples`` recounted); ``data_dir`` itself when it has no more shards."""
    data_dir, out = Path(data_dir).resolve(), Path(out).resolve()
    manifest = read_manifest(data_dir)
    if manifest is None:
        raise FileNotFoundError(f"{data_dir}: no manifest.json (write the data with python -m data_gen)")
    if shards < 1:
        raise ValueError(f"shards must be at least 1, got {shards}")
    formats = {fmt: dict(entry, shards=entry["shards"][:shards]) for fmt, entry in manifest["formats"].items()}
    if all(len(f["shards"]) == len(manifest["formats"][k]["shards"]) for k, f in formats.items()):
        return data_dir
    totals = {sum(int(s["samples"]) for s in f["shards"]) for f in formats.values()}
    if len(totals) != 1:
        raise ValueError(f"{data_dir}: the formats' first {shards} shards hold different sample counts {totals}")
    for fmt, entry in formats.items():
        listed = {Path(s["file"]).name for s in entry["shards"]}
        for stale in (out / fmt).glob("*") if (out / fmt).is_dir() else ():
            if stale.name not in listed:                   # left by an earlier, larger subset
                stale.unlink()
        for shard in entry["shards"]:
            link = out / shard["file"]
            link.parent.mkdir(parents=True, exist_ok=True)
            if link.exists() or link.is_symlink():
                link.unlink()                              # relinked every time: the data may have been rewritten
            try:
                os.link(data_dir / shard["file"], link)
            except OSError:                                # another file system: a copy
                shutil.copyfile(data_dir / shard["file"], link)
    subset = dict(manifest, formats=formats, total_samples=totals.pop())
    (out / "manifest.json").write_text(json.dumps(subset, indent=1) + "\n")
    return out
