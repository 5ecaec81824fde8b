"""What the chapters say about third-party libraries, asserted against the installed versions.

Each test names the chapter that makes the statement: an upgrade that changes the behaviour fails here and says
which sentence to revisit. Sections are per chapter (each chapter's owner adds below its own heading).
"""
from __future__ import annotations

import importlib.metadata
import time

import pytest


def installed(package: str) -> str:
    """The installed version of ``package`` (the statement below holds for it)."""
    return importlib.metadata.version(package)


# --- chapter 02: memory-mapped shard streaming ---------------------------------------------------------------

class _NumpyDraws:
    """An IterableDataset-like source: each worker (or the main process) yields 3 draws of numpy's global generator."""

    def __iter__(self):
        import numpy as np
        from torch.utils.data import get_worker_info

        info = get_worker_info()
        return iter([(info.id if info else -1, int(np.random.randint(1 << 30))) for _ in range(3)])


def _draws(num_workers: int, torch_seed: int, numpy_seed: int | None = None) -> list[tuple[int, int]]:
    import numpy as np
    import torch
    from torch.utils.data import DataLoader, IterableDataset

    dataset = type("Draws", (_NumpyDraws, IterableDataset), {})()
    torch.manual_seed(torch_seed)
    if numpy_seed is not None:
        np.random.seed(numpy_seed)
    return [(int(w), int(v)) for w, v in DataLoader(dataset, batch_size=None, num_workers=num_workers)]


def test_ch02_torch_reseeds_numpy_in_each_worker_from_its_own_seed_but_not_in_the_main_process():
    """Chapter 02, section 3: "In the main process (`num_workers=0`) nothing reseeds it [numpy's global generator]
    ... In DataLoader workers torch (since 1.9) reseeds it per worker, from a base seed drawn from torch's own
    generator for every new iterator: the order changes every run unless you call `torch.manual_seed`." """
    import inspect

    from torch.utils.data._utils import worker

    assert "np.random.seed(" in inspect.getsource(worker._worker_loop), installed("torch")
    one, again, other = _draws(2, torch_seed=0), _draws(2, torch_seed=0), _draws(2, torch_seed=1)
    by_worker = {w: [v for x, v in one if x == w] for w in (0, 1)}
    assert by_worker[0] != by_worker[1]          # each worker reseeded differently
    assert one == again and one != other         # from torch's seed: reproducible only with torch.manual_seed
    main_a, main_b = _draws(0, torch_seed=0, numpy_seed=1), _draws(0, torch_seed=0, numpy_seed=2)
    assert main_a != main_b                      # same torch seed, numpy's state decides: not reseeded


# --- chapter 03: WebDataset tar shards -----------------------------------------------------------------------
def test_ch03_gopen_has_no_s3_or_fsspec_handler_and_pipe_works(tmp_path):
    """Chapter 03, section 5: "`s3://` is not in it and there is no fsspec fallback, so such a URL fails. What
    works: a `pipe:` URL whose command writes the shard to stdout" (webdataset's `gopen` scheme table)."""
    import importlib
    import inspect

    import webdataset as wds

    gopen_module = importlib.import_module("webdataset.gopen")   # `webdataset.gopen` the attribute is the function
    assert installed("webdataset")
    schemes = set(gopen_module.gopen_schemes) - {"__default__"}
    assert "s3" not in schemes and "pipe" in schemes and {"http", "https"} <= schemes
    assert "fsspec" not in inspect.getsource(gopen_module)
    with pytest.raises(ValueError, match="no gopen handler"):
        wds.gopen("s3://my-bucket/data/000000.tar")
    (tmp_path / "shard.bin").write_bytes(b"abc")
    with wds.gopen(f"pipe:cat {tmp_path / 'shard.bin'}") as stream:
        assert stream.read() == b"abc"


