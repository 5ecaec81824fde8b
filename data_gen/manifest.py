"""Read, write and check ``manifest.json``: what was generated, and each shard's count, size and sha256."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .atomic import atomic_write_bytes, sha256_file
from .layout import FORMAT_VERSION, MANIFEST_NAME, shard_file

PARAMS = ("samples", "shard_size", "shape", "classes", "seed")


def new_manifest(params: dict[str, Any]) -> dict[str, Any]:
    """An empty (incomplete) manifest for a generation run with ``params``."""
    return {
        "format_version": FORMAT_VERSION,
        "complete": False,
        "total_samples": params["samples"],
        "shape": list(params["shape"]),
        "dtype": "uint8",
        "label_dtype": "int64",
        "classes": params["classes"],
        "seed": params["seed"],
        "shard_size": params["shard_size"],
        "formats": {},
    }


def manifest_params(manifest: dict[str, Any]) -> dict[str, Any]:
    """The generation parameters a manifest was written with."""
    return {
        "samples": manifest["total_samples"],
        "shard_size": manifest["shard_size"],
        "shape": tuple(manifest["shape"]),
        "classes": manifest["classes"],
        "seed": manifest["seed"],
    }


def read_manifest(root: Path) -> dict[str, Any] | None:
    """The manifest in ``root``, or None when there is none. Raises ValueError naming the file if unreadable."""
    path = Path(root) / MANIFEST_NAME
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text())
        manifest_params(manifest)
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a data_gen manifest ({e})") from e
    return manifest


def read_output_manifest(out: Path) -> dict[str, Any] | None:
    """The manifest of an output folder ``out`` (None when new); ValueError if ``out`` is a file or it is unreadable."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} exists and is not a directory")
    return read_manifest(out)


def write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    """Write the manifest atomically (stable key order, so identical runs give identical bytes)."""
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    atomic_write_bytes(Path(root) / MANIFEST_NAME, text.encode())


def shard_entry_ok(root: Path, entry: dict[str, Any]) -> str | None:
    """None when the shard file matches its manifest entry; else why not."""
    path = Path(root) / entry["file"]
    if not path.exists():
        return f"{path}: missing"
    size = path.stat().st_size
    if size != entry["bytes"]:
        return f"{path}: {size} bytes, manifest says {entry['bytes']} (truncated or overwritten)"
    if sha256_file(path) != entry["sha256"]:
        return f"{path}: sha256 differs from the manifest (corrupt)"
    return None


def verify(root: str | Path) -> list[str]:
    """Re-hash every shard against the manifest; return one line per bad or missing file (empty: all good)."""
    root = Path(root)
    try:
        manifest = read_manifest(root)
    except ValueError as e:
        return [str(e)]
    if manifest is None:
        return [f"{root / MANIFEST_NAME}: missing (not a data_gen directory?)"]
    problems = []
    if not manifest.get("complete"):
        problems.append(f"{root / MANIFEST_NAME}: generation did not finish (re-run data_gen generate)")
    for fmt, info in sorted(manifest["formats"].items()):
        entries = info["shards"]
        problems += [f"{root / shard_file(fmt, i)}: never written" for i, e in enumerate(entries) if e is None]
        entries = [e for e in entries if e is not None]
        counted = sum(e["samples"] for e in entries)
        if counted != manifest["total_samples"]:
            problems.append(f"{root / MANIFEST_NAME}: {fmt} shards hold {counted} samples, "
                            f"total_samples is {manifest['total_samples']}")
        problems += [p for e in entries if (p := shard_entry_ok(root, e))]
    return problems
