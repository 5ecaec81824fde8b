"""Measure each peer library in its own subprocess; a peer that fails becomes a row that says why.

    python -m course_lib.measure.peer_runner '<json arguments>' RESULT.json   (what :func:`run_peer` runs)

Why a subprocess per peer: litdata switches the process's multiprocessing start method to ``spawn`` when it is
used, after which every DataLoader with workers in that process must pickle its dataset; a library can also
crash or hang. In its own process each peer gets a clean interpreter, the course's loaders in the parent keep
``fork``, and a failure costs one row, not the benchmark.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Sequence

PEER_LIBRARIES = ("litdata", "HF datasets", "torchdata", "webdataset")
MOSAIC_REASON = ("mosaicml-streaming 0.13 cannot be installed beside torch 2.13 CPU: it needs numpy<2.2 and "
                 "transformers<5 and imports torchvision at import time (which fails beside this torch)")


def skipped_peers() -> list[dict[str, Any]]:
    """Peers that are never measured here, each with the reason (never a silent drop)."""
    from .peers import missing

    reason = missing("streaming")
    return [{"library": "Mosaic Streaming", "error": f"skipped: {MOSAIC_REASON}"
             + (f" ({reason})" if reason else "")}]


def run_peer(library: str, image_dir: str | Path, peers_dir: str | Path, *, worker_counts: Sequence[int] = (0, 2),
             repeats: int = 3, max_samples: dict[str, int | None] | None = None, max_seconds: float | None = None,
             batch_size: int = 64,
             crop_size: int = 64, seed: int = 0, step_kind: str = "busy", step_ms: float = 20.0,
             wait_workers: Sequence[int] = (), wait_batches: int = 12, order: bool = True,
             regime_workers: dict[str, Sequence[int]] | None = None, timeout: float = 300.0) -> dict[str, Any]:
    """Measure one peer library in a fresh subprocess; returns its rows, or ``{"library", "error"}``.

    ``regime_workers`` (e.g. ``{"raw": [0], "JPEG": [2]}``) overrides ``worker_counts`` per regime.
    The result holds ``rows`` (as :func:`~.regimes.measure_specs`, with ``data_wait`` at ``wait_workers``),
    ``order`` (shuffle statistics), ``timings`` (conversions, not counted in any rate)
    and ``seconds`` (the whole subprocess).
    """
    args = {"library": library, "image_dir": str(Path(image_dir).resolve()),
            "peers_dir": str(Path(peers_dir).resolve()), "worker_counts": list(worker_counts), "repeats": repeats,
            "max_samples": max_samples or {}, "max_seconds": max_seconds, "batch_size": batch_size,
            "crop_size": crop_size, "seed": seed,
            "step_kind": step_kind, "step_ms": step_ms, "wait_workers": list(wait_workers),
            "wait_batches": wait_batches, "order": order,
            "regime_workers": {k: list(v) for k, v in (regime_workers or {}).items()}}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="peer-") as tmp:
        out = Path(tmp) / "result.json"
        try:
            proc = subprocess.run([sys.executable, "-m", "course_lib.measure.peer_runner", json.dumps(args),
                                   str(out)], capture_output=True, text=True, timeout=timeout,
                                  env={**os.environ, "PYTHONWARNINGS": "ignore", "TQDM_DISABLE": "1"})
        except subprocess.TimeoutExpired:
            return {"library": library, "error": f"timed out after {timeout:.0f} s",
                    "seconds": time.perf_counter() - started}
        if out.exists():
            result = json.loads(out.read_text())
            result["seconds"] = time.perf_counter() - started
            return result
        why = _last_error_line(proc.stderr) or f"exit status {proc.returncode}, no output"
        return {"library": library, "error": f"crashed (exit {proc.returncode}): {why}",
                "seconds": time.perf_counter() - started}


def _last_error_line(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.strip().splitlines() if ln.strip()]
    for line in reversed(lines):
        if "Error" in line or "error" in line or "Exception" in line:
            return line[:300]
    return lines[-1][:300] if lines else ""


def run_peers(image_dir: str | Path, peers_dir: str | Path, *, libraries: Sequence[str] = PEER_LIBRARIES,
              progress: bool = False, **kwargs: Any) -> dict[str, Any]:
    """:func:`run_peer` for each library in turn, merged: ``rows``, ``order``, ``timings``,
    ``failed`` (one row per failed or skipped peer, with its reason) and ``seconds`` per library."""
    merged: dict[str, Any] = {"rows": [], "order": [], "timings": {}, "failed": [], "seconds": {}}
    for library in libraries:
        result = run_peer(library, image_dir, peers_dir, **kwargs)
        merged["seconds"][library] = result.get("seconds")
        if "error" in result:
            merged["failed"].append({"library": library, "error": result["error"]})
        else:
            for key in ("rows", "order"):
                merged[key] += result[key]
            merged["timings"].update(result["timings"])
        if progress:
            print(f"  peer {library}: " + (result.get("error") or f"{len(result['rows'])} rows")
                  + f" in {result.get('seconds', 0):.1f} s", file=sys.stderr, flush=True)
    merged["failed"] += skipped_peers()
    return merged


def _measure(args: dict[str, Any]) -> dict[str, Any]:
    """Inside the subprocess: build the peer's loaders (converting once), then measure them."""
    from .peer_loaders import PEERS
    from .regimes import measure_specs, order_quality
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


def main(argv: list[str] | None = None) -> int:
    """Subprocess entry point: measure one peer, write the JSON result (or the error) to the given path."""
    argv = sys.argv[1:] if argv is None else argv
    args, out = json.loads(argv[0]), Path(argv[1])
    try:
        result = _measure(args)
    except Exception as e:  # noqa: BLE001 - any failure becomes the peer's row
        traceback.print_exc()
        result = {"library": args.get("library"), "error": f"{type(e).__name__}: {e}"}
    out.write_text(json.dumps(result))
    return 0 if "error" not in result else 1


if __name__ == "__main__":
    sys.exit(main())
