"""Generate the synthetic dataset: numpy shards and/or WebDataset tars, plus ``manifest.json``."""
from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
from tqdm import tqdm

from .atomic import sha256_file
from .images import DEFAULT_JPEG_QUALITY, check_shape, encode_jpeg
from .layout import ALL_FORMATS, FORMATS, shard_file, shard_ranges
from .manifest import manifest_params, new_manifest, read_output_manifest, shard_entry_ok, write_manifest
from .samples import make_batch
from .writers import WRITERS, write_img_shard


class GenerateError(ValueError):
    """A bad argument to ``generate``; ``argument`` names the CLI flag it came from."""

    def __init__(self, argument: str, message: str):
        super().__init__(f"argument {argument}: {message}")
        self.argument = argument


def generate(
    out: str | Path,
    *,
    samples: int = 40_000,
    shard_size: int = 2_500,
    shape: Iterable[int] = (3, 64, 64),
    classes: int = 10,
    seed: int = 0,
    formats: Iterable[str] = FORMATS,
    jpeg_quality: int = DEFAULT_JPEG_QUALITY,
    progress: bool = True,
    report: Callable[[str], None] | None = print,
    num_workers: int | None = None,
) -> dict[str, Any]:
    """Write the dataset under ``out`` and return its manifest.

    Re-running with the same arguments keeps every shard whose bytes still match the manifest and
    rewrites only missing or damaged ones; different arguments for an existing ``out`` are refused.
    ``formats`` may add ``"img"``: the same pixels as JPEG members encoded by Pillow at ``jpeg_quality``
    (recorded in the manifest), for the decode-bound regime. Shards are written by ``num_workers`` processes
    (default: one per core, up to 4, for datasets over ``PARALLEL_BYTES``; 0 or 1: in this process); the
    files are the same bytes either way.
    """
    params = _check_args(samples, shard_size, tuple(shape), classes, seed, formats, num_workers)
    formats = list(dict.fromkeys(formats))
    if "img" in formats:
        _check_img(params["shape"], jpeg_quality)
    out = Path(out)
    manifest = _start_manifest(out, params, formats)
    if "img" in formats:
        _set_img_encoding(out, manifest, jpeg_quality)
    ranges = shard_ranges(samples, shard_size)
    started, written = time.perf_counter(), 0
    jobs = list(enumerate(ranges))
    processes = _processes(num_workers, len(jobs), samples * int(np.prod(params["shape"])) * len(formats))
    write = partial(_write_shards, out, manifest, formats, seed, params["shape"], classes, jpeg_quality)
    with tqdm(total=samples * len(formats), unit="sample", desc=f"data_gen {out}",
              disable=not progress, smoothing=0.1) as bar, _pool(processes) as pool:
        for shard, entries in (pool.map(write, jobs) if pool else map(write, jobs)):
            for fmt, entry in entries.items():  # in shard order, so the manifest on disk grows like the files
                _set_entry(manifest, fmt, shard, entry)
                written += entry["bytes"]
            if entries:
                write_manifest(out, manifest)
            bar.update((ranges[shard][1] - ranges[shard][0]) * len(formats))
    manifest["complete"] = True
    write_manifest(out, manifest)
    seconds = time.perf_counter() - started
    if report:
        total = sum(e["bytes"] for f in formats for e in manifest["formats"][f]["shards"])
        what = (f"wrote {written / 1e6:.1f} MB in {seconds:.1f} s ({written / 1e6 / max(seconds, 1e-9):.1f} MB/s)"
                if written else f"every shard was already there and intact (re-hashed in {seconds:.1f} s)")
        report(f"data_gen: {samples} samples in {len(ranges)} shards x {len(formats)} formats "
               f"({', '.join(formats)}), {total / 1e6:.1f} MB at {out}; {what}")
    return manifest


PARALLEL_BYTES = 256 << 20  # below this, starting processes costs more than it saves
MAX_PROCESSES = 4


def _processes(num_workers: int | None, shards: int, total_bytes: int) -> int:
    """How many processes write shards (0: this one)."""
    if num_workers is None:
        num_workers = min(os.cpu_count() or 1, MAX_PROCESSES) if total_bytes >= PARALLEL_BYTES else 0
    return min(num_workers, shards) if num_workers > 1 else 0


def _pool(processes: int):
    return ProcessPoolExecutor(processes) if processes else nullcontext()


