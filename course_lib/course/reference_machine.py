"""Figures measured on another machine, kept as data: shown *beside* this machine's rows, never as yours.

``reference/NAME.jsonl`` holds one JSON object per line: first ``{"part": "machine", ...}`` (the hardware, the
versions and how each part was measured), then the rows of one run, each tagged with its ``part``:

- ``workers``  - the batched mmap path through ``DataLoader(num_workers=N)``;
- ``regimes``  - chapter 05's copy-bound and decode-bound loaders (``label`` as :meth:`LoaderSpec.label` writes it);
- ``feed``     - a small CNN trained on the GPU from each loader: the share of time spent waiting for data;
- ``transfer`` - :func:`~course_lib.measure.transfer_modes.compare_modes` to the GPU.

:func:`reference_figures` returns them grouped by part, each row with ``regime``, ``library``, ``loader`` and
``num_workers`` filled in, so :func:`~course_lib.measure.regimes.best` finds rows here and there alike.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

REFERENCE_DIR = Path(__file__).resolve().parent / "reference"
H100 = "h100_16cores_2026-11-27"  # tools/gpu_check.sh on a lent machine: one H100, 16 cores, torch 2.11
PARTS = ("workers", "regimes", "feed", "transfer")


def parse_label(label: str) -> dict[str, Any]:
    """``"JPEG · seed: <loader> · 2 workers"`` -> regime, library, loader, num_workers (as LoaderSpec.label writes)."""
    try:
        regime, named, workers = label.split(" · ")
        library, loader = named.split(": ", 1)
        num_workers = int(workers.split()[0])
    except ValueError as e:
        raise ValueError(f"not a loader label 'regime · library: loader · N workers': {label!r}") from e
    return {"regime": regime, "library": library, "loader": loader, "num_workers": num_workers}


def reference_figures(name: str = H100) -> dict[str, Any]:
    """The figures of reference run ``name``: ``machine`` (a dict) and one list of rows per part."""
    path = REFERENCE_DIR / f"{name}.jsonl"
    if not path.exists():
        known = sorted(p.stem for p in REFERENCE_DIR.glob("*.jsonl"))
        raise FileNotFoundError(f"no reference figures {path}; known: {', '.join(known) or 'none'}")
    out: dict[str, Any] = {"machine": None, **{part: [] for part in PARTS}}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            part = row["part"]
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path}:{n}: not a JSON object with a 'part': {line[:80]!r}") from e
        if part == "machine":
            out["machine"] = row
        elif part in PARTS:
            out[part].append(_normalised(part, row))
        else:
            raise ValueError(f"{path}:{n}: unknown part {part!r} (known: machine, {', '.join(PARTS)})")
    if out["machine"] is None:
        raise ValueError(f"{path}: no 'machine' line: figures without their machine cannot be shown")
    return out


def _normalised(part: str, row: dict[str, Any]) -> dict[str, Any]:
    if part == "regimes":
        return {**row, **parse_label(row["label"])}
    if part in ("workers", "feed"):
        return {"regime": "raw" if "mmap" in row["loader"] else "JPEG", "library": "course", **row}
    return row


def worker_scaling(rows: Iterable[dict[str, Any]], **where: Any) -> dict[int, float]:
    """Samples/s of each worker count over the 0-worker rate, for the rows matching ``where`` (both machines)."""
    chosen = {r["num_workers"]: r["samples_per_s"] for r in rows
              if "error" not in r and r.get("num_workers") is not None
              and all(r.get(k) == v for k, v in where.items())}
    base = chosen.get(0)
    return {w: rate / base for w, rate in sorted(chosen.items())} if base else {}
