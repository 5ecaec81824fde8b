"""Transient faults cost time, not samples: HTTP and S3 reads retried with bounded backoff and resumed where they
broke, through the fault-injecting server (503s, some with Retry-After; bodies cut mid-way); permanent errors
fail at once naming the URL; every retry counted."""
from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from torch.utils.data import DataLoader

from course_lib.distributed.fault_drill import fault_cost, fault_epoch
from course_lib.distributed.s3_faults import s3_faulty_server
from course_lib.distributed.s3_shards import S3Endpoint, S3Opener, s3_scheme, upload_shards
from course_lib.loaders.faulty_http import Faults, serve_faulty
from course_lib.loaders.resuming_stream import ResumingStream
from course_lib.loaders.retry_policy import RetryPolicy, is_transient
from course_lib.loaders.shard_errors import ShardReadError
from course_lib.loaders.shard_index import manifest_shards
from course_lib.loaders.webdataset_pipeline import make_webdataset
from course_lib.measure.shuffle_metrics import arrival_order

ALL = list(range(103))                           # conftest's SMALL data: 6 shards
FAST = RetryPolicy(backoff=0.01, backoff_max=0.05)
ONLY_503 = Faults(fail_share=0.3, cut_share=0.0, retry_after_share=0.0, seed=3)
ONLY_CUTS = Faults(fail_share=0.0, cut_share=0.5, seed=4)


def shard_files(data: Path) -> list[Path]:
    return sorted((data / "wds").glob("shard_*.tar"))


def epoch(urls, data, num_workers=0, retry=FAST):
    """(ids in arrival order, the pipeline) of one epoch over ``urls``."""
    pipeline = make_webdataset(urls, shuffle_buffer=0, expected_counts=manifest_shards(data), retry=retry)
    return arrival_order(DataLoader(pipeline, batch_size=None, num_workers=num_workers)).tolist(), pipeline


def resumed_at(pipeline) -> list[int]:
    """The bytes at which the pipeline's streams resumed, from its retry messages."""
    found = (re.search(r"at byte ([\d,]+), resumed", m) for m in pipeline.errors.retry_messages)
    return [int(f.group(1).replace(",", "")) for f in found if f]


# -- the resuming stream, on plain bytes -------------------------------------------------------------------
class Flaky(io.RawIOBase):
    """``data`` from ``start``; raises ``error`` once ``fail_after`` bytes have been read (never, if None)."""

    def __init__(self, data: bytes, start: int, fail_after: int | None, error: Exception):
        self.data, self.pos, self.error = data, start, error
        self.fail_at = None if fail_after is None else start + fail_after

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        if self.fail_at is not None and self.pos >= self.fail_at:
            raise self.error
        n = min(len(b), len(self.data) - self.pos, (self.fail_at or len(self.data)) - self.pos)
        b[:n] = self.data[self.pos:self.pos + n]
        self.pos += n
        return n


def test_resuming_stream_resumes_at_the_byte_reached_and_counts():
    data = bytes(range(256)) * 40
    opened, retries = [], []

    def open_at(pos):
        opened.append(pos)
        return Flaky(data, pos, 3000 if len(opened) < 4 else None, ConnectionResetError("reset by peer"))

    stream = io.BufferedReader(ResumingStream("mem://s.tar", open_at, FAST, lambda m, s: retries.append(m)), 1000)
    assert stream.read() == data                       # nothing repeated, nothing lost
    assert opened == [0, 3000, 6000, 9000] and len(retries) == 3
    assert "mem://s.tar: ConnectionResetError at byte 3,000" in retries[0]


def test_resuming_stream_gives_up_after_the_attempts_and_never_retries_a_permanent_error():
    always = ResumingStream("mem://s.tar", lambda pos: Flaky(b"x" * 100, pos, 0, TimeoutError("slow")),
                            RetryPolicy(attempts=3, backoff=0.001))
    with pytest.raises(ShardReadError, match=r"mem://s.tar: gave up at byte 0 after 3 attempts"):
        always.read(10)
    assert always.retries == 2
    permanent = ResumingStream("mem://s.tar", lambda pos: Flaky(b"x" * 100, pos, 0, ValueError("bad")), FAST)
    with pytest.raises(ValueError, match="bad"):
        permanent.read(10)
    assert permanent.retries == 0
    assert is_transient(RuntimeError("wrapped")) is False
    try:
        raise RuntimeError("wrapped") from ConnectionResetError()
    except RuntimeError as e:
        assert is_transient(e)


# -- HTTP ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("faults", [ONLY_503, ONLY_CUTS], ids=["503s", "cut bodies"])
@pytest.mark.parametrize("workers", [0, 2])
def test_http_epoch_exactly_once_through_transient_faults(small_data, faults, workers):
    with serve_faulty(small_data / "wds", faults) as server:
        got, pipeline = epoch([server.url(f.name) for f in shard_files(small_data)], small_data, workers)
        injected, ranged = server.injected, server.served["Range answered"]
    assert sorted(got) == ALL                                        # exactly once
    assert injected > 0 and pipeline.errors.retries == injected      # each fault retried once, counted in every worker
    assert pipeline.errors.count == 0 and pipeline.errors.samples_lost == 0
    if faults is ONLY_CUTS:                                          # resumed mid-shard with a Range request
        assert ranged > 0 and max(resumed_at(pipeline)) > 0


