"""``convert --engine ray``: the same conversion, each shard written by a Ray Data task.

When one machine is not enough, the shards of a conversion are independent: which source items each holds is
decided up front (the plan, as the local engine records it), then every shard is one task that reads its
items, writes its files (the course's names, member order and bytes: the same writers as the local engine)
and returns their sizes and sha256. The driver writes ``manifest.json`` as results arrive, so
``data_gen verify``, the loaders and a resumed run see exactly what a local conversion writes.

Two limits, both said in errors rather than hidden: items known bad before decoding (not an image, empty,
outside a class folder) are planned around with ``--skip-bad`` exactly as the local engine does, but a file
that only fails while decoding stops the task (the plan was made without it: convert it locally with
``--skip-bad``); and a compressed ``.npz`` streams in order, so it cannot be split into tasks.

Ray's own files go to a temporary folder that is removed afterwards, and a local Ray started here is shut
down when the conversion returns or fails (also on Ctrl-C). A local start whose node times out (Ray waits a fixed
30 s for its raylet: a loaded machine) is stopped and made once more, counted in ``timings["start_attempts"]``.
``address`` joins an existing cluster instead.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import psutil
from tqdm import tqdm

from .manifest import write_manifest

OBJECT_STORE_MB = 256   # the tasks return a few hundred bytes each: Ray's object store needs little


def plan_shards(n_items: int, bad: dict[int, str], shard_size: int, first_shard: int = 0,
                start: int = 0) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Shards of ``shard_size`` good items from position ``start``: the local engine's plan, computed up front.

    Known-bad positions (``bad``) are skipped where they lie (a shard holds the bad items before its last good
    one); bad items after the last good one form the ``tail``. Returns (plan entries, tail or None).
    """
    plan, pos, tail = [], start, None
    while pos < n_items:
        first, taken, skipped = pos, 0, []
        while pos < n_items and taken < shard_size:
            if pos in bad:
                skipped.append(pos)
            else:
                taken += 1
            pos += 1
        if taken == 0:
            tail = {"start": first, "stop": n_items, "skipped": skipped}
            break
        plan.append({"shard": first_shard + len(plan), "start": first, "stop": pos, "samples": taken,
                     "max_label": None, "skipped": skipped})
    return plan, tail


def run_on_ray(source, out: Path, manifest: dict[str, Any], formats: list[str], shard_size: int,
               skip_bad: bool, progress: bool, *, address: str | None = None, num_cpus: int | None = None,
               timings: dict[str, float] | None = None) -> int:
    """Write every shard the manifest lacks as Ray Data tasks; returns the bytes written (see module docstring)."""
    from .convert import ConvertError, _reusable

    if getattr(source, "order", True) is None:
        raise ConvertError("--engine", f"{source.path}: a compressed .npz can only be read as a stream, in order; "
                                       "convert it with the local engine, or save it uncompressed (np.savez)")
    conv = manifest["convert"]
    plan = conv["plan"]
    if not plan or plan[-1]["stop"] < len(source):
        bad = dict(source.bad)
        if bad and not skip_bad:
            pos = min(bad)
            raise ConvertError("SRC", f"{source.path / source.bad_items()[0]['file']}: {bad[pos]}: fix or remove "
                                      "it, or pass --skip-bad to skip it and count it in the manifest")
        start = plan[-1]["stop"] if plan else 0
        more, conv["tail"] = plan_shards(len(source), bad, shard_size, first_shard=len(plan), start=start)
        names = {p: item["file"] for p, item in zip(sorted(bad), source.bad_items())}
        for entry in more:
            entry["skipped"] = [{"file": names[p], "reason": bad[p]} for p in entry.pop("skipped")]
            entry.pop("shard")
        if conv["tail"]:
            conv["tail"]["skipped"] = [{"file": names[p], "reason": bad[p]} for p in conv["tail"]["skipped"]]
        plan.extend(more)
    if not plan:
        raise ConvertError("SRC", f"{source.path}: every item was skipped as unreadable; nothing to convert")
    firsts = [0]
    for entry in plan:
        firsts.append(firsts[-1] + entry["samples"])
    rows = [{"shard": k, "start": e["start"], "stop": e["stop"], "samples": e["samples"], "first": firsts[k],
             "formats": [f for f in formats if not _reusable(out, manifest, f, k)]} for k, e in enumerate(plan)]
    rows = [r for r in rows if r["formats"]]
    manifest["complete"] = False
    out.mkdir(parents=True, exist_ok=True)
    write_manifest(out, manifest)
    written = 0
    if rows:
        written = _run_tasks(source, out, manifest, rows, progress, address=address, num_cpus=num_cpus,
                             timings={} if timings is None else timings)
    skipped = [s for e in plan for s in e["skipped"]] + (conv["tail"]["skipped"] if conv["tail"] else [])
    manifest.update(total_samples=firsts[-1], skipped=skipped, skipped_count=len(skipped), complete=True,
                    classes=len(source.class_names) if source.class_names else 1 + max(e["max_label"] for e in plan))
    write_manifest(out, manifest)
    return written


