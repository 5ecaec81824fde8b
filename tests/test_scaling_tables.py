"""Chapter 06's plan on paper: which layouts break the latency rule, and the plan split into narrow tables."""
from __future__ import annotations

import pytest

from course_lib.course.scaling_tables import scaling_table
from course_lib.distributed.scaling import StoreTiming, scaling_rows


def _rows():
    timing = StoreTiming("t", (0.01,), (100.0,), 1)     # smallest shard within 10 %: 9 MB
    return scaling_rows([(1, 1), (8, 8)], num_workers=2, timing=timing, dataset_samples=10_000,
                        bytes_per_sample=10_000, shards=16, demand_samples_per_s=1000)   # 100 MB: at most 11 shards


def test_a_layout_with_more_readers_than_shards_can_be_is_flagged():
    small, big = _rows()
    assert small["latency within rule"] and small["latency share"] <= 0.1 + 1e-9
    assert not big["latency within rule"] and big["latency share"] > 0.1      # 128 readers need 128 shards of 0.8 MB


def test_scaling_table_shows_the_columns_asked_for_and_names_unknown_ones():
    rows = _rows()
    table = scaling_table(rows, columns=["layout", "shard MB", "latency within rule"])
    text = str(table)
    assert "latency within rule" in text and "readers" not in text and "no" in text and "yes" in text
    assert len(str(scaling_table(rows)).splitlines()[0].split("  ")) > 3     # all columns by default
    with pytest.raises(KeyError, match="no column"):
        scaling_table(rows, columns=["layout", "nope"])
