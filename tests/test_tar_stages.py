"""The tar reading stages one at a time, on plain lists and bytes: members with the end-of-archive check,
grouping members into samples, accounting for a shard against the manifest, memory-mapped blocks."""
from __future__ import annotations

import io
import os
import tarfile
import warnings

import numpy as np
import pytest

from course_lib.loaders.mapped_blocks import LazyBlock, MemberRef, file_identity, known_members, mapped_shard
from course_lib.loaders.sample_grouping import group_samples, split_key
from course_lib.loaders.shard_accounting import ShardSamples
from course_lib.loaders.shard_errors import ErrorLog, ShardReadError
from course_lib.loaders.shard_index import ShardExpectation
from course_lib.loaders.shard_open import open_shard
from course_lib.loaders.tar_members import END_OF_ARCHIVE, end_problem, tar_members

MEMBERS = [(f"{k:03d}.{suffix}", f"{k}-{suffix}".encode()) for k in range(5) for suffix in ("a", "b")]


def tar_bytes(members: list[tuple[str, bytes]]) -> bytes:
    """An in-memory tar of ``(name, data)`` members."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def member_end(data: bytes) -> int:
    """The byte after the last member's data block (where the end-of-archive blocks start)."""
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        last = tar.getmembers()[-1]
    return last.offset_data + -(-last.size // 512) * 512


def test_split_key_and_grouping_on_plain_lists():
    assert split_key("dir/000042.x.npy") == ("dir/000042", "x.npy")
    assert split_key("000042.CLS") == ("000042", "cls")
    assert split_key("README") == (None, "")
    samples = list(group_samples([*MEMBERS, ("README", b"skipped")], "u"))
    assert [s["__key__"] for s in samples] == ["000", "001", "002", "003", "004"]
    assert samples[3] == {"__key__": "003", "__url__": "u", "a": b"3-a", "b": b"3-b"}
    with pytest.raises(ShardReadError, match="sample 001: member a appears twice"):
        list(group_samples([("001.a", b""), ("001.a", b"")]))


def test_end_of_archive_check():
    assert end_problem(bytes(END_OF_ARCHIVE), 100) is None
    assert end_problem(None, 100) is None                                   # not kept: nothing to judge
    assert "ends at byte 611" in end_problem(bytes(511), 100)
    assert "unreadable tar header at byte 100" in end_problem(b"\1" + bytes(END_OF_ARCHIVE), 100)


@pytest.mark.parametrize("lazy", [False, True])
def test_members_whole_and_cut_between_members(tmp_path, lazy):
    data = tar_bytes(MEMBERS)
    path = tmp_path / "whole.tar"
    path.write_bytes(data)
    with open(path, "rb") as f:
        got = list(tar_members(str(path), f, lazy))
    assert [n for n, _ in got] == [n for n, _ in MEMBERS]
    contents = [d.read() if isinstance(d, MemberRef) else d for _, d in got]
    assert contents == [d for _, d in MEMBERS]
    cut = tmp_path / "cut.tar"
    cut.write_bytes(data[:member_end(data)])      # tarfile alone reads this as a shorter, valid archive
    with tarfile.open(cut) as tar:
        assert len(tar.getmembers()) == len(MEMBERS)
    with open(cut, "rb") as f, pytest.raises(ShardReadError, match="without the end-of-archive blocks"):
        list(tar_members(str(cut), f, lazy))


def test_a_local_shard_read_intact_is_parsed_once_per_identity(tmp_path):
    path = tmp_path / "s.tar"
    path.write_bytes(tar_bytes(MEMBERS))
    with open(path, "rb") as f:
        list(tar_members(str(path), f, lazy=True))
    identity = file_identity(os.stat(path))
    assert [m[0] for m in known_members(str(path), identity)] == [n for n, _ in MEMBERS]
    assert known_members(str(path), (identity[0] + 1, *identity[1:])) is None   # another version of the file


def test_lazy_block_rows_are_a_view_of_the_mapped_shard(tmp_path):
    rows = np.arange(6 * 8, dtype=np.uint8).reshape(6, 8)
    path = tmp_path / "b.bin"
    path.write_bytes(b"head" + rows.tobytes())
    block = LazyBlock(MemberRef(str(path), 4, rows.nbytes), 0, (6, 2, 4), np.dtype(np.uint8))
    assert len(block) == 6
    np.testing.assert_array_equal(block.rows(), rows)
    assert np.shares_memory(block.rows(), mapped_shard(str(path))[1])
    short = LazyBlock(MemberRef(str(path), 4, rows.nbytes), 8, (6, 2, 4), np.dtype(np.uint8))
    with pytest.raises(ShardReadError, match="runs past the end of the file"):
        short.rows()


def _shard_samples(data: bytes, mode: str, samples: int, nbytes: int | None = None, folder=None):
    """ShardSamples over ``data``: a stream without a size (``mem://``), or a local file in ``folder``."""
    errors = ErrorLog(mode)
    stage = ShardSamples({"s.tar": ShardExpectation(samples, nbytes)}, errors, {"a", "b"})
    if folder is None:
        return list(stage.shard("mem://s.tar", io.BytesIO(data))), errors
    (folder / "s.tar").write_bytes(data)
    return list(stage.shard(str(folder / "s.tar"), open(folder / "s.tar", "rb"))), errors


def test_accounting_counts_the_samples_a_shard_lost(tmp_path):
    data = tar_bytes(MEMBERS)
    got, errors = _shard_samples(data, "warn", 5, len(data))
    assert len(got) == 5 and errors.count == 0
    cut = data[:member_end(tar_bytes(MEMBERS[:7]))]        # 3 whole samples, then the 4th's first member
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got, errors = _shard_samples(cut, "warn", 5)
    assert [s["__key__"] for s in got] == ["000", "001", "002"]   # the half sample is dropped, not delivered
    assert errors.samples_lost == 2 and "mem://s.tar" in errors.messages[0]
    with pytest.raises(ShardReadError, match=r"mem://s.tar: truncated or damaged .*2 of 5 samples lost"):
        _shard_samples(cut, "raise", 5)
    size = f"{len(data):,} bytes, the manifest says 1,234"
    with pytest.raises(ShardReadError, match=f"s.tar: truncated or damaged: {size}"):
        _shard_samples(data, "raise", 5, 1234, tmp_path)    # found from the size, before any sample
    with pytest.raises(ShardReadError, match="4 of 6 samples in the shard"):   # whole tar, manifest says more
        _shard_samples(data[:member_end(tar_bytes(MEMBERS[:8]))] + bytes(1024), "raise", 6)


def test_open_shard_names_what_it_cannot_open(tmp_path):
    with pytest.raises(ShardReadError, match=f"{tmp_path}/none.tar: No such file"):
        open_shard(str(tmp_path / "none.tar"))
    with pytest.raises(ShardReadError, match="nope://x/s.tar: no opener registered"):
        open_shard("nope://x/s.tar")
