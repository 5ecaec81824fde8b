"""Local-verification records: what this machine measured in a chapter, saved as JSON and shown as a table."""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Mapping

import psutil

from data_gen.atomic import atomic_write_bytes

from ..measure.throughput import SEED_BAR, ThroughputResult
from .tables import Table

PACKAGES = ("numpy", "torch", "webdataset", "torchdata", "matplotlib", "papermill", "nbval", "tqdm", "psutil")
ENV_DIR = "COURSE_VERIFICATION_DIR"
_chapter_started: dict[str, float] = {}


def start_chapter(chapter: str) -> str:
    """Start the chapter's timer (call in the first cell); the checkpoint reports the runtime since."""
    _chapter_started[chapter] = time.perf_counter()
    return f"{chapter}: timer started {datetime.now().strftime('%H:%M:%S')}"


def default_out_dir() -> Path:
    """``$COURSE_VERIFICATION_DIR`` if set, else ``build/verification`` in the project root."""
    if os.environ.get(ENV_DIR):
        return Path(os.environ[ENV_DIR])
    return Path(__file__).resolve().parents[2] / "build" / "verification"


def backend() -> str:
    """``cuda: <device name>`` when torch sees a GPU, else ``cpu``."""
    import torch

    if torch.cuda.is_available():
        return f"cuda: {torch.cuda.get_device_name(0)}"
    return "cpu"


def package_versions(names: Iterable[str] = PACKAGES) -> dict[str, str]:
    """Installed versions, read from package metadata (never typed by hand)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def disk_bytes(path: str | Path) -> int:
    """Bytes of all files under ``path`` (or of the file itself)."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def environment_summary(path: str | Path = ".") -> dict[str, Any]:
    """Python, OS, CPUs, memory, free disk where ``path`` lives, CPU/GPU backend and package versions."""
    vm = psutil.virtual_memory()
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return {
        "python": sys.version.split()[0],
        "os": f"{platform.system()} {platform.release()} ({platform.machine()})",
        "cpu_count": os.cpu_count(),
        "memory_total_mb": vm.total / 1e6,
        "memory_available_mb": vm.available / 1e6,
        "disk_free_mb": psutil.disk_usage(str(probe.resolve())).free / 1e6,
        "backend": backend(),
        "packages": package_versions(),
    }


class VerificationRecord(dict):
    """A record (a plain dict, JSON-ready) that Jupyter shows as a table."""

    def rows(self) -> list[tuple[str, str]]:
        """The record flattened to (field, value) rows, results last."""
        rows = [(k, str(self[k])) for k in ("chapter", "timestamp", "python", "os", "cpu_count", "backend")]
        rows += [("memory total / available",
                  f"{self['memory_total_mb']:,.0f} MB / {self['memory_available_mb']:,.0f} MB"),
                 ("data path", f"{self['data_path']} ({self['data_bytes'] / 1e6:,.1f} MB)"),
                 ("runtime", "timer not started" if self["runtime_s"] is None else f"{self['runtime_s']:.1f} s")]
        rows += [(f"version: {k}", v) for k, v in self["packages"].items()]
        fastest = max((r["samples_per_s"] for r in self["results"]), default=0.0) or 1.0
        for r in self["results"]:
            bar = r.get("seed_bar_samples_per_s", SEED_BAR)
            rows.append((f"result: {r['label']}", f"{r['samples_per_s']:,.0f} samples/s, {r['mb_per_s']:,.1f} MB/s "
                         f"({r['samples']:,} samples; {r['samples_per_s'] / fastest:.2f} of this chapter's fastest; "
                         f"{r['samples_per_s'] / bar:,.1f}x the seed's {bar:,.0f} samples/s)"))
        rows += [(f"note: {k}", str(v)) for k, v in self.get("notes", {}).items()]
        rows += [(f"shard faults: {k}", str(v)) for k, v in self.get("shard_faults", {}).items()]
        rows.append(("saved to", str(self.get("path", ""))))
        return rows

    def table(self) -> Table:
        """The record as a two-column table."""
        return Table(self.rows(), title=f"Local verification: {self['chapter']}")

    def __str__(self) -> str:
        return str(self.table())

    def _repr_html_(self) -> str:
        return self.table()._repr_html_()

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        printer.text(str(self))


def verification_checkpoint(chapter: str, *, data_dir: str | Path,
                            results: Iterable[ThroughputResult] | Mapping[str, ThroughputResult],
                            out_dir: str | Path | None = None,
                            notes: Mapping[str, Any] | None = None, errors: Iterable[Any] = ()) -> VerificationRecord:
    """Record what this chapter measured here, write it as JSON under ``out_dir`` and return it.

    Only measured numbers are accepted: every result must be a ``ThroughputResult`` from
    ``measure_throughput``. ``notes`` holds other observations (strings or numbers the notebook measured).
    ``errors``: the ``ErrorLog`` of each WebDataset pipeline run; their retries, skips and samples lost are recorded.
    """
    if isinstance(results, Mapping):
        results = list(results.values())
    results = list(results)
    for r in results:
        if not isinstance(r, ThroughputResult):
            raise TypeError(f"results must come from measure_throughput, got {type(r).__name__}: {r!r}")
    started = _chapter_started.get(chapter)
    record = VerificationRecord(
        chapter=chapter,
        timestamp=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **environment_summary(data_dir),
        data_path=str(Path(data_dir).resolve()),
        data_bytes=disk_bytes(data_dir),
        runtime_s=None if started is None else time.perf_counter() - started,
        results=[r.as_dict() for r in results],
        notes=dict(notes or {}),
    )
    if errors := list(errors):
        record["shard_faults"] = {"retries": sum(e.retries for e in errors), "skips": sum(e.count for e in errors),
                                  "retry_seconds": sum(e.retry_seconds for e in errors),
                                  "samples_lost": sum(e.samples_lost for e in errors)}
    out = Path(out_dir) if out_dir is not None else default_out_dir()
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
    path = out / f"{chapter}_{stamp}.json"
    record["path"] = str(path)
    atomic_write_bytes(path, (json.dumps(record, indent=2) + "\n").encode())
    return record


def load_records(out_dir: str | Path | None = None, chapter: str | None = None) -> list[VerificationRecord]:
    """Every record under ``out_dir`` (optionally one chapter's), oldest first."""
    out = Path(out_dir) if out_dir is not None else default_out_dir()
    pattern = f"{chapter}_*.json" if chapter else "*.json"
    records = [VerificationRecord(json.loads(p.read_text())) for p in out.glob(pattern)]
    records = [r for r in records if chapter is None or r["chapter"] == chapter]
    return sorted(records, key=lambda r: Path(r["path"]).stem.rsplit("_", 1)[-1])  # the UTC stamp in the name
