"""The benchmark runs end to end on small data and reports every loader (figures are not asserted)."""
from __future__ import annotations

import json

from course_lib.bench import format_table, main


def test_bench_writes_every_loader_and_ceiling(small_data, tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["--data", str(small_data), "--out", str(out), "--repeat", "1", "--workers", "none,0",
                 "--batch-size", "16", "--no-progress"]) == 0
    result = json.loads(out.read_text())
    assert result["page_cache_mb_per_s"] > 0 and result["samples"] == 103
    loaders = {(r["loader"], r["workers"]) for r in result["rows"]}
    assert len(loaders) == 10 * 2
    for r in result["rows"]:
        assert r["samples_per_s"] > 0 and r["runs"][0]["samples"] > 0
        assert abs(r["ratio_to_page_cache"] - r["mb_per_s"] / result["page_cache_mb_per_s"]) < 1e-9
    assert "of page cache" in capsys.readouterr().out and "mmap block shuffle, batched 16" in format_table(result)
