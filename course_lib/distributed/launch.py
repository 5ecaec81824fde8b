"""Launch ``ddp_stream`` under torchrun as a subprocess, with a hard timeout, and read back what every rank did.

The script's own collective timeout is the first guard against a hang; this module's wall-clock limit is the
second: past it, torchrun and every process below it (ranks, DataLoader workers) are killed.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import psutil

from ..measure.throughput import ThroughputResult
from .rank_checks import find_run


@dataclass
class LaunchResult:
    """One torchrun launch: exit code, wall time, the result rank 0 wrote (if it got that far), each rank's state."""

    command: list[str]
    returncode: int | None
    seconds: float
    timed_out: bool
    log: Path
    result: dict[str, Any] | None
    ranks: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Exited 0 and wrote its complete result."""
        return self.returncode == 0 and bool(self.result) and bool(self.result.get("complete"))

    @property
    def stuck_ranks(self) -> list[int]:
        """Ranks that reported a timed-out collective."""
        return sorted(r for r, s in self.ranks.items() if s.get("state") == "stuck")

    def run(self, name: str, epoch: int = 0) -> dict[str, Any]:
        """The report of run ``name`` at ``epoch`` (raises naming the launch's failure if there is no result)."""
        if self.result is None:
            raise RuntimeError(f"no result: {self.summary()}\n{self.tail()}")
        return find_run(self.result, name, epoch)

    def throughput(self, names: Sequence[str] = ()) -> list[ThroughputResult]:
        """The per-rank rows each rank measured with ``measure_throughput`` (runs named in ``names``, or all)."""
        fields = ThroughputResult.__dataclass_fields__
        rows = []
        for run in (self.result or {}).get("runs", []):
            if names and run["name"] not in names:
                continue
            for measured in run.get("throughput") or []:
                if measured:
                    rows.append(ThroughputResult(**{k: v for k, v in measured.items() if k in fields}))
        return rows

    def tail(self, lines: int = 15) -> str:
        """The last lines torchrun and the ranks printed."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def summary(self) -> str:
        """One sentence: how the launch ended and where each rank was."""
        how = ("killed at the hard timeout" if self.timed_out else f"exit code {self.returncode}")
        where = "; ".join(f"rank {r}: {s.get('state')}" + (f" in {s['run']} after {s['batches']} batches"
                                                            if "run" in s and "batches" in s else "")
                          for r, s in sorted(self.ranks.items()))
        return f"{how} after {self.seconds:.1f} s" + (f" ({where})" if where else "")


def torchrun(data_dir: str | Path, out: str | Path, runs: Sequence[str], *, nproc: int = 2, timeout_s: float = 120.0,
             env: dict[str, str] | None = None, module: str = "course_lib.distributed.ddp_stream",
             **options: Any) -> LaunchResult:
    """``torchrun --standalone --nproc_per_node=nproc -m course_lib.distributed.ddp_stream --data-dir ... --out ...``
    (``module``: another rank script taking ``--data-dir`` and ``--out``; ``runs`` may then be empty).

    ``options`` become the script's flags (``batch_size=64`` -> ``--batch-size 64``). ``env`` adds environment
    variables (the S3 endpoint). Killed with everything below it after ``timeout_s`` seconds.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    ranks_dir = out.parent / f"{out.stem}.ranks"
    for stale in [out, *ranks_dir.glob("rank*.json")]:
        stale.unlink(missing_ok=True)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", module, "--data-dir", str(data_dir), "--out", str(out), *(["--runs", *runs] if runs else [])]
    for key, value in options.items():
        if value is not None:
            command += [f"--{key.replace('_', '-')}", str(value)]
    log = out.with_suffix(".log")
    started = time.perf_counter()
    with open(log, "w") as sink:
        proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
        try:
            returncode, timed_out = proc.wait(timeout=timeout_s), False
        except subprocess.TimeoutExpired:
            kill_tree(proc.pid)
            returncode, timed_out = proc.wait(), True
        except BaseException:           # interrupted (a failing test, Ctrl-C): never leave ranks behind
            kill_tree(proc.pid)
            proc.wait()
            raise
    seconds = time.perf_counter() - started
    for scratch in ranks_dir.glob("scratch-rank*"):       # a rank that was killed could not remove its own
        shutil.rmtree(scratch, ignore_errors=True)
    result = json.loads(out.read_text()) if out.exists() else None
    ranks = {}
    for path in sorted(ranks_dir.glob("rank*.json")):
        state = json.loads(path.read_text())
        ranks[int(state["rank"])] = state
    return LaunchResult(command, returncode, seconds, timed_out, log, result, ranks)


def kill_tree(pid: int, grace: float = 3.0) -> None:
    """Terminate ``pid`` and all its descendants (ranks run in sessions of their own), then kill what is left."""
    try:
        parent = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    procs = [*parent.children(recursive=True), parent]
    for p in procs:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=grace)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=grace)
