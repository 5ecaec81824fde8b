"""Chapter 04's exercise solutions (open this file when you are stuck; `make course` and CI run them)."""
from __future__ import annotations

from typing import Any

from ..course.exercises import solution
from ..loaders.keyed_random import keyed_rng
from .ch02_mmap_streaming import ShardLoader


class KeyedShardLoader(ShardLoader):
    """Chapter 04, exercise 1: chapter 02's loader with its block order drawn from ``keyed_rng(seed, epoch)``:
    no two (seed, epoch) pairs share a stream (``seed + epoch`` gives (42, 1) and (43, 0) the same), and epoch 0
    is not ``default_rng(seed)``'s stream. The library's version: ``course_lib/loaders/epoch_plan.py``."""

    def block_order(self):
        """Every block's number, permuted by the generator keyed by (seed, epoch)."""
        return keyed_rng(self.seed, self.epoch).permutation(len(self.blocks))


@solution("04_keyed_order")
def keyed_shard_loader():
    """Chapter 04: the class above (module level, so another process can import it)."""
    return KeyedShardLoader


class ResumableShardLoader(KeyedShardLoader):
    """Chapter 04, exercise 2: resume by skip. ``state_dict(samples_seen)`` records (seed, epoch, samples seen);
    after ``load_state_dict`` the next iteration reads the epoch from its start and drops the first
    ``samples_seen`` samples. Without DataLoader workers (each worker would skip from its own share); the
    library keeps one position per worker and jumps there without reading: ``course_lib/loaders/resume_position.py``."""

    skip = 0

    def set_epoch(self, epoch: int) -> None:
        """A new epoch starts from its first sample."""
        super().set_epoch(epoch)
        self.skip = 0

    def state_dict(self, samples_seen: int) -> dict[str, Any]:
        """What a fresh loader needs to continue: the order's key and how far the consumer got."""
        return {"seed": self.seed, "epoch": self.epoch, "samples_seen": int(samples_seen)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the epoch of ``state`` after its ``samples_seen`` samples."""
        self.seed, self.epoch, self.skip = state["seed"], state["epoch"], state["samples_seen"]

    def __iter__(self):
        """The epoch's batches, the first ``skip`` samples dropped (read, then skipped)."""
        skip = self.skip
        for batch in super().__iter__():
            n = len(batch["idx"])
            if skip >= n:
                skip -= n
                continue
            if skip:
                batch, skip = {k: v[skip:] for k, v in batch.items()}, 0
            yield batch


@solution("04_resume_by_skip")
def resumable_shard_loader():
    """Chapter 04: the class above."""
    return ResumableShardLoader
