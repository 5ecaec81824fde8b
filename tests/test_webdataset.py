"""WebDataset helpers: exactly-once, reproducible shuffles, safe decoding, corrupt input, HTTP, the block path."""
from __future__ import annotations

import io
import pickle
import shutil
import tarfile
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from course_lib import MissingShardError, ShardReadError, make_block_webdataset, make_webdataset, serve_shards
from course_lib.measure.shuffle_metrics import arrival_order, shuffle_quality
from data_gen.samples import make_sample

from conftest import SMALL

ALL = list(range(103))


def ids(items) -> list[int]:
    return arrival_order(items).tolist()


def ids_skipping(items) -> list[int]:
    """``ids`` of a ``handler="warn"`` pipeline, without printing its skip warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ids(items)


def test_every_sample_once_and_decoded(small_data):
    items = list(make_webdataset(small_data, shuffle_buffer=10, seed=1))
    assert sorted(ids(items)) == ALL
    item = items[5]
    x, y = make_sample(SMALL["seed"], item["idx"], SMALL["shape"], SMALL["classes"])
    assert isinstance(item["x"], torch.Tensor) and item["x"].dtype == torch.uint8
    np.testing.assert_array_equal(item["x"].numpy(), x)
    assert item["y"] == y


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_dataloader_workers_split_shards(small_data, workers):
    loader = DataLoader(make_webdataset(small_data, shuffle_buffer=20), batch_size=None, num_workers=workers)
    assert sorted(ids(loader)) == ALL


@pytest.mark.parametrize("world", [2, 3])
def test_ranks_split_shards(small_data, world):
    per_rank = [ids(make_webdataset(small_data, rank=r, world_size=world)) for r in range(world)]
    assert sorted(sum(per_rank, [])) == ALL


def test_shuffle_is_reproducible_and_changes_with_epoch(small_data):
    a = ids(make_webdataset(small_data, seed=3, epoch=0, shuffle_buffer=30))
    assert a == ids(make_webdataset(small_data, seed=3, epoch=0, shuffle_buffer=30))
    pipeline = make_webdataset(small_data, seed=3, epoch=0, shuffle_buffer=30)
    pipeline.set_epoch(1)
    b = ids(pipeline)
    assert a != b and sorted(b) == ALL
    assert ids(make_webdataset(small_data, shardshuffle=False, shuffle_buffer=0)) == ALL


def test_batched_output(small_data):
    batches = list(make_webdataset(small_data, batch_size=8, shuffle_buffer=10))
    assert batches[0]["x"].shape == (8, *SMALL["shape"]) and batches[0]["y"].dtype == torch.int64
    assert sum(len(b["idx"]) for b in batches) == 103
    full = list(make_webdataset(small_data, batch_size=8, partial=False))
    assert all(len(b["idx"]) == 8 for b in full)


def test_bigger_buffer_shuffles_better(small_data):
    small = shuffle_quality(arrival_order(make_webdataset(small_data, shardshuffle=False, shuffle_buffer=2)))
    big = shuffle_quality(arrival_order(make_webdataset(small_data, shardshuffle=False, shuffle_buffer=100)))
    assert big["displacement"] > small["displacement"] and big["neighbours"] < small["neighbours"]


def test_shuffle_quality_numbers():
    assert shuffle_quality(np.arange(100)) == {"displacement": 0.0, "correlation": pytest.approx(1.0),
                                               "neighbours": 1.0}
    rev = shuffle_quality(np.arange(100)[::-1])
    assert rev["correlation"] == pytest.approx(-1.0) and rev["displacement"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="permutation"):
        shuffle_quality(np.array([0, 0, 1]))


# -- safe decoding and corrupt input -----------------------------------------------------------------
class Payload:
    """Unpickling this creates a file: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _copy_wds(small_data: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "wds"
    shutil.copytree(small_data / "wds", dst)
    return dst


def _add_member(tar_path: Path, name: str, data: bytes) -> None:
    with tarfile.open(tar_path, "a") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def test_pickle_member_is_refused_not_executed(small_data, tmp_path):
    wds_dir = _copy_wds(small_data, tmp_path)
    marker = tmp_path / "pwned"
    first = sorted(wds_dir.glob("*.tar"))[0]
    _add_member(first, "000000999.pyd", pickle.dumps(Payload(marker)))
    _add_member(first, "000000999.x.npy", (small_data / "npy/shard_0000.npy").read_bytes()[:300])
    with pytest.raises(ShardReadError, match=r"shard_0000\.tar.*000000999.*refused"):
        list(make_webdataset(wds_dir))
    pipeline = make_webdataset(wds_dir, handler="warn")
    got = ids_skipping(pipeline)
    assert sorted(got) == ALL and pipeline.errors.count == 1 and "refused" in pipeline.errors.messages[0]
    assert not marker.exists(), "the pickle was executed"


def test_bad_npy_member_raises_naming_shard_and_key_or_is_counted(small_data, tmp_path):
    wds_dir = tmp_path / "wds"
    wds_dir.mkdir()
    src = small_data / "wds/shard_0001.tar"
    with tarfile.open(src) as tin, tarfile.open(wds_dir / "shard_0001.tar", "w") as tout:
        for info in tin:
            data = tin.extractfile(info).read()
            if info.name == "000000025.x.npy":
                data = data[:60]
                info.size = len(data)
            tout.addfile(info, io.BytesIO(data))
    with pytest.raises(ShardReadError, match=r"shard_0001\.tar: sample 000000025: bad \.npy"):
        list(make_webdataset(wds_dir))
    pipeline = make_webdataset(wds_dir, handler="warn")
    got = ids_skipping(pipeline)
    assert sorted(got) == [i for i in range(20, 40) if i != 25] and pipeline.errors.count == 1


def test_counts_survive_dataloader_workers(small_data, tmp_path):
    wds_dir = _copy_wds(small_data, tmp_path)
    for name in ("shard_0001.tar", "shard_0004.tar"):
        (wds_dir / name).write_bytes(b"not a tar file at all" * 10)
    pipeline = make_webdataset(wds_dir, handler="warn")
    got = ids_skipping(DataLoader(pipeline, batch_size=None, num_workers=2))
    assert len(got) == 103 - 40 and pipeline.errors.count == 2


def test_missing_shard_is_named(tmp_path):
    with pytest.raises(MissingShardError, match="no shard_"):
        make_webdataset(tmp_path)
    with pytest.raises(MissingShardError, match="2 of 2 shard.*shard_0008.tar.*shard_0009.tar"):
        make_webdataset(str(tmp_path / "shard_{0008..0009}.tar"))


def test_bad_handler_argument(small_data):
    with pytest.raises(ValueError, match="handler"):
        make_webdataset(small_data, handler="ignore")


# -- HTTP --------------------------------------------------------------------------------------------
def test_a_whole_epoch_over_http(small_data):
    with serve_shards(small_data) as server:
        assert server.base_url.startswith("http://127.0.0.1:")
        assert server.pattern.endswith("/shard_{0000..0005}.tar")
        assert server.counts == {f"shard_{i:04d}.tar": 20 if i < 5 else 3 for i in range(6)}
        got = ids(make_webdataset(server.pattern, shuffle_buffer=20))
        assert sorted(got) == ALL
        loader = DataLoader(make_webdataset(server.urls), batch_size=None, num_workers=2)
        assert sorted(ids(loader)) == ALL
        with pytest.raises(ShardReadError, match=r"/shard_0099\.tar: HTTP 404"):
            list(make_webdataset([server.base_url + "/shard_0099.tar"]))
        base = server.base_url
    with pytest.raises(ShardReadError, match="cannot connect"):
        list(make_webdataset([base + "/shard_0000.tar"]))
    with pytest.raises(OSError):
        urllib.request.urlopen(base + "/shard_0000.tar", timeout=2)


# -- the block fast path -----------------------------------------------------------------------------
@pytest.mark.parametrize("workers", [0, 2])
def test_block_path_every_sample_once(small_data, workers):
    pipeline = make_block_webdataset(small_data, batch_size=8, window_blocks=2, seed=1)
    batches = list(DataLoader(pipeline, batch_size=None, num_workers=workers))
    assert sorted(ids(batches)) == ALL
    assert all(b["x"].shape[1:] == SMALL["shape"] for b in batches)
    i = int(batches[0]["idx"][3])
    np.testing.assert_array_equal(batches[0]["x"][3].numpy(), make_sample(7, i, SMALL["shape"], 5)[0])
    assert int(batches[0]["y"][3]) == make_sample(7, i, SMALL["shape"], 5)[1]


def test_block_path_over_http(small_data):
    with serve_shards(small_data, fmt="wdsb") as server:
        batches = list(make_block_webdataset(server.urls, batch_size=8, window_blocks=2))
    assert sorted(ids(batches)) == ALL
    i = int(batches[2]["idx"][1])
    np.testing.assert_array_equal(batches[2]["x"][1].numpy(), make_sample(7, i, SMALL["shape"], 5)[0])


def test_block_path_mixes_and_is_reproducible(small_data):
    order = ids(make_block_webdataset(small_data, batch_size=8, window_blocks=4, seed=2))
    assert order == ids(make_block_webdataset(small_data, batch_size=8, window_blocks=4, seed=2))
    assert shuffle_quality(np.array(order))["neighbours"] < 0.2
    full = list(make_block_webdataset(small_data, batch_size=8, partial=False))
    assert all(len(b["idx"]) == 8 for b in full) and sum(len(b["idx"]) for b in full) == 96


def test_block_path_reads_a_shard_once_per_process_and_sees_it_change(small_data, tmp_path, monkeypatch):
    """A local shard read through intact keeps its member list and its memory map: the next epoch parses no tar
    header; a shard replaced on disk (another size, time or inode) is read afresh."""
    from course_lib.loaders import tar_members

    data = tmp_path / "data"
    shutil.copytree(small_data, data)
    first = ids(make_block_webdataset(data, batch_size=8, window_blocks=2, shardshuffle=False))
    assert sorted(first) == ALL
    with monkeypatch.context() as m:
        m.setattr(tar_members.tarfile, "open", _no_tar_parsing)
        again = ids(make_block_webdataset(data, batch_size=8, window_blocks=2, shardshuffle=False))
    assert again == first
    shards = [str(p) for p in sorted((data / "wdsb").glob("*.tar"))]
    last = ids(make_block_webdataset([shards[-1]], batch_size=8))   # the short shard
    replaced = Path(shards[0]).with_suffix(".new")
    shutil.copyfile(shards[-1], replaced)
    replaced.replace(shards[0])                       # shard 0 now holds the short shard's samples
    changed = ids(make_block_webdataset(shards, batch_size=8, window_blocks=2, shardshuffle=False))
    assert ids(make_block_webdataset([shards[0]], batch_size=8)) == last
    assert sorted(changed) == sorted(last + ids(make_block_webdataset(shards[1:], batch_size=8)))


def _no_tar_parsing(*args, **kwargs):
    raise AssertionError("the tar headers were parsed again")


def test_window_rows_gather_across_blocks_like_one_array():
    from course_lib.loaders.block_mixing import WindowRows

    parts = [np.arange(k * 100, k * 100 + n * 4, dtype=np.uint8).reshape(n, 4) for k, n in enumerate([3, 5, 2])]
    whole = np.concatenate(parts)
    rows = WindowRows(parts)
    assert len(rows) == 10
    for picked in ([0, 1, 2], [2, 3, 9], [4, 5, 6, 7], list(range(10)), [9]):
        out = np.empty((len(picked), 4), np.uint8)
        np.testing.assert_array_equal(rows.gather(np.array(picked), out), whole[picked])


@pytest.mark.parametrize("size,initial", [(1, 1), (10, 10), (10, 3), (50, 50), (200, 200)])
def test_shuffle_buffer_keeps_every_sample_and_fills_first(size, initial):
    from course_lib.loaders.shuffle_buffer import shuffled

    pulled = []

    def source():
        for i in range(100):
            pulled.append(i)
            yield i

    stream = shuffled(source(), size, initial, np.random.default_rng(0))
    first = next(stream)
    assert len(pulled) >= min(initial, 100) and first in pulled
    assert sorted([first, *stream]) == list(range(100))