def _run_tasks(source, out: Path, manifest: dict[str, Any], rows: list[dict[str, Any]], progress: bool, *,
               address: str | None, num_cpus: int | None, timings: dict[str, float]) -> int:
    """Start (or join) Ray, map the shard rows through :func:`write_shard_task`, record each result as it lands."""
    import ray

    from .convert import ConvertError, _set_entry

    temp = None if address else tempfile.mkdtemp(prefix="dg-ray-")   # short: Ray's socket paths have a limit
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")   # else Ray writes a token under ~/.ray
    level = os.environ.get("RAY_DATA_LOG_LEVEL")
    os.environ["RAY_DATA_LOG_LEVEL"] = "ERROR"   # Ray Data logs each execution at INFO: our bar says enough
    before = {p.pid for p in psutil.Process().children(recursive=True)}   # a kernel may have children of its own
    timings["ray_pids"] = []
    clock = time.perf_counter()
    try:
        if address:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
        else:
            timings["start_attempts"] = _start_local_ray(ray, num_cpus, temp, before, timings)
        timings["start_s"], clock, wall = time.perf_counter() - clock, time.perf_counter(), time.time()
        spans = []
        with warnings.catch_warnings():   # Ray Data's context warns about its own deprecated options
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx = ray.data.DataContext.get_current()
            ctx.enable_progress_bars = ctx.print_on_execution_start = False
            handle = _source_handle(source, ray)
            results = ray.data.from_items(rows, override_num_blocks=len(rows)).map(
                write_shard_task, fn_kwargs={"handle": handle, "out": str(out)}, num_cpus=1)
            written = 0
            with tqdm(total=len(rows), unit="shard", desc=f"convert (ray) {out}", disable=not progress) as bar:
                for row in results.iter_rows():
                    result = json.loads(row["result"])
                    if "error" in result:   # returned, not raised: Ray would wrap it in its own task error
                        raise ConvertError("SRC", result["error"])
                    shard = result["shard"]
                    spans.append((result["pid"], result["began"], result["ended"]))
                    manifest["convert"]["plan"][shard]["max_label"] = result["max_label"]
                    for fmt, entry in result["entries"].items():
                        _set_entry(manifest, fmt, shard, entry)
                        written += entry["bytes"]
                    write_manifest(out, manifest)
                    bar.update(1)
        timings["tasks_s"], timings["tasks"] = time.perf_counter() - clock, len(rows)
        timings.update(_task_timings(spans, wall))
        return written
    finally:
        clock = time.perf_counter()
        started = [] if address else _children_since(before)
        timings["ray_pids"] += [p.pid for p in started]   # what it started, failed starts included (tests check)
        ray.shutdown()
        _reap(started)   # shutdown signals them; wait until they are gone
        timings["stop_s"] = time.perf_counter() - clock
        if level is None:
            os.environ.pop("RAY_DATA_LOG_LEVEL", None)
        else:
            os.environ["RAY_DATA_LOG_LEVEL"] = level
        if temp:
            shutil.rmtree(temp, ignore_errors=True)


START_ATTEMPTS = 2   # Ray waits a fixed 30 s for its raylet: on a loaded machine (two test suites at once on 2
                     # cores) it gave up once in six runs; then what it started is stopped and it starts once more


