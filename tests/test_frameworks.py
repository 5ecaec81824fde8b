"""Training frameworks as clients: Accelerate must never split a rank-split loader twice, and the recipe delivers
every sample once per epoch across 2 processes (with and without workers), resume included."""
from __future__ import annotations

import multiprocessing
import pickle
import types

import pytest
import torch
from accelerate.data_loader import IterableDatasetShard
from torch.utils.data import DataLoader

from course_lib.distributed.accelerate_loader import (
    RankLoader,
    batch_samples,
    to_device,
)
from course_lib.distributed.accelerate_runs import accelerate_torchrun, parse_run
from course_lib.loaders.mmap_shards import MmapShardDataset
from course_lib.loaders.resharding import (
    ReshardedError,
    allow_resharding,
    dataset_world_size,
    refuse_resharding,
    resharder,
)
from course_lib.loaders.webdataset_pipeline import make_webdataset

BATCH = 8
RUNS = ["mmap:plain:0", "mmap-per-sample:plain:0", "mmap-per-sample:prepare:0", "mmap-per-sample:prepare-nodispatch:0",
        "mmap:refused:0", "mmap:refused-nodispatch:2", "wds:refused:2", "mmap-per-sample:global:0",
        "mmap:recipe:0", "mmap:recipe:2", "wds:recipe:0", "wds:recipe:2", "mmap:resume:2", "wds:resume:0"]


@pytest.fixture(scope="module")
def runs(small_data, tmp_path_factory):
    """One torchrun launch of 2 CPU processes running every variant; the reports by run name."""
    out = tmp_path_factory.mktemp("accelerate") / "result.json"
    result = accelerate_torchrun(small_data, out, RUNS, nproc=2, timeout_s=150, batch_size=BATCH)
    assert result.returncode == 0 and result.ok, f"{result.summary()}\n{result.tail(30)}"
    return {run["run"]: run for run in result.result["runs"]}


# -- in one process: the check and the recipe's parts -----------------------------------------------------------
def test_a_second_split_by_accelerates_shard_wrapper_is_refused(small_data):
    ds = MmapShardDataset(small_data, batch_size=None, rank=0, world_size=2)
    wrapped = IterableDatasetShard(ds, batch_size=4, num_processes=2, process_index=0)
    with pytest.raises(ReshardedError, match="IterableDatasetShard splits them again.*RankLoader"):
        next(iter(wrapped))
    with pytest.raises(ReshardedError, match="ShardPipeline"):
        next(iter(IterableDatasetShard(make_webdataset(small_data, rank=1, world_size=2), batch_size=4,
                                       num_processes=2)))


def test_a_global_view_may_be_split_and_the_check_can_be_switched_off(small_data):
    one = MmapShardDataset(small_data, batch_size=None, rank=0, world_size=1)
    got = [s["idx"] for s in IterableDatasetShard(one, batch_size=4, num_processes=2, process_index=0)]
    assert len(got) == 52                               # ceil(103 / 8) batches of 8, 4 of each for process 0
    off = allow_resharding(MmapShardDataset(small_data, batch_size=None, rank=0, world_size=2))
    assert len(list(IterableDatasetShard(off, batch_size=4, num_processes=2, process_index=0))) == 28
    assert resharder() is None
    refuse_resharding(MmapShardDataset(small_data, rank=0, world_size=2))   # no wrapper on the stack: fine


