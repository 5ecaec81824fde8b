"""Shard-level resume of a WebDataset epoch, on the same or another number of ranks.

A tar stream cannot restart at sample *k*, so a run resumes at shard granularity: the state a run saves says,
per shard, how many of its samples were delivered (``delivered``, summed over every rank's state). On resume
the epoch's shard order (a pure function of seed and epoch, the same for any ``world_size``) is kept, the
finished shards are dropped, and what is left is split over the *new* ranks and workers as usual. The shards
that were *in flight* at the stop (partly delivered) are either read again (``in_flight="replay"``: their
delivered samples are repeated) or dropped (``"skip"``: their undelivered samples are lost for this epoch);
:class:`ResumePlan` counts those samples and says so in a warning, never silently.
"""
from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .shard_index import ShardExpectation

IN_FLIGHT = ("replay", "skip")
STATE_KEYS = ("seed", "epoch", "shardshuffle", "shards")


def shard_state(pipeline: Any, delivered: Mapping[str, int]) -> dict[str, Any]:
    """The state one rank saves at a stop: the pipeline's settings and its samples delivered per shard name."""
    return {"seed": pipeline.seed, "epoch": pipeline.epoch, "shardshuffle": pipeline.shardshuffle,
            "shards": [u.rsplit("/", 1)[-1] for u in pipeline.urls],
            "delivered": {str(k): int(v) for k, v in delivered.items() if v}}


def delivered_per_shard(ids: Iterable[int], expected: Mapping[str, ShardExpectation | int]) -> dict[str, int]:
    """Samples delivered per shard, from their ids, for data_gen's layout (shard ``k`` in name order holds the ids
    right after shard ``k-1``'s); ``expected`` is the manifest's per-shard count (``manifest_shards``)."""
    names = sorted(expected)
    counts = [e.samples if isinstance(e, ShardExpectation) else int(e) for e in (expected[n] for n in names)]
    ends = np.cumsum(counts)
    ids = np.asarray(list(ids), dtype=np.int64)
    if len(ids) and (ids.min() < 0 or ids.max() >= ends[-1]):
        raise ValueError(f"sample ids outside 0..{ends[-1] - 1}: not this dataset's")
    per = np.bincount(np.searchsorted(ends, ids, side="right"), minlength=len(names))
    return {n: int(c) for n, c in zip(names, per) if c}


def merge_states(states: Mapping[str, Any] | Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """One state from every rank's (a single state is returned as it is); settings must agree."""
    if isinstance(states, Mapping):
        return dict(states)
    states = list(states)
    if not states:
        raise ValueError("no resume state given")
    for key in STATE_KEYS:
        values = {repr(s[key]) for s in states}
        if len(values) > 1:
            raise ValueError(f"the ranks' states disagree on {key!r}: {sorted(values)}")
    delivered: dict[str, int] = {}
    for s in states:
        for name, n in s["delivered"].items():
            delivered[name] = delivered.get(name, 0) + int(n)
    return {**{k: states[0][k] for k in STATE_KEYS}, "delivered": delivered}


@dataclass(frozen=True)
class ResumePlan:
    """Which shards a resumed epoch drops, and what the shards in flight at the stop cost."""

    done: tuple[str, ...]         # finished before the stop: not read again
    in_flight: tuple[str, ...]    # partly delivered at the stop
    policy: str                   # "replay" (read them again) or "skip" (drop them)
    samples_repeated: int         # replay: samples of in-flight shards delivered twice this epoch
    samples_skipped: int          # skip: samples of in-flight shards never delivered this epoch
    world_size: int

    @property
    def dropped(self) -> frozenset[str]:
        """Shard names the resumed epoch does not read."""
        return frozenset(self.done + (self.in_flight if self.policy == "skip" else ()))

    def message(self) -> str:
        """What the resume does, in one sentence."""
        cost = (f"{self.samples_repeated:,} samples delivered again" if self.policy == "replay"
                else f"{self.samples_skipped:,} samples not delivered this epoch")
        return (f"resuming on {self.world_size} rank(s): {len(self.done)} shard(s) done, {len(self.in_flight)} in "
                f"flight at the stop ({self.policy}: {cost})")


def plan_resume(state: Mapping[str, Any] | Iterable[Mapping[str, Any]], *, seed: int, epoch: int,
                shardshuffle: bool, shards: list[str], expected: Mapping[str, ShardExpectation],
                in_flight: str = "replay", world_size: int = 1, warn: bool = True) -> ResumePlan:
    """Check a saved state (or every rank's) against this pipeline and plan the resumed epoch."""
    if in_flight not in IN_FLIGHT:
        raise ValueError(f"in_flight must be one of {IN_FLIGHT}, got {in_flight!r}")
    state = merge_states(state)
    here = {"seed": seed, "epoch": epoch, "shardshuffle": shardshuffle, "shards": shards}
    for key in STATE_KEYS:
        if state[key] != here[key]:
            raise ValueError(f"resume state {key!r} is {state[key]!r}, this pipeline's is {here[key]!r}: "
                             "a resumed epoch must use the same data and settings")
    done, flight, repeated, skipped = [], [], 0, 0
    for name, n in sorted(state["delivered"].items()):
        if name not in expected:
            raise ValueError(f"{name}: no sample count from the manifest, so whether it was finished is unknown")
        want = expected[name].samples
        if not 0 <= n <= want:
            raise ValueError(f"{name}: {n} samples delivered, the manifest says it holds {want}")
        if n == want:
            done.append(name)
        elif n:
            flight.append(name)
            repeated, skipped = repeated + n, skipped + want - n
    plan = ResumePlan(tuple(done), tuple(flight), in_flight, repeated if in_flight == "replay" else 0,
                      skipped if in_flight == "skip" else 0, world_size)
    if warn and flight:
        warnings.warn(plan.message(), stacklevel=3)
    return plan