def test_http_resumes_by_rereading_when_the_server_ignores_range(small_data):
    with serve_faulty(small_data / "wds", Faults(fail_share=0.0, cut_share=0.5, ranges=False, seed=8)) as server:
        got, pipeline = epoch([server.url(f.name) for f in shard_files(small_data)], small_data)
        injected, ranged = server.injected, server.served["Range answered"]
    assert sorted(got) == ALL and injected > 0 and pipeline.errors.retries == injected
    assert ranged == 0 and max(resumed_at(pipeline)) > 0     # whole bodies re-read, the bytes before the cut skipped


@pytest.mark.parametrize("how", ["reset", "stall"])
def test_http_connection_resets_and_read_timeouts_are_resumed(small_data, how):
    faults = Faults(fail_share=0.0, cut_share=0.4, reset_share=float(how == "reset"),
                    stall_share=float(how == "stall"), stall_seconds=1.0, seed=7)
    quick = RetryPolicy(backoff=0.01, read_timeout=0.3)             # a stall of 1 s is a read timeout here
    with serve_faulty(small_data / "wds", faults) as server:
        got, pipeline = epoch([server.url(f.name) for f in shard_files(small_data)], small_data, retry=quick)
        injected = server.faults[how]
    assert sorted(got) == ALL and injected > 0 and pipeline.errors.retries == injected
    cause = {"reset": "Connection reset|Connection broken", "stall": "ReadTimeoutError"}[how]
    assert all(re.search(cause, m) for m in pipeline.errors.retry_messages)


def test_http_retry_after_is_honoured_and_bounded(small_data):
    faults = Faults(fail_share=0.5, cut_share=0.0, retry_after_share=1.0, retry_after=1, seed=1)
    with serve_faulty(small_data / "wds", faults) as server:
        got, pipeline = epoch([server.url(f.name) for f in shard_files(small_data)[:2]], small_data)
        waited = server.faults["503 Retry-After"]
    assert waited > 0 and pipeline.errors.retries == waited
    assert pipeline.errors.retry_seconds >= waited * faults.retry_after    # a lower bound: sleeps are never shorter
    assert RetryPolicy().urllib3_retry().retry_after_max == RetryPolicy().retry_after_max


def test_http_permanent_404_fails_at_once_naming_the_url(small_data):
    with serve_faulty(small_data / "wds", Faults(fail_share=0.0, cut_share=0.0)) as server:
        pipeline = make_webdataset([server.url("shard_0099.tar")], retry=FAST)
        with pytest.raises(ShardReadError, match=r"127\.0\.0\.1:\d+/shard_0099\.tar: HTTP 404"):
            list(pipeline)
        assert server.requests == 1 and pipeline.errors.retries == 0


def test_http_gives_up_after_the_attempts_naming_the_url(small_data):
    always = Faults(fail_share=1.0, cut_share=0.0, retry_after_share=0.0, max_in_a_row=100)
    with serve_faulty(small_data / "wds", always) as server:
        url = server.url("shard_0000.tar")
        with pytest.raises(ShardReadError, match=f"{url}: gave up after 3 attempts .*503"):
            list(make_webdataset([url], retry=RetryPolicy(attempts=3, backoff=0.01)))
        assert server.requests == 3


# -- S3 API (moto behind the fault proxy) --------------------------------------------------------------------
@pytest.fixture(scope="module")
def faulty_s3(small_data):
    with s3_faulty_server("course-faults", Faults(fail_share=0.3, cut_share=0.3, retry_after_share=0.0, seed=5)) as s3:
        yield s3, upload_shards(s3.direct, shard_files(small_data))


@pytest.mark.parametrize("workers", [2])        # 0 workers: test_fault_epoch_reports_... (botocore's waits are slow)
def test_s3_epoch_exactly_once_through_503s_and_cut_bodies(faulty_s3, small_data, workers):
    s3, urls = faulty_s3
    before = s3.proxy.injected
    with s3_scheme(S3Opener(s3.faulty.endpoint)):
        got, pipeline = epoch(urls, small_data, workers)
    injected = s3.proxy.injected - before
    assert sorted(got) == ALL
    assert s3.proxy.faults["cut"] > 0 and injected > 0 and pipeline.errors.retries == injected
    assert any("retried by botocore" in m for m in pipeline.errors.retry_messages)
    assert any("resumed there" in m for m in pipeline.errors.retry_messages)


def test_s3_missing_key_fails_at_once_naming_the_url(faulty_s3):
    s3, urls = faulty_s3
    missing = urls[0].replace("shard_0000", "shard_0099")
    requests, injected = s3.proxy.requests, s3.proxy.injected
    with s3_scheme(S3Opener(s3.faulty.endpoint)):
        with pytest.raises(ShardReadError, match="s3://course-faults/shard_0099.tar: no such key"):
            list(make_webdataset([missing], retry=FAST))
    answered = (s3.proxy.requests - requests) - (s3.proxy.injected - injected)
    assert answered <= 2        # s3fs's HEAD and its listing fallback, each answered once: a 404 is not retried


