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


class _RunsOnLoad:
    """A payload whose unpickling calls a function (``operator.add``): what a hostile member could do instead."""

    def __reduce__(self):
        import operator

        return operator.add, (2, 3)


def test_ch05_webdataset_default_decoders_unpickle_pkl_pickle_pyd_and_pth_but_leave_pt_alone():
    """Chapter 05: "webdataset's default decoders unpickle `.pkl`, `.pickle` and `.pyd` members and pass `.pth`
    to `torch.load` with `weights_only=False` (all four run code the file carries); `.pt` is left as bytes"."""
    import io
    import pickle

    import torch
    import webdataset as wds

    assert installed("webdataset")
    raw = pickle.dumps(_RunsOnLoad())
    saved = io.BytesIO()
    torch.save(_RunsOnLoad(), saved)
    sample = {"__key__": "0", "a.pkl": raw, "a.pickle": raw, "a.pyd": raw, "a.pth": saved.getvalue(),
              "a.pt": saved.getvalue()}
    decoded = wds.autodecode.Decoder([])(sample)
    assert [decoded[k] for k in ("a.pkl", "a.pickle", "a.pyd", "a.pth")] == [5, 5, 5, 5]   # code ran on load
    assert decoded["a.pt"] == saved.getvalue()                                              # no handler: bytes


# --- chapter 06: beyond one machine (torchrun, object storage, training frameworks) --------------------------


# --- chapter 07: your own data -------------------------------------------------------------------------------
