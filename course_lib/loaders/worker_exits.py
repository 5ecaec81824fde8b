"""A DataLoader worker that dies mid-epoch (the OOM killer's SIGKILL): an error that names it and says how to resume.

torch notices a dead worker from its SIGCHLD handler, which raises ``RuntimeError: DataLoader worker (pid 4242)
is killed by signal: Killed.`` in the main thread, wherever that thread is (often inside the training step), or
from ``next()`` after a timeout ("exited unexpectedly"). The message names a pid, not the worker, and the
iterator is finished: torch does not restart workers. :class:`WorkerExitGuard` wraps a DataLoader: while it
iterates, its own SIGCHLD handler runs torch's first and turns that error into :class:`WorkerExitError` naming
the worker (``worker 1 of 2``), how far this iteration got, and how to continue from the last checkpoint.
"""
from __future__ import annotations

import re
import signal
import threading
from typing import Any, Iterable, Iterator

RESUME_HINT = ("The epoch can continue from your last checkpoint: load its loader state into the dataset "
               "(ds.load_state_dict(state), saved as ds.state_dict(samples_seen=n)) and iterate a new DataLoader; "
               "MmapShardDataset resumes exactly there, with any num_workers or world_size.")


class WorkerExitError(RuntimeError):
    """A DataLoader worker died; the message names it and says how to resume."""


class WorkerExitGuard:
    """Iterate ``loader`` (a DataLoader); a worker that dies raises :class:`WorkerExitError` naming it.

    ``pids``: the worker processes of the current iteration, by worker id (empty with ``num_workers=0``)."""

    def __init__(self, loader: Iterable[Any]):
        self.loader = loader
        self.pids: list[int] = []
        self.received = 0

    def __iter__(self) -> Iterator[Any]:
        iterator = iter(self.loader)
        self.pids = [p.pid for p in getattr(iterator, "_workers", [])]
        self.received = 0
        previous = None
        if self.pids and threading.current_thread() is threading.main_thread():
            previous = signal.getsignal(signal.SIGCHLD)
            signal.signal(signal.SIGCHLD, self._handler(previous))
        try:
            for item in iterator:
                self.received += 1
                yield item
        except WorkerExitError:
            raise
        except RuntimeError as e:
            if "DataLoader worker" not in str(e):
                raise
            raise WorkerExitError(self.describe(e)) from e
        finally:
            if previous is not None:
                signal.signal(signal.SIGCHLD, previous)

    def _handler(self, previous):
        def on_child_exit(signum, frame):
            try:
                if callable(previous):
                    previous(signum, frame)          # torch's check: raises if one of its workers died
            except WorkerExitError:
                raise
            except RuntimeError as e:
                raise WorkerExitError(self.describe(e)) from e
        return on_child_exit

    def describe(self, error: BaseException) -> str:
        """The message: which worker (by id and pid), torch's reason, items received, how to resume."""
        found = re.search(r"pid\(?s?\)?\s*([\d,\s]+)", str(error))      # "pid 42" or "pid(s) 42, 43"
        pids = [int(p) for p in re.findall(r"\d+", found.group(1))] if found else []
        named = [f"worker {self.pids.index(p)} of {len(self.pids)} (pid {p})" if p in self.pids else f"pid {p}"
                 for p in pids] or ["a worker"]
        return (f"DataLoader {', '.join(named)} died mid-epoch ({str(error).strip()}) after this iteration received "
                f"{self.received} items; this iterator cannot go on (torch does not restart workers). {RESUME_HINT}")