def test_ch03_stock_webdataset_raises_under_several_ranks_without_a_nodesplitter(tmp_path, monkeypatch):
    """Chapter 03, section 4: "the default node splitter of `wds.WebDataset` is `single_node_only`: when the
    environment says there are several ranks (`RANK`/`WORLD_SIZE`) ... it *raises* instead of splitting"."""
    import webdataset as wds

    with wds.TarWriter(str(tmp_path / "s.tar")) as sink:
        sink.write({"__key__": "0", "cls": 1})
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="nodesplitter"):
        list(wds.WebDataset(str(tmp_path / "s.tar"), shardshuffle=False))
    assert len(list(wds.WebDataset(str(tmp_path / "s.tar"), shardshuffle=False, nodesplitter=wds.split_by_node))) == 1


# --- chapter 04: reproducible epochs and resumption ---------------------------------------------------------
def test_ch04_distributed_sampler_seeds_with_seed_plus_epoch():
    """Chapter 04, section 3: "`DistributedSampler` draws its permutation from `seed + epoch` ... a run with
    `seed + 1` plays this run's epoch 1 as its epoch 0"."""
    from torch.utils.data import DistributedSampler

    assert installed("torch")
    a = DistributedSampler(range(1000), num_replicas=2, rank=0, shuffle=True, seed=42)
    a.set_epoch(1)
    b = DistributedSampler(range(1000), num_replicas=2, rank=0, shuffle=True, seed=43)
    assert list(a) == list(b)


def test_ch04_seed_sequence_drops_trailing_zeros():
    """Chapter 04, exercise 1: "a `SeedSequence` drops trailing zeros, so `default_rng([seed, 0])` *is*
    `default_rng(seed)`"."""
    import numpy as np

    assert installed("numpy")
    assert np.array_equal(np.random.default_rng([42, 0]).random(8), np.random.default_rng(42).random(8))
    assert not np.array_equal(np.random.default_rng([42, 1]).random(8), np.random.default_rng(42).random(8))


def test_ch04_torch_reseeds_numpys_global_generator_in_each_worker():
    """Chapter 04, section 4: "in every worker it reseeds Python's `random`, torch's generator and — since torch
    1.9 — numpy's global generator from the DataLoader's base seed and the worker id"."""
    import inspect

    from torch.utils.data._utils import worker

    source = inspect.getsource(worker._worker_loop)
    assert "random.seed(seed)" in source and "torch.manual_seed(seed)" in source and "np.random.seed(" in source


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


def test_ch05b_a_plain_dataloader_joins_its_workers_when_the_loop_ends_a_stateful_one_keeps_them():
    """Chapter 05b: "ending a plain `DataLoader`'s loop joins its workers there (each finishes the batch it is on);
    torchdata's `StatefulDataLoader` keeps its iterator (for `state_dict()`), so its workers outlive the loop"."""
    import multiprocessing

    from torch.utils.data import DataLoader
    from torchdata.stateful_dataloader import StatefulDataLoader

    assert installed("torchdata")
    for make, alive in ((DataLoader, False), (StatefulDataLoader, True)):
        loader = make(range(64), batch_size=4, num_workers=2)
        for i, _ in enumerate(loader):
            if i == 2:
                break
        assert (getattr(loader, "_iterator", None) is not None) == alive, make.__name__
        assert bool(multiprocessing.active_children()) == alive, make.__name__
        if alive:
            loader._iterator._shutdown_workers()
        assert not multiprocessing.active_children()


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


def test_ch06b_urllib3_retries_a_503_at_once_then_backs_off_and_obeys_retry_after():
    """Chapter 06b, exercise "urllib3's wait before each retry": for a 503, urllib3 (the HTTP reader's ``Retry``)
    sends the first retry at once, then waits ``backoff * 2 ** (n - 1)`` capped at ``backoff_max``; a
    ``Retry-After`` header wins, capped at ``retry_after_max``."""
    import urllib3

    from course_lib.loaders.retry_policy import RetryPolicy

    policy = RetryPolicy(attempts=6, backoff=0.1, backoff_max=0.5, retry_after_max=3)
    plain = urllib3.HTTPResponse(status=503)
    retry, waits = policy.urllib3_retry(), []
    for _ in range(policy.attempts - 1):
        retry = retry.increment(method="GET", url="/s.tar", response=plain)
        assert retry.get_retry_after(plain) is None
        waits.append(retry.get_backoff_time())
    assert waits == [0, 0.2, 0.4, 0.5, 0.5], installed("urllib3")
    for header, want in (("2", 2), ("30", 3)):
        told = urllib3.HTTPResponse(status=503, headers={"Retry-After": header})
        assert policy.urllib3_retry().increment(method="GET", url="/s.tar", response=told).get_retry_after(told) == want


