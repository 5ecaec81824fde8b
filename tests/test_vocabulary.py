"""One vocabulary: old keyword names still work for one release (with a DeprecationWarning), and every loader's
shard errors belong to one family a learner can catch."""
from __future__ import annotations

import pytest

import course_lib
from course_lib import (LoadAllDataset, MissingShardError, MmapShardDataset, PerSampleFileDataset, ShardError,
                        ShardFormatError, ShardReadError, arrival_order, export_per_sample_files, index_shards,
                        make_block_webdataset, make_webdataset, resumable_loader, serve_shards,
                        verification_checkpoint)


def ids(items) -> list[int]:
    return arrival_order(items).tolist()


def test_old_keyword_names_still_work_with_a_deprecation_warning(small_data, tmp_path):
    with pytest.warns(DeprecationWarning, match=r"root=.*data_dir="):
        assert len(MmapShardDataset(root=small_data)) == 103
    with pytest.warns(DeprecationWarning, match="root="):
        assert len(index_shards(root=small_data)) == 103
    with pytest.warns(DeprecationWarning, match="root="):
        assert len(LoadAllDataset(root=small_data)) == 103
    with pytest.warns(DeprecationWarning, match="root="):
        export_per_sample_files(root=small_data, out_dir=tmp_path / "files", limit=3)
    with pytest.warns(DeprecationWarning, match="directory="):
        assert len(PerSampleFileDataset(directory=tmp_path / "files")) == 3
    with pytest.warns(DeprecationWarning, match=r"urls=.*source="):
        assert sorted(ids(make_webdataset(urls=small_data))) == list(range(103))
    with pytest.warns(DeprecationWarning, match=r"block_buffer=.*window_blocks="):
        old = ids(make_block_webdataset(small_data, batch_size=8, block_buffer=2, seed=3))
    assert old == ids(make_block_webdataset(small_data, batch_size=8, window_blocks=2, seed=3))
    with pytest.warns(DeprecationWarning, match="workers="):
        assert resumable_loader(small_data, workers=0).num_workers == 0
    with pytest.warns(DeprecationWarning, match="data_path="):
        rec = verification_checkpoint("99_vocab", data_path=small_data,
                                      results=[course_lib.measure_throughput(MmapShardDataset(small_data),
                                                                             progress=False)], out_dir=tmp_path)
    assert rec["data_bytes"] > 0
    with pytest.warns(DeprecationWarning, match="directory="):
        with serve_shards(directory=small_data) as server:
            assert len(server.urls) == 6


def test_old_and_new_name_together_is_an_error(small_data):
    with pytest.raises(TypeError, match="both"):
        MmapShardDataset(data_dir=small_data, root=small_data)


def test_missing_shards_are_one_family_whichever_loader(tmp_path):
    """The same learner's except clause catches a missing dataset from every loader."""
    missing = tmp_path / "nothing-here"
    attempts = {
        "MmapShardDataset": lambda: MmapShardDataset(missing),
        "index_shards (empty folder)": lambda: index_shards(tmp_path),
        "make_webdataset": lambda: make_webdataset(tmp_path),
        "make_block_webdataset": lambda: make_block_webdataset(str(tmp_path / "shard_{0000..0001}.tar")),
        "serve_shards": lambda: serve_shards(missing).__enter__(),
    }
    for name, attempt in attempts.items():
        with pytest.raises(ShardError) as caught:
            attempt()
        assert isinstance(caught.value, MissingShardError) and isinstance(caught.value, FileNotFoundError), name
        assert str(tmp_path) in str(caught.value), name


def test_error_kinds_keep_their_builtin_types():
    assert issubclass(ShardFormatError, ValueError) and issubclass(ShardReadError, RuntimeError)
    assert all(issubclass(e, ShardError) for e in (ShardFormatError, ShardReadError, MissingShardError))
