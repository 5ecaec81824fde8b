"""Convert a learner's own data (an image folder, a pair of arrays, per-sample ``.npy`` files) into shards.

Same guarantees as ``generate``: each shard is written atomically, the manifest (counts, sizes, sha256,
class names, the source, every skipped file and why) is rewritten after each shard, a re-run keeps every
intact shard and resumes, and ``python -m data_gen verify OUT`` checks the result. Which source items each
shard holds is recorded in the manifest (``convert.plan``), so a resumed run, or one that adds a format,
rebuilds exactly the same shards even when bad files were skipped.

Formats: ``npy`` (decoded pixels, ``--shape`` for images), ``wds`` / ``wdsb`` (the same pixels as tars) and, for
image folders, ``img`` (the original JPEG/PNG bytes, not re-encoded: the decode-bound regime).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Iterable

from tqdm import tqdm

from .atomic import sha256_file
from .generate import GenerateError
from .layout import EXTENSIONS, MANIFEST_NAME, shard_file
from .manifest import new_manifest, read_output_manifest, shard_entry_ok, write_manifest
from .sources import BadSample, ImageFolderSource, SourceError, open_source
from .writers import WRITERS, write_img_shard

CONVERT_FORMATS = ("npy", "wds", "wdsb", "img")
ENGINES = ("local", "ray")
DEFAULT_FORMATS = {"image_folder": ("npy", "img")}  # other layouts: ("npy",)


class ConvertError(GenerateError):
    """Bad input to ``convert`` (``argument``: SRC, --out, --shape, ...); nothing half-written is left behind."""


def convert(
    src: str | Path,
    out: str | Path,
    *,
    shape: Iterable[int] | None = None,
    formats: Iterable[str] | None = None,
    shard_size: int = 2_500,
    seed: int = 0,
    skip_bad: bool = False,
    progress: bool = True,
    report: Callable[[str], None] | None = print,
    engine: str = "local",
    ray_address: str | None = None,
    num_cpus: int | None = None,
    timings: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Convert ``src`` into shards under ``out`` and return the manifest (see the module docstring).

    ``shape`` (C,H,W) is what images are decoded to (default 3,64,64); arrays keep their own shape.
    ``formats`` defaults to npy + img for image folders, npy otherwise. ``seed`` shuffles the order samples are
    converted in (every layout but a compressed ``.npz``, which can only be streamed in stored order).
    With ``skip_bad`` unreadable files are skipped and listed in the manifest (``skipped``); without, the
    first one stops the conversion with a :class:`ConvertError` naming it.
    ``engine="ray"`` writes the shards as Ray Data tasks (``data_gen/ray_engine.py``): on a local Ray with
    ``num_cpus`` CPUs (default all), or on the cluster at ``ray_address``; the same files and manifest.
    ``timings`` (a dict) receives where the seconds went: ``write_s`` (local), or ``start_s``, ``tasks_s``,
    ``stop_s`` and ``tasks`` (ray).
    """
    _check_int("--shard-size", shard_size, 1)
    _check_int("--seed", seed, 0)
    if engine not in ENGINES:
        raise ConvertError("--engine", f"must be one of {', '.join(ENGINES)}, got {engine!r}")
    if num_cpus is not None:
        _check_int("--num-cpus", num_cpus, 1)
    src, out = Path(src), Path(out)
    if out.resolve().is_relative_to(src.resolve()):
        raise ConvertError("--out", f"{out} is inside the source {src}: choose a folder outside it")
    try:
        source = open_source(src, None if shape is None else tuple(shape), seed)
    except SourceError as e:
        raise ConvertError("SRC", str(e)) from e
    try:
        formats = _check_formats(formats, source)
        manifest, created = _start_manifest(out, source, shard_size, seed)
        plan = manifest["convert"]["plan"]
        planned = plan[-1]["stop"] if plan else 0
        bad = [b for p, b in zip(sorted(source.bad), source.bad_items()) if p >= planned]
        if bad and not skip_bad:
            more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
            raise ConvertError("SRC", f"{src / bad[0]['file']}: {bad[0]['reason']}{more}: fix or remove it, "
                                      "or pass --skip-bad to skip it and count it in the manifest")
        formats = list(dict.fromkeys([*formats, *manifest["formats"]]))  # finish every format the folder has
        for fmt in formats:
            manifest["formats"].setdefault(fmt, {"shards": []})
        started = time.perf_counter()
        try:
            if engine == "ray":
                from .ray_engine import run_on_ray

                written = run_on_ray(source, out, manifest, formats, shard_size, skip_bad, progress,
                                     address=ray_address, num_cpus=num_cpus, timings=timings)
            else:
                begun = time.perf_counter()
                written = _run(source, out, manifest, formats, shard_size, skip_bad, progress)
                if timings is not None:
                    timings["write_s"] = time.perf_counter() - begun
        except BaseException:
            _undo_empty_start(out, manifest, created)
            raise
    finally:
        source.close()
    if report:
        report(_summary(src, out, source, manifest, formats, written, time.perf_counter() - started))
    return manifest


