"""Grouping tar members into samples, as webdataset does: consecutive members sharing a key form one sample.

``000000042.x.npy`` and ``000000042.cls`` become ``{"__key__": "000000042", "__url__": url, "x.npy": ...,
"cls": ...}``. Works on plain ``(name, data)`` pairs, so it is tested without any tar file.
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Iterator

from .shard_errors import ShardReadError

_KEY = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")


def split_key(name: str) -> tuple[str | None, str]:
    """(sample key, member suffix) as webdataset splits them: ``000000042.x.npy`` -> (``000000042``, ``x.npy``)."""
    match = _KEY.match(name)
    return (match.group(1), match.group(2).lower()) if match else (None, "")


class SampleGrouper:
    """Feed members one at a time (:meth:`add`); a sample comes out when the next key starts, the last one from
    :meth:`rest`. Kept as an object so a reader interrupted by an error can still look at the open sample."""

    def __init__(self, url: str):
        self.url, self.current = url, None

    def add(self, name: str, data: Any) -> dict[str, Any] | None:
        """Add one member; returns the previous sample when ``name`` starts a new one."""
        key, suffix = split_key(name)
        if key is None:
            return None
        done = None
        if self.current is not None and key != self.current["__key__"]:
            done, self.current = self.current, None
        if self.current is None:
            self.current = {"__key__": key, "__url__": self.url}
        if suffix in self.current:
            raise ShardReadError(f"sample {key}: member {suffix} appears twice")
        self.current[suffix] = data
        return done

    def rest(self) -> dict[str, Any] | None:
        """The sample still open (None if none); the grouper is empty afterwards."""
        done, self.current = self.current, None
        return done


def group_samples(members: Iterable[tuple[str, Any]], url: str = "") -> Iterator[dict[str, Any]]:
    """Samples from ``(member name, data)`` pairs in archive order."""
    grouper = SampleGrouper(url)
    for name, data in members:
        sample = grouper.add(name, data)
        if sample is not None:
            yield sample
    last = grouper.rest()
    if last is not None:
        yield last
