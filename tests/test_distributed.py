"""Chapter 06's machinery: two torchrun ranks on CPU, the uneven end of an epoch, shards on a loopback S3 API."""
from __future__ import annotations

import time
import warnings

import numpy as np
import pytest
from torch.utils.data import DataLoader

from course_lib import EpochPlan, ShardReadError, make_webdataset
from course_lib.distributed import (
    CachedOpener,
    S3Opener,
    brace_pattern,
    min_shard_bytes,
    ranks_disjoint,
    run_report,
    s3_server,
    scaling_rows,
    torchrun,
    upload_shards,
)
from course_lib.distributed.s3_shards import ObjectStoreError, s3_scheme
from course_lib.distributed.scaling import StoreTiming
from course_lib.loaders import manifest_counts, shard_urls

from conftest import require

pytestmark = pytest.mark.timeout(600)   # the torchrun launch fixture has its own hard limit (240 s)
S3_MODULES = ("moto.server", "s3fs", "boto3")   # the local S3 server and its clients
BATCH = 8             # small_data: 103 samples -> ranks of 52 and 51 samples, 7 batches each


@pytest.fixture(scope="module")
def launch(small_data, tmp_path_factory):
    """One torchrun launch, 2 CPU ranks x 2 workers: the even runs (the generous default collective timeout: a
    stall on a busy machine is not a hang), then the uneven one, whose 2 s timeout is the lesson."""
    out = tmp_path_factory.mktemp("ddp") / "result.json"
    return torchrun(small_data, out, ["mmap@0", "mmap@1", "mmap-drop_last@0", "wds@0", "uneven@0"], nproc=2,
                    timeout_s=240, batch_size=BATCH, num_workers=2, wds_shards=4, uneven_shards=3, timeout=2)


def test_every_sample_exactly_once_per_epoch_across_ranks(launch):
    for name, epoch in [("mmap", 0), ("mmap", 1), ("wds", 0)]:
        run = launch.run(name, epoch)
        assert run["world_size"] == 2 and all(n > 0 for n in run["samples"]), run
        assert run["exactly_once"] and run["dropped"] == run["repeated"] == 0, (name, run["coverage"])
    assert launch.run("mmap", 0)["total"] == 103 and launch.run("wds", 0)["total"] == 80


def test_drop_last_equalises_batch_counts_and_counts_the_cost(launch):
    plain, dropped = launch.run("mmap", 0), launch.run("mmap-drop_last", 0)
    assert plain["samples"] == [52, 51] and dropped["samples"] == [51, 51]
    assert dropped["equal_batches"] and dropped["dropped"] == 103 % 2 and dropped["repeated"] == 0


def test_without_drop_last_a_batch_boundary_can_split_the_ranks():
    """With 17 per batch the 52/51 split is 4 vs 3 batches: the plan says so before any process runs."""
    def units(rank, drop_last):
        return len(list(EpochPlan([103], rank=rank, world_size=2, drop_last=drop_last).worker_units(unit=17)))
    assert [units(r, False) for r in (0, 1)] == [4, 3]
    assert [units(r, True) for r in (0, 1)] == [3, 3]


def test_the_next_epoch_has_another_order(launch):
    e0, e1 = launch.run("mmap", 0), launch.run("mmap", 1)
    assert all(a != b for a, b in zip(e0["fingerprints"], e1["fingerprints"]))


def test_uneven_batches_exit_at_the_collective_timeout_naming_the_stuck_rank(launch):
    assert not launch.timed_out, f"the hard timeout had to stop it: {launch.summary()}"
    assert launch.returncode not in (0, None)
    assert launch.stuck_ranks == [0], launch.summary()      # 3 shards: rank 0 reads 2, rank 1 reads 1
    assert "rank 0 of 2: stuck in the gradient all-reduce" in launch.log.read_text()
    assert launch.ranks[1]["state"] in ("gathering", "finished run")
    assert launch.result["complete"] is False and launch.throughput(["mmap"]), "earlier runs were kept"


def test_run_report_counts_what_was_dropped_and_repeated():
    report = run_report("x", 0, [np.array([0, 1, 2]), np.array([2, 3])], [1, 1], total=6)
    assert (report["dropped"], report["repeated"], report["exactly_once"]) == (2, 1, False)
    assert not ranks_disjoint([np.array([0, 1, 2]), np.array([2, 3])])
    assert report["equal_batches"]


