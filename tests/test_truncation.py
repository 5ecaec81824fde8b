"""No silent sample loss: a shard cut at any byte is an error naming it (raise) or a counted skip with the
number of samples lost (warn), for the per-sample tars (wds), the block tars (wdsb) and the numpy shards."""
from __future__ import annotations

import shutil
import tarfile
import warnings
from pathlib import Path

import pytest

from course_lib import MmapShardDataset, ShardError, make_block_webdataset, make_webdataset
from course_lib.loaders.shard_index import read_header
from course_lib.measure.shuffle_metrics import arrival_order
from data_gen import generate
from data_gen.layout import WDS_BLOCK

DATA = dict(samples=1300, shard_size=600, shape=(1, 2, 2), classes=3, seed=1)  # 3 shards; blocks of 256 per shard
BAD = 1                                                                           # the shard that gets cut
FIRST = BAD * DATA["shard_size"]                                                  # its first sample id


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("trunc") / "data"
    generate(root, **DATA, progress=False, report=None)
    return root


def _members(path: Path) -> list[tarfile.TarInfo]:
    with tarfile.open(path) as tar:
        return tar.getmembers()


def _end_of_members(path: Path) -> int:
    last = _members(path)[-1]
    return last.offset_data + -(-last.size // 512) * 512


def tar_cuts(path: Path, per_item: int) -> dict[str, tuple[int, int]]:
    """Cut points of one tar shard -> (byte offset, complete items before the cut)."""
    members = _members(path)
    per = len({m.name.split(".", 1)[1] for m in members})  # members per sample (or per block)
    k = len(members) // per // 2                             # a sample (or block) in the middle
    first_of_k, second_of_k = members[k * per], members[k * per + 1]
    end = _end_of_members(path)
    return {
        "inside the first header": (100, 0),
        "inside a header": (first_of_k.offset + 100, k),
        "inside a member": (second_of_k.offset_data + second_of_k.size // 2, k),
        "between members of one sample": (second_of_k.offset, k),
        "exactly between samples": (first_of_k.offset, k),
        "before the end-of-archive blocks": (end, len(members) // per),
        "inside the end-of-archive blocks": (end + 512, len(members) // per),
    }


def _cut(data: Path, tmp: Path, fmt: str, offset: int, keep_manifest: bool = True) -> tuple[Path, Path]:
    root = tmp / "data"
    shutil.copytree(data / fmt, root / fmt)
    if keep_manifest:
        shutil.copy(data / "manifest.json", root / "manifest.json")
    bad = sorted((root / fmt).iterdir())[BAD]
    bad.write_bytes(bad.read_bytes()[:offset])
    return root, bad


def _quietly(items) -> list[int]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return arrival_order(items).tolist()


def _expected_ids(delivered_in_bad: int) -> list[int]:
    shard = DATA["shard_size"]
    return [i for i in range(DATA["samples"]) if not FIRST + delivered_in_bad <= i < FIRST + shard]


PIPELINES = {"wds": (lambda src, **kw: make_webdataset(src, shuffle_buffer=0, shardshuffle=False, **kw), 1),
             "wdsb": (lambda src, **kw: make_block_webdataset(src, batch_size=64, shardshuffle=False, **kw), WDS_BLOCK)}
CUTS = ["inside the first header", "inside a header", "inside a member", "between members of one sample",
        "exactly between samples", "before the end-of-archive blocks", "inside the end-of-archive blocks"]


def _cut_at(data: Path, tmp_path: Path, fmt: str, cut: str, keep_manifest: bool = True):
    """The dataset copied with shard BAD cut at ``cut``: (pipeline builder, items per tar sample, complete items
    before the cut, copy's root, the cut shard)."""
    build, per_item = PIPELINES[fmt]
    offset, items = tar_cuts(sorted((data / fmt).iterdir())[BAD], per_item)[cut]
    root, bad = _cut(data, tmp_path, fmt, offset, keep_manifest=keep_manifest)
    return build, per_item, items, root, bad


@pytest.mark.parametrize("cut", CUTS)
@pytest.mark.parametrize("fmt", ["wds", "wdsb"])
def test_cut_tar_raises_naming_the_shard(data, tmp_path, fmt, cut):
    build, _, _, root, bad = _cut_at(data, tmp_path, fmt, cut)
    with pytest.raises(ShardError, match=bad.name):
        _quietly(build(root))


@pytest.mark.parametrize("cut", CUTS)
@pytest.mark.parametrize("fmt", ["wds", "wdsb"])
def test_cut_tar_warns_and_counts_the_samples_lost(data, tmp_path, fmt, cut):
    build, per_item, items, root, bad = _cut_at(data, tmp_path, fmt, cut)
    pipeline = build(root, handler="warn")
    got = _quietly(pipeline)
    delivered = min(items * per_item, DATA["shard_size"])
    assert sorted(got) == _expected_ids(delivered)
    assert pipeline.errors.count == 1 and bad.name in pipeline.errors.messages[0], pipeline.errors.messages
    assert pipeline.errors.samples_lost == DATA["shard_size"] - delivered, pipeline.errors.messages


@pytest.mark.parametrize("cut", ["inside a header", "exactly between samples", "before the end-of-archive blocks"])
@pytest.mark.parametrize("fmt", ["wds", "wdsb"])
def test_cut_tar_without_a_manifest_is_still_found(data, tmp_path, fmt, cut):
    """No manifest: the missing end-of-archive blocks give the cut away; the loss is reported as unknown."""
    build, per_item, items, root, bad = _cut_at(data, tmp_path, fmt, cut, keep_manifest=False)
    with pytest.raises(ShardError, match=bad.name):
        _quietly(build(root / fmt))
    pipeline = build(root / fmt, handler="warn")
    got = _quietly(pipeline)
    assert sorted(got) == _expected_ids(min(items * per_item, DATA["shard_size"]))
    assert pipeline.errors.count == 1 and "unknown" in pipeline.errors.messages[0]


def test_cut_tar_over_http_is_counted(data, tmp_path):
    from course_lib import serve_shards
    offset, items = tar_cuts(sorted((data / "wds").iterdir())[BAD], 1)["exactly between samples"]
    root, bad = _cut(data, tmp_path, "wds", offset)
    with serve_shards(root) as server:
        pipeline = make_webdataset(server.urls, shuffle_buffer=0, shardshuffle=False, handler="warn",
                                   expected_counts=server.expected)
        got = _quietly(pipeline)
    assert sorted(got) == _expected_ids(items)
    assert pipeline.errors.samples_lost == DATA["shard_size"] - items and bad.name in pipeline.errors.messages[0]


def npy_cuts(path: Path) -> dict[str, tuple[int, int | None]]:
    """Cut points of one numpy shard -> (byte offset, complete records kept; None: the shard is unreadable)."""
    h = read_header(path)
    k = h.count // 2
    return {
        "inside the header": (h.data_offset // 2, None),
        "right after the header": (h.data_offset, 0),
        "inside a record": (h.data_offset + k * h.dtype.itemsize + h.dtype.itemsize // 2, k),
        "exactly between records": (h.data_offset + k * h.dtype.itemsize, k),
        "one record short": (h.data_offset + (h.count - 1) * h.dtype.itemsize, h.count - 1),
    }


NPY_CUTS = ["inside the header", "right after the header", "inside a record", "exactly between records",
            "one record short"]


@pytest.mark.parametrize("cut", NPY_CUTS)
def test_cut_npy_raises_naming_the_shard(data, tmp_path, cut):
    offset, _ = npy_cuts(sorted((data / "npy").iterdir())[BAD])[cut]
    root, bad = _cut(data, tmp_path, "npy", offset)
    with pytest.raises(ShardError, match=bad.name):
        MmapShardDataset(root)


@pytest.mark.parametrize("cut", NPY_CUTS)
def test_cut_npy_warns_and_counts_the_samples_lost(data, tmp_path, cut):
    offset, kept = npy_cuts(sorted((data / "npy").iterdir())[BAD])[cut]
    root, bad = _cut(data, tmp_path, "npy", offset)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = MmapShardDataset(root, shuffle="none", batch_size=100, handler="warn")
    got = arrival_order(ds).tolist()
    assert got == _expected_ids(kept or 0), "complete records in file order, nothing mapped past the cut"
    assert ds.errors.count == 1 and bad.name in ds.errors.messages[0]
    assert ds.errors.samples_lost == DATA["shard_size"] - (kept or 0)


def test_whole_shards_report_nothing(data):
    pipeline = make_webdataset(data, shuffle_buffer=0, handler="warn")
    assert len(_quietly(pipeline)) == DATA["samples"] and pipeline.errors.count == 0
    ds = MmapShardDataset(data, handler="warn")
    assert len(arrival_order(ds)) == DATA["samples"] and ds.errors.count == 0
