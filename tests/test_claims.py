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

def test_ch06_ddp_join_divides_by_the_initial_world_size_unless_told_not_to(tmp_path):
    """Chapter 06, the fixes: "inside `Join`, gradients are still divided by the initial world size
    (`divide_by_initial_world_size=True`, the default) ... `Join([model], divide_by_initial_world_size=False)`
    divides by the ranks still training"."""
    import torch
    import torch.distributed as dist
    from torch.distributed.algorithms.join import Join
    from torch.nn.parallel import DistributedDataParallel as DDP

    assert installed("torch").startswith("2.")
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        model = DDP(torch.nn.Linear(2, 1))
        with Join([model]):
            default = model._divide_by_initial_world_size
        with Join([model], divide_by_initial_world_size=False):
            told = model._divide_by_initial_world_size
    finally:
        dist.destroy_process_group()
    assert (default, told) == (True, False)


_LITDATA_DROP_LAST = """
import json, sys
from unittest import mock
import litdata
import litdata.streaming.dataset as streaming
from litdata.utilities.env import _DistributedEnv

def item(i):
    return {"i": i}

if __name__ == "__main__":
    out = sys.argv[1]
    litdata.optimize(fn=item, inputs=list(range(8)), output_dir=out, chunk_size=4, num_workers=1)
    two_ranks = _DistributedEnv(world_size=2, global_rank=0, num_nodes=1)
    with mock.patch.object(streaming._DistributedEnv, "detect", return_value=two_ranks):
        got = {str(d): streaming.StreamingDataset(out, drop_last=d).drop_last for d in (None, False, True)}
    print(json.dumps(got))
"""


def test_ch06_litdata_drop_last_is_a_distributed_default_that_can_be_turned_off(tmp_path):
    """Chapter 06, the peer table: "litdata: `drop_last` defaults to on in a distributed run; `drop_last=False`
    turns it off (with a warning)". Run in a subprocess: litdata switches the start method to spawn."""
    import json
    import subprocess
    import sys

    assert installed("litdata")
    script = tmp_path / "claim.py"
    script.write_text(_LITDATA_DROP_LAST)
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "optimized")], capture_output=True,
                          text=True, timeout=300, cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"None": True, "False": False, "True": True}



# --- chapter 07: your own data -------------------------------------------------------------------------------
