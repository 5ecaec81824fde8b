"""One vocabulary: the old keyword names are gone (refused, not silently accepted), and every loader's
shard errors belong to one family a learner can catch."""
from __future__ import annotations

import pytest

from course_lib import (
    MissingShardError,
    MmapShardDataset,
    ShardError,
    ShardFormatError,
    ShardReadError,
    index_shards,
    make_block_webdataset,
    make_webdataset,
    serve_shards,
    verification_checkpoint,
)
from course_lib.course import resumable_loader
from course_lib.measure import arrival_order


def ids(items) -> list[int]:
    return arrival_order(items).tolist()


def test_old_keyword_names_are_refused(small_data, tmp_path):
    """The package is unreleased: the old names (root=, urls=, block_buffer=, data_path=, ...) are not kept."""
    attempts = {
        "root": lambda: MmapShardDataset(root=small_data),
        "urls": lambda: make_webdataset(urls=small_data),
        "block_buffer": lambda: make_block_webdataset(small_data, batch_size=8, block_buffer=2),
        "workers": lambda: resumable_loader(small_data, workers=0),
        "data_path": lambda: verification_checkpoint("99_vocab", data_path=small_data, out_dir=tmp_path),
        "directory": lambda: serve_shards(directory=small_data),
    }
    for old, attempt in attempts.items():
        with pytest.raises(TypeError, match=old):
            attempt()


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
