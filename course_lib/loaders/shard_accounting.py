"""Accounting for every shard: opened shards -> samples, each shard's samples counted against the manifest.

A truncated or damaged shard is an error naming it (``handler="raise"``) or a counted skip that says how many
samples were lost (``handler="warn"``), from the manifest's per-shard sample count and byte size. The stages it
joins live beside it: ``tar_members`` (members, with the end-of-archive check), ``sample_grouping`` (members ->
samples) and ``shard_open`` (the size a stream announces).
"""
from __future__ import annotations

from typing import Any, Iterable, Iterator

from .sample_grouping import SampleGrouper
from .shard_errors import ErrorLog, ShardReadError
from .shard_index import ShardExpectation
from .shard_open import stream_size
from .tar_members import tar_members


class ShardSamples:
    """Pipeline stage: opened shards -> samples (``{"__key__", "__url__", member: data}``), with each shard
    accounted for.

    A shard that is cut short or damaged is reported once, at the point it is found: ``handler="raise"``
    raises a :class:`ShardReadError` naming it (a size that differs from the manifest's is found before any
    of its samples is read); ``"warn"`` delivers the shard's complete samples and records one skip with the
    number of samples lost (the manifest's count minus the samples delivered; a trailing sample missing a
    member is dropped and counted lost). ``expected`` maps shard file names to :class:`ShardExpectation`;
    ``per_item`` is how many samples one grouped item holds (a block), the last one of a shard possibly fewer.
    A plain object (no lambda), so a pipeline holding it pickles into DataLoader workers.
    """

    def __init__(self, expected: dict[str, ShardExpectation], errors: ErrorLog, members: set[str],
                 lazy: bool = False, per_item: int = 1):
        self.expected, self.errors, self.members = expected, errors, set(members)
        self.lazy, self.per_item = lazy, per_item

    def __call__(self, shards: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for source in shards:
            yield from self.shard(source["url"], source["stream"])

    def shard(self, url: str, stream: Any) -> Iterator[dict[str, Any]]:
        """The samples of one opened shard; closes it."""
        want = self.expected.get(url.rsplit("/", 1)[-1])
        items, problem, grouper = 0, None, SampleGrouper(url)
        try:
            size = stream_size(url, stream)
            if want is not None and want.bytes is not None and size is not None and size != want.bytes:
                problem = f"{size:,} bytes, the manifest says {want.bytes:,}"
                if self.errors.mode == "raise":
                    raise ShardReadError(f"{url}: truncated or damaged: {problem}")
            for name, data in tar_members(url, stream, self.lazy):
                sample = grouper.add(name, data)
                if sample is not None:
                    items += 1
                    yield sample
        except ShardReadError as e:
            if self.errors.mode == "raise" and str(e).startswith(url):
                raise
            problem = str(e)
        except Exception as e:  # noqa: BLE001 - tarfile's errors: reported below, naming the shard
            problem = f"{type(e).__name__}: {e}"
        finally:
            stream.close()
        last = grouper.rest()
        if last is not None and (problem is None or self.members <= last.keys()):
            items += 1
            yield last            # complete, or (shard intact) left for the decoder to refuse and count
        samples = None if want is None else min(items * self.per_item, want.samples)
        if problem is None and want is not None and samples != want.samples:
            problem = f"{samples:,} of {want.samples:,} samples in the shard"
        if problem is not None:
            self._report(url, problem, want, items)

    def _report(self, url: str, problem: str, want: ShardExpectation | None, items: int) -> None:
        if want is None:
            lost = None
            read = "samples" if self.per_item == 1 else "blocks"
            tail = f"{items:,} {read} read; no manifest, so how many were lost is unknown"
        else:
            lost = want.samples - min(items * self.per_item, want.samples)
            tail = f"{lost:,} of {want.samples:,} samples lost"
        message = f"{url}: truncated or damaged ({problem}): {tail}"
        if self.errors.mode == "raise":
            raise ShardReadError(message)
        self.errors.skip(message, lost)
