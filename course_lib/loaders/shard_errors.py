"""Errors about shards, one family whichever loader raises them, and the WebDataset error handler.

Catch :class:`ShardError` to catch them all. Each error also keeps the built-in type code may already catch:

- :class:`ShardFormatError` (a ``ValueError``): a shard, header or manifest that cannot be streamed;
- :class:`MissingShardError` (a ``FileNotFoundError``): a folder, shard file or listed shard that is not there;
- :class:`ShardReadError` (a ``RuntimeError``): reading or decoding failed while streaming (a truncated tar, a
  bad ``.npy`` member, HTTP 404 or a dead server).

:class:`ErrorLog` is a WebDataset pipeline's handler: raise naming the shard, or skip and *count* what was skipped.
"""
from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

HANDLERS = ("raise", "warn")
RETRIED = "retried"  # the log line of a retried transient fault (not a skip)


class ShardError(Exception):
    """Any problem with a shard, its folder or its manifest; the message names the file or URL."""


class ShardFormatError(ShardError, ValueError):
    """A shard directory or file that cannot be streamed (bad header, size, dtype or manifest)."""


class MissingShardError(ShardError, FileNotFoundError):
    """A dataset folder, shard file or shard listed in the manifest that does not exist."""


class ShardReadError(ShardError, RuntimeError):
    """A shard (or one sample in it) could not be read or decoded; the message names the shard URL."""


class ErrorLog:
    """A pipeline's error handler.

    ``"raise"``: stop at the first error with a :class:`ShardReadError` naming the shard.
    ``"warn"``: skip the bad shard or sample, warn, and append one line to a log file, so that DataLoader
    worker processes count into the same place; ``count``, ``messages`` and ``samples_lost`` read it back.
    In both modes, transient faults that were retried are counted there too (``retries``, ``retry_seconds``).
    """

    def __init__(self, mode: str = "raise", known_urls: list[str] | None = None):
        if mode not in HANDLERS:
            raise ValueError(f"handler must be one of {HANDLERS}, got {mode!r}")
        self.mode = mode
        self.known_urls = list(known_urls or [])
        fd, name = tempfile.mkstemp(prefix="wds-errors-", suffix=".log")
        os.close(fd)
        self.path = Path(name)
        self._owner = os.getpid()

    def describe(self, exn: BaseException) -> str:
        """The error in one line, starting with the shard it came from when that can be found."""
        text = str(exn.args[0]) if exn.args else type(exn).__name__
        url = next((a for a in exn.args[1:] if isinstance(a, str) and a), None)
        if url is None:
            url = next((u for u in self.known_urls if u in text), None)
        detail = f"{type(exn).__name__}: {text}" if not isinstance(exn, ShardReadError) else text
        return detail if url is None or detail.startswith(url) else f"{url}: {detail}"

    def __call__(self, exn: BaseException) -> bool:
        """webdataset's handler protocol: True means skip and continue."""
        message = self.describe(exn)
        if self.mode == "raise":
            raise ShardReadError(message) from exn
        self.skip(message)
        return True

    def skip(self, message: str, lost: int | None = None) -> None:
        """Record one skip (``"warn"``): ``message`` names the shard; ``lost`` samples never delivered, if known."""
        if self.mode == "raise":
            raise ShardReadError(message)
        core = message.split(" @ ")[0]  # tarfile reports one broken stream twice: once per layer
        if core == getattr(self, "_last", None):
            return
        self._last = core
        with open(self.path, "a") as f:
            f.write(f"{'-' if lost is None else lost}\t" + message.replace("\n", " ") + "\n")
        warnings.warn(f"skipped: {message}", stacklevel=3)

    def retried(self, message: str, seconds: float = 0.0) -> None:
        """Record one transient fault that was retried (any mode): ``message`` names the URL; ``seconds`` it cost."""
        with open(self.path, "a") as f:
            f.write(f"{RETRIED}\t{seconds:.6f}\t" + message.replace("\n", " ") + "\n")

    def _raw_lines(self) -> list[str]:
        return self.path.read_text().splitlines() if self.path.exists() else []

    def _lines(self) -> list[tuple[int | None, str]]:
        parsed = []
        for line in self._raw_lines():
            lost, _, message = line.partition("\t")
            if lost != RETRIED:
                parsed.append((None if lost == "-" else int(lost), message))
        return parsed

    def _retry_lines(self) -> list[tuple[float, str]]:
        rows = [line.split("\t", 2) for line in self._raw_lines() if line.startswith(RETRIED + "\t")]
        return [(float(seconds), message) for _, seconds, message in rows]

    @property
    def retries(self) -> int:
        """Transient faults retried (HTTP 5xx/429, resets, cut bodies, timeouts), all processes."""
        return len(self._retry_lines())

    @property
    def retry_seconds(self) -> float:
        """Seconds the retries cost (waits and repeated requests), summed over all processes."""
        return sum(seconds for seconds, _ in self._retry_lines())

    @property
    def retry_messages(self) -> list[str]:
        """One line per retry, naming the URL and the fault."""
        return [message for _, message in self._retry_lines()]

    @property
    def messages(self) -> list[str]:
        """Every skip recorded so far, in any process."""
        return [message for _, message in self._lines()]

    @property
    def samples_lost(self) -> int:
        """Samples that truncated or damaged shards never delivered (from the manifest's counts), all processes.

        A skip whose loss is unknown (no manifest) adds nothing here; its message says so.
        """
        return sum(lost for lost, _ in self._lines() if lost is not None)

    @property
    def count(self) -> int:
        """How many errors were skipped."""
        return len(self.messages)

    def clear(self) -> None:
        """Forget the errors recorded so far."""
        self.path.write_text("")

    def __del__(self) -> None:
        if os.getpid() == getattr(self, "_owner", None):  # worker copies never delete the shared log
            Path(self.path).unlink(missing_ok=True)
