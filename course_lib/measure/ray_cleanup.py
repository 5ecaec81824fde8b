"""Ray processes a run left behind: its daemons and workers, told apart from another user's Ray on a shared machine.

A Ray process is counted when it started at or after ``since`` and is either a descendant of this process (it
should have been stopped) or an orphan (its parent is gone, it was re-parented to PID 1). Another user's Ray
has a live driver of its own above it, so it is not counted.
"""
from __future__ import annotations

import psutil

RAY_NAMES = ("raylet", "gcs_server", "ray::", "ray/dashboard", "ray/_private", "ray/autoscaler", "default_worker",
             "runtime_env", "plasma_store")


def _is_ray(proc: psutil.Process) -> str | None:
    """The process's command line if it looks like a Ray daemon or worker, else None."""
    try:
        line = " ".join(proc.cmdline()) or proc.name()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
    return line if any(name in line for name in RAY_NAMES) else None


def ray_leftovers(since: float) -> list[str]:
    """Command lines (shortened) of the Ray processes started since ``since`` (``time.time()``) still running."""
    me = psutil.Process()
    mine = {p.pid for p in me.children(recursive=True)}
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.pid == me.pid or proc.create_time() < since - 1:   # create_time: boot time in whole seconds
                continue
            orphan = proc.ppid() == 1
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        line = _is_ray(proc) if (proc.pid in mine or orphan) else None
        if line:
            found.append(f"{proc.pid}: {line[:100]}")
    return found