def test_ch06b_botocore_standard_mode_treats_slowdown_as_throttling_with_a_random_doubling_wait():
    """Chapter 06b, the fault drill: "over the S3 API botocore waits on its own schedule: SlowDown counts as
    throttling, and each wait is a random share of a bound that doubles per retry"."""
    from types import SimpleNamespace

    from botocore.retries import standard

    assert "SlowDown" in standard.ThrottledRetryableChecker._THROTTLED_ERROR_CODES, installed("botocore")
    throttled = SimpleNamespace(is_throttling_error_from_context=lambda context: True)
    for share in (0.25, 1.0):
        backoff = standard.ExponentialBackoff(random=lambda share=share: share, throttling_detector=throttled)
        bounds = [backoff.delay_amount(SimpleNamespace(attempt_number=n, http_response=None)) for n in (1, 2, 3)]
        assert bounds == [share * 1, share * 2, share * 4], installed("botocore")



from torch.utils.data import IterableDataset  # noqa: E402  (the workers below pickle a module-level dataset)


class _SlowCount(IterableDataset):
    """0, 1, 2, ... slowly, so a worker is still busy when it is killed (module level: workers pickle it)."""

    def __iter__(self):
        import time

        for i in range(10_000):
            time.sleep(0.01)
            yield i


def test_ch06b_torch_names_a_killed_worker_by_pid_and_does_not_restart_it():
    """Chapter 06b, section 3: "The OOM killer ends a worker with SIGKILL. torch raises an error naming a pid
    (not which worker) and does not start the worker again"."""
    import os
    import signal

    from torch.utils.data import DataLoader

    iterator = iter(DataLoader(_SlowCount(), batch_size=None, num_workers=2))
    next(iterator)
    victim = iterator._workers[1]
    os.kill(victim.pid, signal.SIGKILL)
    with pytest.raises(RuntimeError, match=rf"DataLoader worker \(pid\(s\) {victim.pid}\)") as caught:
        for _ in iterator:
            pass
    assert "worker 1" not in str(caught.value), installed("torch")
    assert iterator._workers[1] is victim and not victim.is_alive()        # the same, dead process: no restart
    iterator._shutdown_workers()



# --- chapter 07: your own data -------------------------------------------------------------------------------


# --- the course in JupyterLab (README's "Run -> Run All Cells"; tests/test_browser.py) ------------------------

def test_lab_ipykernel_aborts_only_the_requests_queued_when_a_cell_fails(tmp_path, monkeypatch):
    """tests/test_browser.py: "Run All sends every cell's request at once; ipykernel aborts only the requests already
    queued when the error is raised: one relayed later runs" (its stop_on_error_timeout no longer widens that)."""
    from jupyter_client.manager import start_new_kernel

    assert installed("ipykernel")
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    km, kc = start_new_kernel(kernel_name="python3", startup_timeout=60)
    try:
        def status(msg_id: str) -> str:
            while True:
                reply = kc.get_shell_msg(timeout=30)
                if reply["parent_header"]["msg_id"] == msg_id:
                    return reply["content"]["status"]

        failing = kc.execute("import time\ntime.sleep(1)\nraise ValueError('planted')", stop_on_error=True)
        queued = kc.execute("queued = 1", stop_on_error=True)           # in the queue before the error
        assert [status(failing), status(queued)] == ["error", "aborted"]
        assert status(kc.execute("raise ValueError('planted')", stop_on_error=True)) == "error"
        time.sleep(0.5)                                                  # a relay's delay, after the reply
        late = kc.execute("late = 1", stop_on_error=True)                # arrives after the error: runs
        assert status(late) == "ok"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