def _write_shards(out: Path, manifest: dict[str, Any], formats: list[str], seed: int, shape: tuple[int, ...],
                  classes: int, jpeg_quality: int, job: tuple[int, tuple[int, int]]) -> tuple[int, dict[str, Any]]:
    """Write one shard index in every format whose file is missing or damaged; ``(shard, {format: entry})``."""
    shard, (start, stop) = job
    todo = [f for f in formats if not _reusable(out, manifest, f, shard)]
    if not todo:
        return shard, {}
    xs, ys = make_batch(seed, start, stop, shape, classes)
    return shard, {fmt: _write_shard(out, fmt, shard, xs, ys, start, jpeg_quality) for fmt in todo}


def _check_args(samples, shard_size, shape, classes, seed, formats, num_workers=None) -> dict[str, Any]:
    def positive(name: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise GenerateError(name, f"must be a positive integer, got {value!r}")

    positive("--samples", samples)
    positive("--shard-size", shard_size)
    positive("--classes", classes)
    if not shape or len(shape) > 4:
        raise GenerateError("--shape", f"needs 1 to 4 dimensions, got {shape!r}")
    for dim in shape:
        positive("--shape", dim)
    def non_negative(name: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise GenerateError(name, f"must be a non-negative integer, got {value!r}")

    non_negative("--seed", seed)
    if num_workers is not None:
        non_negative("--num-workers", num_workers)
    formats = list(formats)
    if not formats:
        raise GenerateError("--formats", "needs at least one format")
    for fmt in formats:
        if fmt not in ALL_FORMATS:
            raise GenerateError("--formats", f"unknown format {fmt!r} (choose from {', '.join(ALL_FORMATS)})")
    return {"samples": samples, "shard_size": shard_size, "shape": tuple(shape),
            "classes": classes, "seed": seed}


def _start_manifest(out: Path, params: dict[str, Any], formats: list[str]) -> dict[str, Any]:
    """The existing manifest when its parameters match, else a new one; refuse to clobber other data."""
    try:
        old = read_output_manifest(out)
    except ValueError as e:
        raise GenerateError("--out", str(e)) from e
    if old is None:
        stray = [p for f in ALL_FORMATS for p in sorted((out / f).glob("shard_*"))]
        if stray:
            raise GenerateError("--out", f"{out} holds shard files ({stray[0]}) but no manifest.json; "
                                "refusing to overwrite them: choose another --out or delete them")
        manifest = new_manifest(params)
    else:
        have = manifest_params(old)
        for name, value in params.items():
            if have[name] != value:
                flag = "--" + name.replace("_", "-")
                raise GenerateError(flag, f"{out} already holds a dataset generated with {name}={have[name]!r}, "
                                    f"not {value!r}: choose another --out or delete it")
        manifest = old
    manifest["complete"] = False
    for fmt in formats:
        manifest["formats"].setdefault(fmt, {"shards": []})
    return manifest


def _reusable(out: Path, manifest: dict[str, Any], fmt: str, shard: int) -> bool:
    shards = manifest["formats"][fmt]["shards"]
    return shard < len(shards) and shards[shard] is not None and shard_entry_ok(out, shards[shard]) is None


def _check_img(shape: tuple[int, ...], quality: Any) -> None:
    try:
        check_shape(shape)
    except ValueError as e:
        raise GenerateError("--shape", f"the img format: {e}") from None
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise GenerateError("--jpeg-quality", f"must be an integer from 1 to 100, got {quality!r}")


def _set_img_encoding(out: Path, manifest: dict[str, Any], quality: int) -> None:
    """Record how the img members were encoded; refuse to mix two qualities in one folder."""
    info = manifest["formats"]["img"]
    had = info.get("jpeg_quality")
    if had is not None and had != quality and any(info["shards"]):
        raise GenerateError("--jpeg-quality", f"{out} already holds img shards encoded at quality {had}, "
                            f"not {quality}: choose another --out or delete {out / 'img'}")
    info.update({"encoding": "jpeg", "encoder": "Pillow", "jpeg_quality": quality, "subsampling": "4:4:4"})


def _write_shard(out: Path, fmt: str, shard: int, xs, ys, start: int,
                 jpeg_quality: int = DEFAULT_JPEG_QUALITY) -> dict[str, Any]:
    rel = shard_file(fmt, shard)
    if fmt == "img":
        write_img_shard(out / rel, [(encode_jpeg(x, jpeg_quality), "jpg") for x in xs], ys, start)
    else:
        WRITERS[fmt](out / rel, xs, ys, start)
    path = out / rel
    return {"file": rel, "first_index": start, "samples": len(xs),
            "bytes": path.stat().st_size, "sha256": sha256_file(path)}


def _set_entry(manifest: dict[str, Any], fmt: str, shard: int, entry: dict[str, Any]) -> None:
    shards = manifest["formats"][fmt]["shards"]
    shards.extend([None] * (shard + 1 - len(shards)))
    shards[shard] = entry