# -- S3 API on 127.0.0.1 --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def s3(small_data):
    for module in S3_MODULES:      # in CI a missing or broken one fails here with its import error
        require(module)
    with s3_server("course-test") as server:
        urls = upload_shards(server, shard_urls(small_data, "wds"))
        yield server, urls


def _ids(pipeline, **loader) -> np.ndarray:
    return np.concatenate([b["idx"].numpy() for b in DataLoader(pipeline, batch_size=None, **loader)])


def test_s3_round_trip_streams_every_sample_with_workers(s3, small_data):
    server, urls = s3
    assert brace_pattern(urls) == "s3://course-test/shard_{0000..0005}.tar"
    with s3_scheme(S3Opener(server.endpoint)):
        ids = _ids(make_webdataset(brace_pattern(urls), batch_size=8, expected_counts=manifest_counts(small_data)),
                   num_workers=2)
    assert sorted(ids.tolist()) == list(range(103))


def test_s3_missing_key_and_bucket_are_named(s3):
    server, urls = s3
    with s3_scheme(S3Opener(server.endpoint)):
        for bad, what in [(server.url("shard_9999.tar"), "no such key"),
                          ("s3://no-such-bucket/shard_0000.tar", "no such bucket")]:
            with pytest.raises(ShardReadError, match=what) as err:
                list(make_webdataset([bad]))
            assert bad in str(err.value)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pipeline = make_webdataset([urls[0], server.url("shard_9999.tar")], handler="warn", shardshuffle=False)
            got = sum(1 for _ in pipeline)
        assert got == 20 and pipeline.errors.count == 1 and "shard_9999.tar" in pipeline.errors.messages[0]


def test_s3_server_down_is_a_clear_error_fast():
    for module in S3_MODULES:
        require(module)
    with s3_server("course-down") as server:
        url = server.url("shard_0000.tar")
    opener = S3Opener(server.endpoint)      # the server is stopped now
    started = time.perf_counter()
    with pytest.raises(ObjectStoreError, match="cannot reach the server") as err:
        opener(url)
    assert url in str(err.value) and time.perf_counter() - started < 30   # a bound against hanging, not a timing


def test_shard_cache_serves_the_second_epoch_locally(s3, tmp_path):
    server, urls = s3
    cache = CachedOpener(S3Opener(server.endpoint), tmp_path / "cache")
    with s3_scheme(cache):
        first = _ids(make_webdataset(urls[:2], batch_size=10, shardshuffle=False, shuffle_buffer=0))
        second = _ids(make_webdataset(urls[:2], batch_size=10, shardshuffle=False, shuffle_buffer=0))
    assert (cache.misses, cache.hits) == (2, 2)
    assert np.array_equal(first, second) and cache.cached_bytes > 0
    assert not list((tmp_path / "cache").glob(".*.part")), "no partial copies left behind"


def test_scaling_rows_follow_from_the_measured_inputs():
    timing = StoreTiming("t", (0.01,), (100.0,), 1)
    assert min_shard_bytes(0.01, 100.0, 0.1) == pytest.approx(9 * 0.01 * 100e6)
    rows = scaling_rows([(1, 2), (8, 8)], num_workers=4, timing=timing, dataset_samples=1_000_000,
                        bytes_per_sample=100_000, shards=16, demand_samples_per_s=1000)
    small, big = rows
    assert small["readers"] == 8 and big["readers"] == 256 and big["idle readers now"] == 240
    assert all(r["shards to use"] % r["readers"] == 0 for r in rows)
    assert all(r["latency share"] <= 0.1 + 1e-9 for r in rows)
    assert big["streams per node needed"] == 8            # 8 GPUs x 1000/s x 0.1 MB = 800 MB/s at 100 MB/s a stream


def test_the_short_collective_timeout_applies_to_the_uneven_run_only(launch):
    from course_lib.distributed.ddp_stream import collective_timeout, parse_args

    args = parse_args(["--data-dir", "d", "--out", "o", "--runs", "mmap@0", "--timeout", "2"])
    assert collective_timeout(args, "uneven") == 2
    assert [collective_timeout(args, n) for n in ("mmap", "wds", "uneven-join", "uneven-drop_last")] == [300] * 4
    assert launch.result["timeout_s"] == 2 and launch.result["even_timeout_s"] == 300
