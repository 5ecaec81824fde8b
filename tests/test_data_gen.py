"""data_gen: determinism, layout, manifest, atomic re-runs, verify, and bad arguments."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds

from data_gen import generate, read_manifest, record_dtype, verify
from data_gen.cli import main
from data_gen.samples import make_sample

from conftest import SMALL

ROOT = Path(__file__).resolve().parents[1]


def _gen(root: Path, **kw) -> dict:
    return generate(root, **{**SMALL, **kw}, progress=False, report=None)


def test_manifest_counts_and_files(small_data: Path) -> None:
    m = read_manifest(small_data)
    assert m["complete"] and m["total_samples"] == 103 and m["shape"] == [3, 4, 4]
    for fmt in ("npy", "wds", "wdsb"):
        shards = m["formats"][fmt]["shards"]
        assert [e["samples"] for e in shards] == [20, 20, 20, 20, 20, 3]
        assert [e["first_index"] for e in shards] == [0, 20, 40, 60, 80, 100]
        for e in shards:
            assert (small_data / e["file"]).stat().st_size == e["bytes"]
            assert len(e["sha256"]) == 64


def test_npy_shards_hold_every_sample_once_with_its_content(small_data: Path) -> None:
    seen = []
    for path in sorted((small_data / "npy").glob("shard_*.npy")):
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
        assert arr.dtype == record_dtype((3, 4, 4)) and arr.ndim == 1
        for rec in arr[:3]:
            x, y = make_sample(7, int(rec["idx"]), (3, 4, 4), 5)
            np.testing.assert_array_equal(rec["x"], x)
            assert rec["y"] == y
        seen += arr["idx"].tolist()
    assert seen == list(range(103))


def test_wds_shards_match_npy(small_data: Path) -> None:
    urls = [str(p) for p in sorted((small_data / "wds").glob("shard_*.tar"))]
    ds = wds.WebDataset(urls, shardshuffle=False).decode().to_tuple("x.npy", "cls", "idx")
    rows = list(ds)
    assert [int(i) for _, _, i in rows] == list(range(103))
    x, y = make_sample(7, 42, (3, 4, 4), 5)
    np.testing.assert_array_equal(rows[42][0], x)
    assert int(rows[42][1]) == y


def test_block_tars_hold_the_same_samples_in_blocks(small_data: Path) -> None:
    from data_gen.layout import WDS_BLOCK

    urls = [str(p) for p in sorted((small_data / "wdsb").glob("shard_*.tar"))]
    blocks = list(wds.WebDataset(urls, shardshuffle=False).decode().to_tuple("x.npy", "y.npy", "idx.npy"))
    assert all(len(i) <= WDS_BLOCK for _, _, i in blocks)
    idx = np.concatenate([i for _, _, i in blocks])
    assert idx.tolist() == list(range(103))
    xs, ys = np.concatenate([x for x, _, _ in blocks]), np.concatenate([y for _, y, _ in blocks])
    x, y = make_sample(7, 77, (3, 4, 4), 5)
    np.testing.assert_array_equal(xs[77], x)
    assert ys[77] == y


def test_content_is_not_trivial() -> None:
    xs = [make_sample(0, i, (3, 8, 8), 10)[0] for i in range(20)]
    assert all(x.std() > 5 for x in xs)
    assert len({x.tobytes() for x in xs}) == 20


def test_same_args_give_same_bytes(tmp_path: Path, small_data: Path) -> None:
    m = _gen(tmp_path / "again")
    assert m == read_manifest(small_data)
    assert (tmp_path / "again/manifest.json").read_bytes() == (small_data / "manifest.json").read_bytes()


def test_different_seed_gives_different_data(tmp_path: Path, small_data: Path) -> None:
    m = _gen(tmp_path / "other", seed=8)
    first = read_manifest(small_data)["formats"]["npy"]["shards"][0]
    assert m["formats"]["npy"]["shards"][0]["sha256"] != first["sha256"]


def test_rerun_skips_good_shards_and_repairs_damaged_ones(tmp_path: Path) -> None:
    root = tmp_path / "d"
    _gen(root)
    good, bad = root / "npy/shard_0001.npy", root / "wds/shard_0002.tar"
    good_mtime = good.stat().st_mtime_ns
    bad.write_bytes(bad.read_bytes()[:100])
    _gen(root)
    assert good.stat().st_mtime_ns == good_mtime, "an intact shard was rewritten"
    assert verify(root) == []


def test_interrupted_run_leaves_no_partial_shard_and_resumes(tmp_path: Path, monkeypatch) -> None:
    import data_gen.writers as writers

    root = tmp_path / "d"
    real = writers.write_npy_shard
    calls = {"n": 0}

    def failing(path, xs, ys, first):
        calls["n"] += 1
        if calls["n"] == 3:
            with writers.atomic_open(path) as f:
                f.write(b"half a shard")
                raise KeyboardInterrupt
        real(path, xs, ys, first)

    monkeypatch.setitem(writers.WRITERS, "npy", failing)
    with pytest.raises(KeyboardInterrupt):
        _gen(root, formats=["npy"])
    assert sorted(p.name for p in (root / "npy").iterdir()) == ["shard_0000.npy", "shard_0001.npy"]
    assert not read_manifest(root)["complete"]
    assert any("did not finish" in p for p in verify(root))
    monkeypatch.setitem(writers.WRITERS, "npy", real)
    _gen(root, formats=["npy"])
    assert verify(root) == []


def test_adding_a_format_keeps_the_other(tmp_path: Path) -> None:
    root = tmp_path / "d"
    _gen(root, formats=["npy"])
    before = (root / "npy/shard_0000.npy").stat().st_mtime_ns
    m = _gen(root, formats=["wds"])
    assert set(m["formats"]) == {"npy", "wds"}
    assert (root / "npy/shard_0000.npy").stat().st_mtime_ns == before
    assert verify(root) == []


def test_verify_names_flipped_truncated_and_missing_files(tmp_path: Path, capsys) -> None:
    root = tmp_path / "d"
    _gen(root)
    flipped, truncated, missing = root / "npy/shard_0002.npy", root / "wds/shard_0004.tar", root / "npy/shard_0005.npy"
    data = bytearray(flipped.read_bytes())
    data[-5] ^= 0xFF
    flipped.write_bytes(bytes(data))
    truncated.write_bytes(truncated.read_bytes()[:-512])
    missing.unlink()
    problems = verify(root)
    assert len(problems) == 3
    joined = "\n".join(problems)
    for path, word in [(flipped, "sha256"), (truncated, "truncated"), (missing, "missing")]:
        assert any(str(path) in p and word in p for p in problems), joined
    assert main(["verify", str(root)]) == 1
    err = capsys.readouterr().err
    assert str(flipped) in err and str(truncated) in err and str(missing) in err


def test_verify_without_manifest(tmp_path: Path) -> None:
    assert "manifest.json: missing" in verify(tmp_path)[0]


BAD_ARGS = [
    (["--samples", "0"], "--samples"),
    (["--samples", "-5"], "--samples"),
    (["--shard-size", "0"], "--shard-size"),
    (["--classes", "0"], "--classes"),
    (["--shape", "3,0,4"], "--shape"),
    (["--shape", "3,x"], "--shape"),
    (["--seed", "-1"], "--seed"),
    (["--formats", "npy,parquet"], "--formats"),
    (["--samples", "ten"], "--samples"),
    (["--num-workers", "-1"], "--num-workers"),
]


@pytest.mark.parametrize("args,flag", BAD_ARGS)
def test_bad_arguments_exit_2_with_one_line(tmp_path: Path, args: list[str], flag: str) -> None:
    out = tmp_path / "d"
    proc = subprocess.run([sys.executable, "-m", "data_gen", "generate", "--out", str(out), "--no-progress", *args],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and flag in lines[0] and "Traceback" not in proc.stderr, proc.stderr
    assert not out.exists()


def test_shard_size_larger_than_samples_is_fine(tmp_path: Path) -> None:
    m = _gen(tmp_path / "d", samples=7, shard_size=100)
    assert [e["samples"] for e in m["formats"]["npy"]["shards"]] == [7]


def test_existing_dir_with_other_manifest_is_refused_and_untouched(tmp_path: Path) -> None:
    root = tmp_path / "d"
    _gen(root)
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    assert main(["generate", "--out", str(root), "--samples", "50", "--shard-size", "20", "--shape", "3,4,4",
                 "--classes", "5", "--seed", "7", "--no-progress"]) == 2
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before


def test_stray_shards_without_manifest_are_not_overwritten(tmp_path: Path, capsys) -> None:
    stray = tmp_path / "npy/shard_0000.npy"
    stray.parent.mkdir()
    stray.write_bytes(b"someone else's data")
    assert main(["generate", "--out", str(tmp_path), "--samples", "10", "--no-progress"]) == 2
    assert "--out" in capsys.readouterr().err
    assert stray.read_bytes() == b"someone else's data"


def test_cli_generate_prints_summary_with_rate(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "data_gen", "generate", "--out", str(tmp_path / "d"),
                           "--samples", "30", "--shard-size", "10", "--shape", "2,3", "--formats", "npy"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "30 samples in 3 shards" in proc.stdout and "MB/s" in proc.stdout
    assert "sample" in proc.stderr  # the tqdm bar
    assert json.loads((tmp_path / "d/manifest.json").read_text())["complete"] is True


def test_shards_written_by_several_processes_are_the_same_bytes(tmp_path: Path) -> None:
    args = dict(samples=90, shard_size=20, shape=(3, 4, 4), formats=["npy", "wds", "wdsb", "img"], progress=False,
                report=None)
    serial = generate(tmp_path / "serial", num_workers=0, **args)
    parallel = generate(tmp_path / "parallel", num_workers=2, **args)
    for fmt in args["formats"]:
        assert [e["sha256"] for e in parallel["formats"][fmt]["shards"]] == \
            [e["sha256"] for e in serial["formats"][fmt]["shards"]]
        assert len(parallel["formats"][fmt]["shards"]) == 5
    assert verify(tmp_path / "parallel") == []
