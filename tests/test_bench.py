"""The benchmark runs end to end on small data and reports every loader (figures are not asserted)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from course_lib.course.bench import available_formats, format_table, loaders, main


def test_bench_writes_every_loader_and_ceiling(small_data, tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["--data-dir", str(small_data), "--out", str(out), "--repeat", "1", "--num-workers", "none,0",
                 "--batch-size", "16", "--no-progress", "--no-regimes"]) == 0
    result = json.loads(out.read_text())
    assert result["page_cache_mb_per_s"] > 0 and result["samples"] == 103
    # every loader the benchmark defines is measured once per worker setting (peers: their own subprocesses,
    # tests/test_regimes.py)
    # (loaders needing a format the dataset lacks are skipped, each named with the format it needs)
    defined = loaders(small_data, tmp_path, 16, small_data.parent / "peers")
    have = available_formats(small_data)
    runnable = [name for name, spec in defined.items() if set(spec.needs) <= have]
    measured = [(r["loader"], r["workers"]) for r in result["rows"]]
    assert sorted(measured, key=str) == sorted(((name, w) for name in runnable for w in (None, 0)
                                                if w is not None or "DataLoader collates" not in name), key=str)
    lacking = [name for name in defined if name not in runnable]
    assert lacking and all(any(s.startswith(f"{name}: needs the") for s in result["skipped"]) for name in lacking)
    for r in result["rows"]:
        assert r["samples_per_s"] > 0 and r["runs"][0]["samples"] > 0
        assert abs(r["ratio_to_page_cache"] - r["mb_per_s"] / result["page_cache_mb_per_s"]) < 1e-9
        assert abs(r["ratio_to_memcpy"] - r["mb_per_s"] / result["memcpy_mb_per_s"]) < 1e-9
        assert r["samples_per_s_min"] <= r["samples_per_s"] <= r["samples_per_s_max"]
        assert r["cache"] in ("warm", "cold", "unknown") or "partly" in r["cache"] or "/" in r["cache"]
    # the frontier: one point per setting, quality beside speed; the cold runs: each against the cold read
    assert {p["setting"] for p in result["frontier"]} >= {"no shuffle", "sample (full permutation)"}
    assert all(0 <= p["neighbours"] <= 1 and p["samples_per_s"] > 0 for p in result["frontier"])
    cold = result["cold"]
    assert cold["cold_read_mb_per_s"] > 0 and len(cold["rows"]) == 3
    assert all(abs(r["ratio_to_cold_read"] - r["mb_per_s"] / cold["cold_read_mb_per_s"]) < 1e-9 for r in cold["rows"])
    text = capsys.readouterr().out
    assert "of page cache" in text and "of memcpy" in text and "cold sequential read" in text and "frontier" in text
    assert "mmap block shuffle, batched 16" in format_table(result)


def test_only_filters_loaders_and_missing_peers_are_reported(small_data, tmp_path):
    from course_lib.course.bench import run
    from course_lib.measure.peers import missing

    result = run(small_data, repeat=1, num_workers=[None], batch_size=16, progress=False, only="no shuffle",
                 peers_dir=tmp_path / "peers")
    assert [r["loader"] for r in result["rows"]] == ["mmap no shuffle, batched 16"]
    assert missing("no_such_package_for_the_course").startswith("no_such_package_for_the_course not installed")
    assert missing("numpy") is None
    assert result["skipped"] == [] and "regimes" not in result   # peers are measured with the regimes only


def test_a_broken_install_is_not_reported_as_missing(tmp_path, monkeypatch):
    """An installed package whose own import fails raises its error: only an absent package is 'missing'."""
    from course_lib.measure.peers import missing

    (tmp_path / "broken_peer_for_the_course").mkdir()
    (tmp_path / "broken_peer_for_the_course" / "__init__.py").write_text("import no_such_dependency_xyz\n")
    (tmp_path / "crashing_peer_for_the_course.py").write_text("raise RuntimeError('bad build')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="no_such_dependency_xyz"):
        missing("broken_peer_for_the_course")
    with pytest.raises(RuntimeError, match="bad build"):
        missing("crashing_peer_for_the_course")


def _bench_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "course_lib.bench", *args], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("args, says", [
    (["--data-dir", "{data}", "--num-workers", "two"], "argument --num-workers: 'two': a comma list of worker counts"),
    (["--num-workers", "0"], "the following arguments are required: --data-dir"),
    (["--data-dir", "{missing}"], "--data-dir {missing}: no such directory"),
], ids=["num-workers-two", "no-data-dir", "data-dir-missing"])
def test_bench_entry_point_refuses_bad_arguments_in_one_line(small_data, tmp_path, args, says):
    where = {"data": str(small_data), "missing": str(tmp_path / "nowhere")}
    proc = _bench_cli(*(a.format(**where) for a in args))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last == f"python -m course_lib.bench: error: {says.format(**where)}" or says.format(**where) in last, last


def test_bench_entry_point_runs(small_data, tmp_path):
    """``python -m course_lib.bench`` (the name learners type) measures and writes its JSON."""
    out = tmp_path / "bench.json"
    proc = _bench_cli("--data-dir", str(small_data), "--out", str(out), "--repeat", "1", "--num-workers", "none",
                      "--batch-size", "16", "--no-progress", "--no-regimes", "--no-cold", "--no-frontier",
                      "--only", "no shuffle")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(out.read_text())["rows"]
    assert [r["loader"] for r in rows] == ["mmap no shuffle, batched 16"] and rows[0]["samples_per_s"] > 0
    assert "mmap no shuffle, batched 16" in proc.stdout and f"wrote {out}" in proc.stdout
