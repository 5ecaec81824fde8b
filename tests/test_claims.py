"""What the chapters say about third-party libraries, asserted against the installed versions.

Each test names the chapter that makes the statement: an upgrade that changes the behaviour fails here and says
which sentence to revisit. Sections are per chapter (each chapter's owner adds below its own heading).
"""
from __future__ import annotations

import importlib.metadata

import pytest  # noqa: F401  (used by the chapters' sections)


def installed(package: str) -> str:
    """The installed version of ``package`` (the statement below holds for it)."""
    return importlib.metadata.version(package)


# --- chapter 02: memory-mapped shard streaming ---------------------------------------------------------------


# --- chapter 03: WebDataset tar shards -----------------------------------------------------------------------


# --- chapter 04: reproducible epochs and resumption ---------------------------------------------------------


# --- chapter 05: the training regime side by side ------------------------------------------------------------


# --- chapter 06: beyond one machine (torchrun, object storage, training frameworks) --------------------------


# --- chapter 07: your own data -------------------------------------------------------------------------------
