"""Where a stream stands in its epoch, as pure arithmetic: what ``state_dict`` saves and ``load_state_dict``
restores. No file is read here; ``MmapShardDataset`` only executes it.

On the same topology (world_size, rank) a position is the count below. On another one,
:func:`delivered_positions` turns the saved states into the positions of the epoch order already delivered,
which the new job's plans leave out (README: Elastic determinism).

The epoch plan yields one rank's stream in the same order for any number of DataLoader workers, so in the
main process a position is one number, ``samples_seen`` of the rank stream. Inside a worker (where
torchdata's ``StatefulDataLoader`` asks) it is the rank-stream position the worker's iterator started at plus
how many of its own samples it has yielded since (``worker_samples``); loading that makes the same worker skip
exactly those and continue.
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from .epoch_plan import deal, remaining_positions


class ResumePosition:
    """The counters of one rank's (or one worker's) position; pure integers.

    ``begin()`` starts an iteration from a pending resume point (set by ``load``) and returns
    ``(resume, skip)``: the rank-stream position to plan from and the samples this worker skips after it.
    ``advance(n)`` counts yielded samples; ``state()`` says where the stream stands.
    """

    def __init__(self) -> None:
        self.restart()

    def restart(self) -> None:
        """Back to the start of the epoch, nothing pending."""
        self.pending = (0, 0)   # (resume, skip) for the next iteration
        self.base = 0           # rank-stream position where the current iteration started
        self.seen = 0           # base + samples this process skipped or yielded since

    def begin(self) -> tuple[int, int]:
        """Start an iteration: consume the pending resume point; returns ``(resume, skip)``."""
        resume, skip = self.pending
        self.pending = (0, 0)
        self.base, self.seen = resume, resume + skip
        return resume, skip

    def advance(self, n: int = 1) -> None:
        """``n`` more samples were yielded."""
        self.seen += n

    def state(self, length: int, worker: int = 0, num_workers: int = 1,
              samples_seen: int | None = None) -> dict[str, Any]:
        """``{"samples_seen": ...}`` (plus ``worker``, ``num_workers``, ``worker_samples`` inside one of several
        workers when ``samples_seen`` is not given). ``length``: samples in this rank's epoch."""
        if samples_seen is None and num_workers > 1:
            return {"samples_seen": self.base, "worker": worker, "num_workers": num_workers,
                    "worker_samples": self.seen - self.base}
        seen = self.seen if samples_seen is None else int(samples_seen)
        if not 0 <= seen <= length:
            raise ValueError(f"samples_seen={seen} outside this rank's epoch of {length} samples")
        return {"samples_seen": seen}

    def load(self, state: dict[str, Any], length: int, worker: int = 0, num_workers: int = 1) -> None:
        """Continue from ``state`` at the next ``begin()``; a worker's state must be loaded in that worker."""
        resume, skip = int(state["samples_seen"]), 0
        if not 0 <= resume <= length:
            raise ValueError(f"state_dict['samples_seen']={resume} outside this rank's epoch of {length} samples")
        if "worker" in state:
            if (state["worker"], state["num_workers"]) != (worker, num_workers):
                raise ValueError(f"state_dict is worker {state['worker']} of {state['num_workers']}, but it is "
                                 f"loaded in worker {worker} of {num_workers}: resume with the same num_workers")
            skip = int(state["worker_samples"])
        self.pending = (resume, skip)
        self.base, self.seen = resume, resume + skip


def skip_ids(parts: Iterator[np.ndarray], n: int) -> Iterator[np.ndarray]:
    """``parts`` without their first ``n`` ids in total (ids only: nothing is read for skipped ones)."""
    for part in parts:
        if n >= len(part):
            n -= len(part)
            continue
        yield part[n:]
        n = 0


def delivered_positions(states: list[dict[str, Any]], total: int, piece: int) -> list[int]:
    """Positions of the epoch order that the job which saved ``states`` delivered, as flat ``[start, stop, ...]``:
    what a job on another topology skips (``EpochPlan(done=...)``).

    One state (saved on any rank in DDP lockstep): every rank of that job consumed ``samples_seen`` samples of
    its own stream (or all it had). A list: one state per rank of that job, each its own count (ranks not in
    lockstep). A DataLoader worker's own state cannot move to another topology."""
    world_size = int(states[0]["world_size"])
    for key in ("world_size", "epoch", "done", "drop_last"):
        values = {repr(s.get(key)) for s in states}
        if len(values) > 1:
            raise ValueError(f"the states disagree on {key!r} ({sorted(values)}): they are not from one job's step")
    if any("worker" in s for s in states):
        raise ValueError("a DataLoader worker's own state (with 'worker') resumes only with the same world_size and "
                         "num_workers: save state_dict(samples_seen=n) in the training loop to change topology")
    if len(states) == 1:
        seen = {rank: int(states[0]["samples_seen"]) for rank in range(world_size)}
    else:
        ranks = sorted(int(s["rank"]) for s in states)
        if ranks != list(range(world_size)):
            raise ValueError(f"a list of states needs one per rank 0..{world_size - 1}, got ranks {ranks}")
        seen = {int(s["rank"]): int(s["samples_seen"]) for s in states}
    done = list(states[0].get("done", []))
    rest = remaining_positions(total, done)
    delivered = np.ones(total, dtype=bool)
    delivered[rest] = False
    for rank, n in seen.items():
        delivered[rest[deal(len(rest), piece, rank, world_size, bool(states[0]["drop_last"]))][:n]] = True
    return intervals(delivered)


def intervals(mask: np.ndarray) -> list[int]:
    """The runs of True in ``mask`` as flat ``[start, stop, start, stop, ...]`` (plain ints: JSON-ready)."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return [int(e) for e in edges]