def test_the_split_it_checks_is_the_one_the_dataset_makes(small_data, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")                 # torchrun's, which webdataset's split_by_node reads
    assert dataset_world_size(make_webdataset(small_data)) == 2
    assert dataset_world_size(make_webdataset(small_data, rank=0, world_size=1)) == 1
    assert dataset_world_size(make_webdataset(small_data, resampled=True)) == 1    # draws shards, never splits
    monkeypatch.delenv("WORLD_SIZE")
    assert dataset_world_size(make_webdataset(small_data)) == 1


def test_the_check_reaches_dataloader_workers_of_every_start_method(small_data):
    ds = MmapShardDataset(small_data, batch_size=None, rank=0, world_size=2)
    wrapped = IterableDatasetShard(ds, batch_size=4, num_processes=2, process_index=1)
    for method in ("fork", "spawn"):
        loader = DataLoader(wrapped, batch_size=4, num_workers=1,
                            multiprocessing_context=multiprocessing.get_context(method))
        with pytest.raises(ReshardedError, match="splits them again"):
            next(iter(loader))


def _iterate_in_a_forked_worker(self):
    return iter(list(DataLoader(self.dataset, batch_size=None, num_workers=1, multiprocessing_context="fork")))


def test_a_worker_forked_under_the_dispatcher_finds_it_on_the_inherited_stack(small_data):
    """A stand-in DataLoaderDispatcher (accelerate's module and class name; the real one needs a process group)
    whose iteration starts a forked worker: the worker's dataset sees the wrapper in the stack it inherited."""
    code = _iterate_in_a_forked_worker.__code__.replace(co_qualname="DataLoaderDispatcher.__iter__")
    method = types.FunctionType(code, {**globals(), "__name__": "accelerate.data_loader"})
    stand_in = type("DataLoaderDispatcher", (), {"__iter__": method})()
    stand_in.dataset = MmapShardDataset(small_data, batch_size=BATCH, rank=0, world_size=2)
    with pytest.raises(ReshardedError, match="DataLoaderDispatcher"):
        iter(stand_in)


def test_rank_loader_resumes_exactly_where_its_state_stopped(small_data):
    def make_rank_loader():
        return RankLoader(MmapShardDataset(small_data, batch_size=BATCH, seed=3), num_workers=0)

    first = make_rank_loader()
    first.set_epoch(1)
    seen = []
    for n, batch in enumerate(first, 1):
        seen += batch["idx"].tolist()
        if n == 5:
            break
    state = pickle.loads(pickle.dumps(first.state_dict()))
    assert state["world_size"] == 1 and state["ranks"][0]["samples_seen"] == 5 * BATCH
    second = make_rank_loader()
    second.load_state_dict(state)
    second.set_epoch(1)                                   # the loaded epoch continues
    seen += [i for b in second for i in b["idx"].tolist()]
    assert sorted(seen) == list(range(103))
    whole = make_rank_loader()
    whole.set_epoch(1)
    assert seen == [i for b in whole for i in b["idx"].tolist()]     # the same order as an unbroken epoch
    second.set_epoch(2)                                   # the next epoch starts from its beginning
    assert sum(batch_samples(b) for b in second) == 103
    with pytest.raises(ValueError, match="2 processes, this run has 1"):
        make_rank_loader().load_state_dict({**state, "world_size": 2})


def test_rank_loader_moves_every_tensor_and_counts_samples():
    batch = {"x": torch.zeros(3, 2), "meta": [torch.ones(3)], "name": "a"}
    moved = to_device(batch, torch.device("cpu"))
    assert moved["name"] == "a" and moved["meta"][0].shape == (3,)
    assert batch_samples({"idx": torch.arange(5), "x": torch.zeros(2)}) == 5 and batch_samples(torch.tensor(1)) == 1
    with pytest.raises(ValueError, match="LOADER:VARIANT:WORKERS"):
        parse_run("mmap:nonsense:0")


# -- 2 processes under torchrun and Accelerate ----------------------------------------------------------------
def test_the_naive_pattern_loses_samples_silently_when_unchecked(runs):
    assert runs["mmap-per-sample:plain:0"]["exactly_once"]
    dispatched = runs["mmap-per-sample:prepare:0"]
    assert dispatched["dropped"] > 103 // 3 and "error" not in dispatched
    assert runs["mmap-per-sample:prepare-nodispatch:0"]["dropped"] > 103 // 3


@pytest.mark.parametrize("name", ["mmap:refused:0", "mmap:refused-nodispatch:2", "wds:refused:2"])
def test_the_naive_pattern_fails_at_the_first_batch_naming_the_fix(runs, name):
    assert runs[name]["error"].startswith("ReshardedError:")
    assert "RankLoader" in runs[name]["error"] and "accelerator.prepare()" in runs[name]["error"]


def test_a_global_view_under_accelerate_is_complete_up_to_padding(runs):
    run = runs["mmap-per-sample:global:0"]
    assert run["dropped"] == 0 and run["repeated"] < 2       # dispatch pads the last batch to the processes


@pytest.mark.parametrize("name", ["mmap:recipe:0", "mmap:recipe:2", "wds:recipe:0", "wds:recipe:2",
                                  "mmap:resume:2", "wds:resume:0"])
def test_the_recipe_delivers_every_sample_exactly_once(runs, name):
    run = runs[name]
    assert "error" not in run, run.get("error")
    assert run["exactly_once"], (run["dropped"], run["repeated"])
    assert all(n > 0 for n in run["samples"])               # each process read its own part


def test_the_recipe_keeps_each_ranks_own_stream(runs):
    plain = runs["mmap:plain:0"]
    for name in ("mmap:recipe:0", "mmap:recipe:2"):       # the same ids, in the same order, on the same rank
        assert runs[name]["fingerprints"] == plain["fingerprints"] and runs[name]["samples"] == [52, 51]
