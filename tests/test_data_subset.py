"""first_shards: the first shards of a data_gen directory as a smaller data_gen directory of the same bytes."""
from __future__ import annotations

import json

import pytest

from course_lib.course.data_subset import first_shards
from course_lib.loaders.mmap_shards import MmapShardDataset
from course_lib.loaders.shard_index import manifest_shards


def test_the_subset_lists_and_holds_only_the_first_shards(small_data, tmp_path):
    out = first_shards(small_data, tmp_path / "sub", 2)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["total_samples"] == 40                                   # 2 shards of 20 (conftest's SMALL)
    for fmt, entry in manifest["formats"].items():
        assert [s["file"] for s in entry["shards"]] == [f"{fmt}/{p.name}" for p in sorted((out / fmt).iterdir())]
        for shard in entry["shards"]:
            assert (out / shard["file"]).read_bytes() == (small_data / shard["file"]).read_bytes()
    assert sum(e.samples for e in manifest_shards(out, "wds").values()) == 40
    assert len(MmapShardDataset(out, batch_size=8)) == 40


def test_a_second_call_relinks_and_all_shards_are_the_directory_itself(small_data, tmp_path):
    first_shards(small_data, tmp_path / "sub", 3)
    out = first_shards(small_data, tmp_path / "sub", 2)
    assert json.loads((out / "manifest.json").read_text())["total_samples"] == 40
    assert sorted(p.name for p in (out / "wds").iterdir()) == sorted(manifest_shards(out, "wds"))   # none stale
    assert first_shards(small_data, tmp_path / "all", 6) == small_data.resolve()


def test_bad_arguments_are_refused_naming_them(small_data, tmp_path):
    with pytest.raises(ValueError, match="shards must be at least 1"):
        first_shards(small_data, tmp_path / "sub", 0)
    with pytest.raises(FileNotFoundError, match="no manifest.json"):
        first_shards(tmp_path, tmp_path / "sub", 1)