def _check_int(flag: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConvertError(flag, f"must be an integer >= {low}, got {value!r}")


def _check_formats(formats: Iterable[str] | None, source) -> list[str]:
    formats = list(DEFAULT_FORMATS.get(source.layout, ("npy",)) if formats is None else formats)
    if not formats:
        raise ConvertError("--formats", "needs at least one format")
    for fmt in formats:
        if fmt not in CONVERT_FORMATS:
            raise ConvertError("--formats", f"unknown format {fmt!r} (choose from {', '.join(CONVERT_FORMATS)})")
    if "img" in formats and not isinstance(source, ImageFolderSource):
        raise ConvertError("--formats", f"img keeps encoded image files: it needs an image folder, not {source.layout}")
    return list(dict.fromkeys(formats))


def _identity(source, shard_size: int, seed: int) -> dict[str, Any]:
    return {"layout": source.layout, "path": source.describe()["path"], "fingerprint": source.fingerprint(),
            "shard_size": shard_size, "shape": list(source.shape),
            "seed": seed if getattr(source, "order", True) is not None else None}


def _start_manifest(out: Path, source, shard_size: int, seed: int) -> tuple[dict[str, Any], bool]:
    """The manifest of an earlier run of this same conversion, or a new one; refuse any other content."""
    try:
        old = read_output_manifest(out)
    except ValueError as e:
        raise ConvertError("--out", str(e)) from e
    want = _identity(source, shard_size, seed)
    if old is None:
        if out.exists() and any(out.iterdir()):
            raise ConvertError("--out", f"{out} is not empty and holds no {MANIFEST_NAME}: refusing to write into "
                                        "it; choose a new or empty folder")
        manifest = new_manifest({"samples": 0, "shape": source.shape, "classes": None, "seed": want["seed"],
                                 "shard_size": shard_size})
        manifest.update(source=source.describe(), class_names=source.class_names, skipped=[], skipped_count=0,
                        convert={"identity": want, "plan": [], "tail": None})
        return manifest, not out.exists()
    if "convert" not in old:
        raise ConvertError("--out", f"{out} already holds a dataset written by 'data_gen generate': "
                                    "choose another --out (or delete it)")
    have = old["convert"]["identity"]
    for key, value in want.items():
        if have.get(key) != value:
            raise ConvertError("--out", f"{out} already holds another dataset (converted from {have['path']} "
                                        f"with {key}={have.get(key)!r}, not {value!r}): choose another --out "
                                        "or delete it")
    for fmt in old["formats"]:   # temporary files of a run that was killed: never renamed, never listed
        for stale in (out / fmt).glob("shard_*.tmp-*"):
            stale.unlink()
    return old, False


def _run(source, out: Path, manifest: dict[str, Any], formats: list[str], shard_size: int, skip_bad: bool,
         progress: bool) -> int:
    """Write or re-use every shard; returns the bytes written by this run."""
    plan, conv = manifest["convert"]["plan"], manifest["convert"]
    manifest["complete"] = False
    out.mkdir(parents=True, exist_ok=True)
    write_manifest(out, manifest)
    pos = shard = first = written = 0
    with tqdm(total=len(source), unit="item", desc=f"data_gen convert {out}", disable=not progress,
              smoothing=0.1) as bar:
        while pos < len(source):
            if shard < len(plan):
                entry = plan[shard]
                todo = [f for f in formats if not _reusable(out, manifest, f, shard)]
                chunk = _take(source, entry["start"], entry["stop"], todo, True) if todo else None
                if chunk is not None and len(chunk) != entry["samples"]:
                    raise ConvertError("SRC", f"{source.path}: items {entry['start']}-{entry['stop']} now give "
                                              f"{len(chunk)} samples, not {entry['samples']}: the source changed")
                if chunk is not None and entry.get("max_label") is None:   # planned by the ray engine, not written
                    entry["max_label"] = int(chunk.ys.max())
            else:
                todo = formats
                chunk = _take(source, pos, None, todo, skip_bad, count=shard_size, shards=shard)
                if len(chunk) == 0:   # only skipped items were left
                    conv["tail"] = {"start": chunk.start, "stop": chunk.stop, "skipped": chunk.skipped}
                    bar.update(chunk.stop - pos)
                    break
                entry = {"start": chunk.start, "stop": chunk.stop, "samples": len(chunk),
                         "max_label": int(chunk.ys.max()), "skipped": chunk.skipped}
                plan.append(entry)
            for fmt in todo:
                shard_entry = _write_shard(out, fmt, shard, chunk, first)
                _set_entry(manifest, fmt, shard, shard_entry)
                written += shard_entry["bytes"]
            if todo:
                manifest["total_samples"] = first + entry["samples"]
                write_manifest(out, manifest)
            bar.update(entry["stop"] - entry["start"])
            pos, first, shard = entry["stop"], first + entry["samples"], shard + 1
    if first == 0:
        raise ConvertError("SRC", f"{source.path}: every item was skipped as unreadable; nothing to convert")
    skipped = [s for e in plan for s in e["skipped"]] + (conv["tail"]["skipped"] if conv["tail"] else [])
    manifest.update(total_samples=first, skipped=skipped, skipped_count=len(skipped), complete=True,
                    classes=len(source.class_names) if source.class_names else 1 + max(e["max_label"] for e in plan))
    write_manifest(out, manifest)
    return written


def _take(source, start: int, stop: int | None, todo: list[str], skip_bad: bool, count: int | None = None,
          shards: int = 0):
    try:
        return source.take(start, count or (stop - start), stop=stop, skip_bad=skip_bad,
                           pixels=any(f != "img" for f in todo), images="img" in todo)
    except BadSample as e:
        kept = f"The {shards} shard(s) written before it are kept. " if shards else ""
        raise ConvertError("SRC", f"{source.path / e.file}: {e.reason}. {kept}Fix or remove the file, or re-run "
                                  "with --skip-bad to skip it and count it in the manifest (the run resumes)") from e
    except SourceError as e:
        raise ConvertError("SRC", str(e)) from e


def _reusable(out: Path, manifest: dict[str, Any], fmt: str, shard: int) -> bool:
    shards = manifest["formats"][fmt]["shards"]
    return shard < len(shards) and shards[shard] is not None and shard_entry_ok(out, shards[shard]) is None


def _write_shard(out: Path, fmt: str, shard: int, chunk, first_index: int) -> dict[str, Any]:
    rel = shard_file(fmt, shard)
    path = out / rel
    if fmt == "img":
        write_img_shard(path, chunk.images, chunk.ys, first_index)
    else:
        WRITERS[fmt](path, chunk.xs, chunk.ys, first_index)
    return {"file": rel, "first_index": first_index, "samples": len(chunk), "bytes": path.stat().st_size,
            "sha256": sha256_file(path)}


def _set_entry(manifest: dict[str, Any], fmt: str, shard: int, entry: dict[str, Any]) -> None:
    shards = manifest["formats"][fmt]["shards"]
    shards.extend([None] * (shard + 1 - len(shards)))
    shards[shard] = entry


def _undo_empty_start(out: Path, manifest: dict[str, Any], created: bool) -> None:
    """After a failure before any shard was written, remove the manifest and folders this run made."""
    if any(e for info in manifest["formats"].values() for e in info["shards"]):
        return
    (out / MANIFEST_NAME).unlink(missing_ok=True)
    for fmt in EXTENSIONS:
        folder = out / fmt
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    if created and out.is_dir() and not any(out.iterdir()):
        out.rmdir()


def _summary(src: Path, out: Path, source, manifest: dict[str, Any], formats: list[str], written: int,
             seconds: float) -> str:
    total = sum(e["bytes"] for f in formats for e in manifest["formats"][f]["shards"])
    shards = len(manifest["convert"]["plan"])
    skipped = manifest["skipped_count"]
    what = (f"wrote {written / 1e6:.1f} MB in {seconds:.1f} s" if written
            else f"every shard was already there and intact (re-hashed in {seconds:.1f} s)")
    skip = f"; skipped {skipped} unreadable item(s), listed in the manifest" if skipped else ""
    return (f"data_gen convert: {manifest['total_samples']} samples from {src} ({source.layout}) in {shards} "
            f"shards x {len(formats)} formats ({', '.join(formats)}), {total / 1e6:.1f} MB at {out}; {what}{skip}")