def _start_local_ray(ray, num_cpus: int | None, temp: str, before: set[int], timings: dict[str, Any]) -> int:
    """Start a local Ray for this conversion; when its node times out during start-up, stop what it started (its
    pids join ``timings["ray_pids"]``) and start once more. Returns the attempts it took; the last failure is
    raised, saying how many were made."""
    for attempt in range(1, START_ATTEMPTS + 1):
        try:
            ray.init(num_cpus=num_cpus or os.cpu_count(), include_dashboard=False, _temp_dir=temp,
                     object_store_memory=OBJECT_STORE_MB << 20, log_to_driver=False, configure_logging=False)
            return attempt
        except Exception as e:  # Ray raises a bare Exception for this
            if "timed out during startup" not in str(e):
                raise
            ray.shutdown()
            timings["ray_pids"] += _stop_started(before)
            if attempt == START_ATTEMPTS:
                raise RuntimeError(f"Ray did not start in {attempt} attempts (each waits 30 s for its raylet; "
                                   f"is the machine overloaded?): {e}") from e
    raise AssertionError("unreachable")


def _stop_started(before: set[int]) -> list[int]:
    """Terminate this process's children that were not in ``before`` (what a Ray start left); their pids."""
    started = _children_since(before)
    for proc in started:
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            pass
    _reap(started)
    return [p.pid for p in started]


def _children_since(before: set[int]) -> list[psutil.Process]:
    """This process's children (at any depth) whose pids are not in ``before``."""
    return [p for p in psutil.Process().children(recursive=True) if p.pid not in before]


def _reap(started: list[psutil.Process]) -> None:
    """Wait up to 10 s for ``started`` to exit (they were signalled), then kill what is left."""
    _, alive = psutil.wait_procs(started, timeout=10)
    for proc in alive:
        proc.kill()
    psutil.wait_procs(alive, timeout=5)


def _task_timings(spans: list[tuple[int, float, float]], began: float) -> dict[str, float]:
    """From each task's (worker pid, start, end): the first task's wait (workers starting), the median task's
    work, and the median gap between consecutive tasks of one worker (what Ray adds per task once warm)."""
    import statistics

    gaps = []
    for pid in {p for p, _, _ in spans}:
        mine = sorted((b, e) for p, b, e in spans if p == pid)
        gaps += [b2 - e1 for (_, e1), (b2, _) in zip(mine, mine[1:])]
    return {"first_task_wait_s": min(b for _, b, _ in spans) - began,
            "task_work_s": statistics.median(e - b for _, b, e in spans),
            "task_gap_s": statistics.median(gaps) if gaps else float("nan")}


def _source_handle(source, ray) -> dict[str, Any]:
    """What a task needs to read the source: the source itself, or how to re-open it (memory maps don't travel)."""
    if source.layout in ("arrays", "npz"):
        return {"reopen": str(source.path), "seed": source.seed}
    return {"ref": ray.put(source)}


def write_shard_task(row: dict[str, Any], *, handle: dict[str, Any], out: str) -> dict[str, str]:
    """One Ray task: read shard ``row["shard"]``'s items, write its formats, return entries as JSON."""
    import ray

    from .convert import _write_shard
    from .sources import open_source

    began = time.time()   # wall clock: compared across processes by the driver (see _task_timings)
    source = (open_source(handle["reopen"], None, handle["seed"]) if "reopen" in handle else ray.get(handle["ref"]))
    formats = list(row["formats"])
    chunk = source.take(int(row["start"]), int(row["samples"]), stop=int(row["stop"]), skip_bad=True,
                        pixels=any(f != "img" for f in formats), images="img" in formats)
    if len(chunk) != int(row["samples"]):
        planned = {item["file"] for item in source.bad_items()}
        bad = "; ".join(f"{source.path / s['file']}: {s['reason']}" for s in chunk.skipped if s["file"] not in planned)
        return {"result": json.dumps({"error": f"{bad}: found unreadable while decoding (the plan counted it): "
                                               "convert with the local engine and --skip-bad, or fix the file"})}
    entries = {fmt: _write_shard(Path(out), fmt, int(row["shard"]), chunk, int(row["first"])) for fmt in formats}
    return {"result": json.dumps({"shard": int(row["shard"]), "max_label": int(chunk.ys.max()), "entries": entries,
                                  "pid": os.getpid(), "began": began, "ended": time.time()})}