def test_botocore_retry_policy_as_configured_and_as_it_behaves(faulty_s3):
    """The installed botocore's ``standard`` mode: ``total_max_attempts`` tries in all, 503 SlowDown retried
    (its ``max_attempts`` counts retries, one try more: what this policy first got wrong). An upgrade that changed
    how either is read fails here, on the config and on the requests the server saw."""
    s3, urls = faulty_s3
    endpoint = S3Endpoint(s3.faulty.endpoint.endpoint_url, "k", "s", retry=RetryPolicy(attempts=3))
    fs = endpoint.filesystem()
    fs.connect()
    config = fs.s3.meta.config
    assert config.retries == {"total_max_attempts": 3, "mode": "standard"} and config.connect_timeout == 2.0
    assert fs.retries == 1                                          # s3fs's own (uncounted) loop is off
    key = urls[0][len("s3://"):].split("/", 1)
    with serve_faulty(faults=Faults(fail_share=1.0, cut_share=0.0, retry_after_share=0.0, max_in_a_row=2),
                      upstream=s3.direct.endpoint.endpoint_url) as proxy:
        fs = S3Endpoint(proxy.base_url, "k", "s", retry=RetryPolicy(attempts=3)).filesystem()
        reply = fs.call_s3("get_object", Bucket=key[0], Key=key[1])
        assert reply["ResponseMetadata"]["RetryAttempts"] == 2 and proxy.requests == 3
    with serve_faulty(faults=Faults(fail_share=1.0, cut_share=0.0, retry_after_share=0.0, max_in_a_row=3),
                      upstream=s3.direct.endpoint.endpoint_url) as proxy:
        fs = S3Endpoint(proxy.base_url, "k", "s", retry=RetryPolicy(attempts=3)).filesystem()
        with pytest.raises(Exception, match="SlowDown|reduce your request rate|503"):
            fs.call_s3("get_object", Bucket=key[0], Key=key[1])
        assert proxy.requests == 3


# -- the chapter's one call ----------------------------------------------------------------------------------
@pytest.mark.parametrize("via", ["http", "s3"])
def test_fault_epoch_reports_samples_exactly_once_retries_and_time(small_data, via):
    drill = fault_epoch(small_data, via, Faults(seed=2), retry=FAST)
    assert drill.samples == len(ALL) and drill.exactly_once and drill.missing == drill.repeated == 0
    assert drill.retries == sum(drill.faults.values()) > 0 and drill.seconds > 0
    assert drill.row()["via"] == via
    with pytest.raises(ValueError, match="via must be one of"):
        fault_epoch(small_data, "ftp")


def test_fault_cost_compares_clean_and_faulty_epochs(small_data):
    cost = fault_cost(small_data, "http", Faults(retry_after_share=0.0), repeat=1)
    assert cost["exactly once"] and cost["retries"] > 0 and cost["clean s"] > 0 and cost["faulty s"] > 0


def test_block_path_through_faults(small_data):
    from course_lib.loaders.webdataset_pipeline import make_block_webdataset

    with serve_faulty(small_data / "wdsb", Faults(seed=6)) as server:
        urls = [server.url(f.name) for f in sorted((small_data / "wdsb").glob("shard_*.tar"))]
        pipeline = make_block_webdataset(urls, batch_size=8, window_blocks=2, retry=FAST)
        got = arrival_order(pipeline).tolist()
        injected = server.injected
    assert sorted(got) == ALL and injected > 0 and pipeline.errors.retries == injected


def test_the_shard_cache_passes_retries_through_and_keeps_complete_copies_only(faulty_s3, small_data, tmp_path):
    from course_lib.distributed.shard_cache import CachedOpener

    s3, urls = faulty_s3
    before = s3.proxy.injected
    cache = CachedOpener(S3Opener(s3.faulty.endpoint), tmp_path / "cache")
    with s3_scheme(cache):
        got, pipeline = epoch(urls, small_data)
    assert sorted(got) == ALL and cache.misses == len(urls)
    assert pipeline.errors.retries == s3.proxy.injected - before > 0
    assert not list((tmp_path / "cache").glob(".*.part"))


def test_retries_reach_the_verification_record(small_data, tmp_path):
    from course_lib.course.verification import verification_checkpoint

    with serve_faulty(small_data / "wds", ONLY_CUTS) as server:
        _, pipeline = epoch([server.url(f.name) for f in shard_files(small_data)], small_data)
        injected = server.injected
    record = verification_checkpoint("99_faults", data_dir=small_data, results=[], out_dir=tmp_path,
                                     errors=[pipeline.errors])
    assert record["shard_faults"]["retries"] == injected > 0 and record["shard_faults"]["samples_lost"] == 0
    assert ("shard faults: retries", str(injected)) in record.rows()
