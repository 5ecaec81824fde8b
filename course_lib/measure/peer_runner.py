"""Measure each peer library in its own process; a peer that fails becomes a row that says why.

    python -m course_lib.measure.peer_runner '<json list of arguments>' OUT_DIR   (what :func:`run_peers` runs)

Why a process per peer: litdata switches the process's multiprocessing start method to ``spawn`` when it is
used, after which every DataLoader with workers in that process must pickle its dataset; a library can also
crash or hang. In its own process each peer starts clean, the course's loaders in the caller keep ``fork``,
and a failure costs one row, not the benchmark.

How: one subprocess imports torch and the course's measuring code once (seconds on a busy 2-core machine),
then forks one child per peer. Each child runs in its own process group with its stderr in a file of its own,
writes its result, and exits; the subprocess waits for it (killing the group after ``timeout``) and writes
the row of a child that died without a result. Peers run one after another, never side by side.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Sequence

PEER_LIBRARIES = ("litdata", "HF datasets", "torchdata", "webdataset", "lance")
MOSAIC_REASON = ("mosaicml-streaming 0.13 cannot be installed beside torch 2.13 CPU: it needs numpy<2.2 and "
                 "transformers<5 and imports torchvision at import time (which fails beside this torch)")


def skipped_peers() -> list[dict[str, Any]]:
    """Peers that are never measured here, each with the reason (never a silent drop)."""
    from .peers import missing

    reason = missing("streaming")
    return [{"library": "Mosaic Streaming", "error": f"skipped: {MOSAIC_REASON}"
             + (f" ({reason})" if reason else "")}]


def _peer_args(library: str, image_dir: str | Path, peers_dir: str | Path, *,
               worker_counts: Sequence[int] = (0, 2), repeats: int = 3,
               max_samples: dict[str, int | None] | None = None, max_seconds: float | None = None,
               batch_size: int = 64, crop_size: int = 64, seed: int = 0, step_kind: str = "busy",
               step_ms: float = 20.0, wait_workers: Sequence[int] = (), wait_batches: int = 12, order: bool = True,
               regime_workers: dict[str, Sequence[int]] | None = None, timeout: float = 300.0) -> dict[str, Any]:
    return {"library": library, "image_dir": str(Path(image_dir).resolve()),
            "peers_dir": str(Path(peers_dir).resolve()), "worker_counts": list(worker_counts), "repeats": repeats,
            "max_samples": max_samples or {}, "max_seconds": max_seconds, "batch_size": batch_size,
            "crop_size": crop_size, "seed": seed, "step_kind": step_kind, "step_ms": step_ms,
            "wait_workers": list(wait_workers), "wait_batches": wait_batches, "order": order,
            "regime_workers": {k: list(v) for k, v in (regime_workers or {}).items()}, "timeout": timeout}


STARTUP_S = 180.0  # the subprocess's own imports, on top of every peer's timeout


def _run_many(many: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Measure each peer of ``many`` in the one subprocess (a forked child each); one result per peer."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="peers-") as tmp:
        out = Path(tmp)
        results: list[dict[str, Any] | None] = [None] * len(many)
        try:
            proc = subprocess.run([sys.executable, "-m", "course_lib.measure.peer_runner", json.dumps(many),
                                   str(out)], capture_output=True, text=True,
                                  timeout=STARTUP_S + sum(a["timeout"] for a in many),
                                  env={**os.environ, "PYTHONWARNINGS": "ignore", "TQDM_DISABLE": "1"})
            why = _last_error_line(proc.stderr) or f"exit status {proc.returncode}, no output"
        except subprocess.TimeoutExpired:
            why = "the peer subprocess timed out"
        for i, args in enumerate(many):
            path = out / f"{i}.json"
            results[i] = (json.loads(path.read_text()) if path.exists()
                          else {"library": args["library"], "error": f"not measured: {why}",
                                "seconds": time.perf_counter() - started})
    return results  # type: ignore[return-value]


def run_peer(library: str, image_dir: str | Path, peers_dir: str | Path, **kwargs: Any) -> dict[str, Any]:
    """Measure one peer library in a process of its own; returns its rows, or ``{"library", "error"}``.

    Keywords (all optional): ``worker_counts``, ``repeats``, ``max_samples``, ``max_seconds``, ``batch_size``,
    ``crop_size``, ``seed``, ``step_kind``, ``step_ms``, ``wait_workers``, ``wait_batches``, ``order``,
    ``regime_workers`` (e.g. ``{"raw": [0], "JPEG": [2]}``: overrides ``worker_counts`` per regime) and
    ``timeout`` (seconds for this peer). The result holds ``rows`` (as :func:`~.regimes.measure_specs`, with
    ``data_wait`` at ``wait_workers``), ``order`` (shuffle statistics), ``timings`` (conversions, not counted
    in any rate) and ``seconds`` (the peer's process).
    """
    return _run_many([_peer_args(library, image_dir, peers_dir, **kwargs)])[0]


def _last_error_line(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.strip().splitlines() if ln.strip()]
    for line in reversed(lines):
        if "Error" in line or "error" in line or "Exception" in line:
            return line[:300]
    return lines[-1][:300] if lines else ""


def run_peers(image_dir: str | Path, peers_dir: str | Path, *, libraries: Sequence[str] = PEER_LIBRARIES,
              progress: bool = False, **kwargs: Any) -> dict[str, Any]:
    """:func:`run_peer` for each library in turn (one subprocess, one forked process per library), merged:
    ``rows``, ``order``, ``timings``, ``failed`` (one row per failed or skipped peer, with its reason) and
    ``seconds`` per library."""
    merged: dict[str, Any] = {"rows": [], "order": [], "timings": {}, "failed": [], "seconds": {}}
    many = [_peer_args(library, image_dir, peers_dir, **kwargs) for library in libraries]
    for library, result in zip(libraries, _run_many(many) if many else []):
        merged["seconds"][library] = result.get("seconds")
        if "error" in result:
            merged["failed"].append({"library": library, "error": result["error"]})
        else:
            for key in ("rows", "order"):
                merged[key] += result[key]
            merged["timings"].update(result["timings"])
        if progress:
            print(f"  peer {library}: " + (result.get("error") or f"{len(result['rows'])} rows")
                  + f" in {result.get('seconds') or 0:.1f} s", file=sys.stderr, flush=True)
    merged["failed"] += skipped_peers()
    return merged


def _measure(args: dict[str, Any]) -> dict[str, Any]:
    """Inside the subprocess: build the peer's loaders (converting once), then measure them."""
    from .peer_loaders import PEERS
    from .regime_runs import measure_specs
    from .regimes import order_quality
    from .training_step import TrainingStep

    library = args["library"]
    if library not in PEERS:
        raise ValueError(f"unknown peer library {library!r}; known: {', '.join(PEERS)}")
    timings: dict[str, float] = {}
    peers_dir = Path(args["peers_dir"])
    peers_dir.mkdir(parents=True, exist_ok=True)
    specs = PEERS[library](Path(args["image_dir"]), peers_dir, batch_size=args["batch_size"],
                           crop_size=args["crop_size"], seed=args["seed"], timings=timings)
    rows = measure_specs(specs, args["worker_counts"], repeats=args["repeats"], max_samples=args["max_samples"],
                         max_seconds=args["max_seconds"], step=TrainingStep(args["step_kind"], args["step_ms"]),
                         wait_workers=args["wait_workers"], wait_batches=args["wait_batches"],
                         regime_workers=args["regime_workers"])
    order = order_quality(specs) if args["order"] else []
    return {"library": library, "rows": rows, "order": order, "timings": timings}


def _in_child(args: dict[str, Any], out: Path, err: Path) -> None:
    """The forked child: its own process group and stderr file; measure, write the result, exit."""
    os.setpgid(0, 0)
    fd = os.open(err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 2)
    started = time.perf_counter()
    try:
        result = _measure(args)
    except BaseException as e:  # noqa: BLE001 - any failure becomes the peer's row
        traceback.print_exc()
        result = {"library": args.get("library"), "error": f"{type(e).__name__}: {e}"}
    result["seconds"] = time.perf_counter() - started
    out.write_text(json.dumps(result))
    sys.stderr.flush()
    os._exit(0)


def _wait(pid: int, timeout: float) -> tuple[int | None, bool]:
    """Wait for child ``pid``: its wait status, or kill its process group after ``timeout`` s."""
    deadline = time.perf_counter() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status, False
        if time.perf_counter() > deadline:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(pid, 0)
            return None, True
        time.sleep(0.02)


def measure_each(many: list[dict[str, Any]], out_dir: Path) -> None:
    """Inside the subprocess: import once, then each peer in a forked child; ``OUT_DIR/<i>.json`` per peer."""
    from . import peer_loaders, regimes  # noqa: F401  (imported once, before forking: each child has them)

    for i, args in enumerate(many):
        out, err = out_dir / f"{i}.json", out_dir / f"{i}.stderr"
        sys.stdout.flush()
        sys.stderr.flush()
        started = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            _in_child(args, out, err)
        status, timed_out = _wait(pid, args["timeout"])
        if out.exists():
            continue
        seconds = time.perf_counter() - started
        if timed_out:
            why = f"timed out after {args['timeout']:.0f} s"
        else:
            code = os.waitstatus_to_exitcode(status)
            tail = _last_error_line(err.read_text(errors="replace")) if err.exists() else ""
            why = (f"crashed (signal {-code})" if code < 0 else f"crashed (exit {code})") + (f": {tail}" if tail
                                                                                             else "")
        out.write_text(json.dumps({"library": args["library"], "error": why, "seconds": seconds}))


def main(argv: list[str] | None = None) -> int:
    """Subprocess entry point: measure each peer of the JSON list, one result file per peer in OUT_DIR."""
    argv = sys.argv[1:] if argv is None else argv
    many, out_dir = json.loads(argv[0]), Path(argv[1])
    if isinstance(many, dict):
        many = [many]
    measure_each(many, out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
