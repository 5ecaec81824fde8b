"""measure_throughput counting and honesty; verification records; memory accounting; naive loaders."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from course_lib import MmapShardDataset, measure_throughput, start_chapter, verification_checkpoint
from course_lib.course import load_records
from course_lib.course.tables import results_table
from course_lib.measure import memory_snapshot
from course_lib.measure.throughput import SEED_BAR, ThroughputResult, count_samples_in, touch_pages
from course_lib.teaching.naive import (
    SEED_STREAMING_SOURCE,
    LoadAllDataset,
    PerSampleFileDataset,
    SeedStreamingDataset,
    exec_seed_code,
    export_per_sample_files,
)


def batches(sizes, width=10):
    for n in sizes:
        yield {"x": torch.zeros(n, width, dtype=torch.uint8), "y": torch.zeros(n, dtype=torch.int64)}


def test_counts_batches_by_leading_dimension_and_skips_warmup():
    r = measure_throughput(batches([4, 8, 8, 3]), warmup=1, progress=False)
    assert (r.samples, r.items, r.warmup_items) == (19, 3, 1)
    assert r.bytes_per_sample == 10 + 8
    assert r.samples_per_s == pytest.approx(19 / r.seconds)
    assert r.mb_per_s == pytest.approx(19 * 18 / r.seconds / 1e6)


def test_counts_single_samples_of_every_shape():
    items = [{"x": np.zeros(3), "y": 1}, (np.zeros(3), np.int64(2)), {"x": torch.zeros(2), "y": torch.tensor(3)}]
    assert [count_samples_in(i) for i in items] == [1, 1, 1]
    r = measure_throughput(iter([{"x": np.zeros(5, np.uint8), "y": k} for k in range(10)]), warmup=2, progress=False)
    assert r.samples == 8 and r.bytes_per_sample == 5


def test_max_samples_stops_early():
    r = measure_throughput(batches([5] * 100), warmup=0, max_samples=12, progress=False)
    assert r.samples == 15 and r.items == 3


def test_the_clock_stops_at_the_last_item_not_after_the_iterators_clean_up(monkeypatch):
    """A DataLoader's iterator joins its workers when it ends (~27 ms of a 0.15 s run); a loader that keeps its
    iterator (torchdata's StatefulDataLoader) does not: that clean-up made a plain DataLoader read 1.2x slower
    than the same dataset under StatefulDataLoader (issue 22 item 16). A fake clock: 1 s per item, 100 s to end."""
    import course_lib.measure.throughput as throughput

    clock = [0.0]
    monkeypatch.setattr(throughput.time, "perf_counter", lambda: clock[0])

    def ends_slowly():
        try:
            for batch in batches([4] * 6):
                clock[0] += 1.0
                yield batch
        finally:
            clock[0] += 100.0  # the workers' join, when the loop lets go of the iterator

    r = measure_throughput(ends_slowly(), warmup=1, progress=False)
    assert (r.items, r.samples) == (5, 20)
    assert r.seconds == 5.0 and r.samples_per_s == 4.0


def test_refuses_zero_samples():
    with pytest.raises(ValueError, match="no samples measured"):
        measure_throughput(batches([4]), warmup=1, progress=False)
    with pytest.raises(ValueError, match="no samples measured"):
        measure_throughput(iter([]), warmup=0, progress=False)


def test_uncountable_items_are_refused():
    with pytest.raises(TypeError, match="cannot count"):
        measure_throughput(iter([{"image": np.zeros(2)}]), warmup=0, progress=False)


def test_touch_reads_one_byte_per_page():
    data = np.zeros(3 * 4096, dtype=np.uint8)
    data[::4096] = 1
    assert touch_pages({"x": data, "y": 3}) == 3
    assert touch_pages((torch.from_numpy(data),)) == 3


@pytest.mark.parametrize("pages", [0, 1, 3, 16, 17, 100])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32, torch.bfloat16])
def test_touch_reads_the_first_byte_of_every_page_of_a_tensor(pages, dtype):
    """Small tensors are read by address, large ones through numpy: both read the same bytes, any dtype."""
    raw = torch.randint(1, 256, (pages * 4096 + 8,), dtype=torch.uint8)   # a partial last page too
    tensor = raw.view(dtype)
    expected = int(raw[::4096].sum())
    assert touch_pages({"x": tensor, "y": 1}) == expected
    assert touch_pages({"x": tensor.clone().requires_grad_(dtype.is_floating_point)}) == expected
    if tensor.numel() > 2:
        assert touch_pages({"x": tensor[::2]}) == 0                        # not contiguous: not touched


def test_anonymous_memory_growth_is_seen_and_mmap_pages_are_file_backed(small_data, tmp_path):
    size_mb = 64 * 2**20 / 1e6
    big = tmp_path / "big.npy"
    np.save(big, np.ones(64 << 20, dtype=np.uint8))

    def load_everything():
        yield {"x": np.load(big), "y": 0}       # 64 MiB of heap

    def map_everything():
        arr = np.load(big, mmap_mode="r")
        yield {"x": arr, "y": 0}                   # 64 MiB of mapped file pages, touched

    loaded = measure_throughput(load_everything(), warmup=0, progress=False)
    mapped = measure_throughput(map_everything(), warmup=0, progress=False)
    # the loaded array is on the heap; the mapped one is page cache: each growth is most of the array's size
    assert loaded.anon_growth_mb >= 0.9 * size_mb, loaded
    assert mapped.file_growth_mb >= 0.9 * size_mb, mapped
    assert mapped.anon_growth_mb < 0.25 * size_mb < loaded.anon_growth_mb - mapped.anon_growth_mb, mapped


def test_verification_record_fields(tmp_path, small_data):
    start_chapter("99_test")
    result = measure_throughput(MmapShardDataset(small_data, batch_size=10), progress=False, label="mmap")
    rec = verification_checkpoint("99_test", data_dir=small_data, results=[result], out_dir=tmp_path,
                                  notes={"num_workers": 0})
    saved = json.loads((tmp_path / rec["path"].split("/")[-1]).read_text())
    for key in ("timestamp", "python", "os", "cpu_count", "memory_total_mb", "memory_available_mb", "backend",
                "packages", "data_path", "data_bytes", "runtime_s", "results"):
        assert key in saved, key
    assert saved["backend"] == (f"cuda: {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "cpu")
    assert saved["packages"]["numpy"] == np.__version__ and saved["packages"]["torch"] == torch.__version__
    assert saved["data_bytes"] == sum(p.stat().st_size for p in small_data.rglob("*") if p.is_file())
    assert saved["runtime_s"] > 0
    r = saved["results"][0]
    assert r["label"] == "mmap" and r["samples"] == result.samples and r["seed_bar_samples_per_s"] == SEED_BAR
    assert r["clears_seed_bar"] == (result.samples_per_s >= SEED_BAR)
    assert f"{result.samples_per_s / SEED_BAR:,.1f}x the seed's {SEED_BAR:,.0f} samples/s" in str(rec)
    assert "<table>" in rec._repr_html_()
    verification_checkpoint("99_other", data_dir=small_data, results={"m": result}, out_dir=tmp_path)
    assert [x["chapter"] for x in load_records(tmp_path)] == ["99_test", "99_other"]
    assert len(load_records(tmp_path, chapter="99_test")) == 1


def test_verification_refuses_typed_in_numbers(tmp_path, small_data):
    with pytest.raises(TypeError, match="measure_throughput"):
        verification_checkpoint("x", data_dir=small_data, results=[{"samples_per_s": 1e9}], out_dir=tmp_path)


def _made_up(label: str, rate: float, mb_per_s: float = 1.0) -> ThroughputResult:
    return ThroughputResult(label=label, samples=int(rate), seconds=1.0, bytes_per_sample=mb_per_s * 1e6 / rate,
                            items=1, warmup_items=0, warmup_seconds=0.0, start_anon_mb=0, start_file_mb=0,
                            peak_anon_mb=0, peak_file_mb=0)


def test_record_rows_tell_the_results_apart(tmp_path, small_data):
    rec = verification_checkpoint("99_bar", data_dir=small_data,
                                  results=[_made_up("fast", 4000), _made_up("slow", 1000)],
                                  out_dir=tmp_path)
    text = str(rec)
    assert "1.00 of this chapter's fastest; 8.0x the seed's 500 samples/s" in text
    assert "0.25 of this chapter's fastest; 2.0x the seed's 500 samples/s" in text


def test_results_table_ratios_discriminate():
    rows = results_table([_made_up("a", 3000, 300.0), _made_up("b", 1000, 100.0)], ceiling_mb_s=600.0,
                         demand_samples_s=2000.0).rows
    assert [r[6:] for r in rows] == [["1.00", "50%", "1.5"], ["0.33", "17%", "0.5"]]
    assert results_table([_made_up("a", 3000)]).header[-1] == "vs fastest"


def test_memory_snapshot_sees_a_heap_allocation():
    before = memory_snapshot(include_children=False)
    held = np.ones(32 << 20, dtype=np.uint8)              # 32 MiB of touched heap
    after = memory_snapshot(include_children=False)
    assert after.anon_mb - before.anon_mb >= 0.9 * held.nbytes / 1e6, (before, after)
    assert after.rss_mb >= after.anon_mb


# -- naive loaders (for teaching) ------------------------------------------------------------------
def test_seed_code_as_printed_fails_like_the_chapter_says(small_data):
    ns = exec_seed_code()
    with pytest.raises(NameError, match="Path"):
        ns["StreamingDataset"](str(small_data / "npy"))
    ns["Path"] = __import__("pathlib").Path
    with pytest.raises(AttributeError, match="read_array_header"):
        len(ns["StreamingDataset"](str(small_data / "npy")))
    assert "np.random.permutation" in SEED_STREAMING_SOURCE


def test_seed_dataset_duplicates_samples_with_workers(small_data):
    ds = SeedStreamingDataset(small_data / "npy")
    assert len(ds) == 103
    once = [int(r["idx"]) for r in ds]
    assert sorted(once) == list(range(103))
    with_workers = [int(r["idx"]) for r in DataLoader(ds, batch_size=None, num_workers=2,
                                                       collate_fn=lambda r: r)]
    assert len(with_workers) == 2 * 103 and sorted(set(with_workers)) == list(range(103))


def test_seed_records_copied_into_tensors_match_the_data_and_collate(small_data):
    from course_lib.teaching.naive import SeedStreamingTensors

    everything = LoadAllDataset(small_data)
    samples = list(SeedStreamingTensors(small_data / "npy"))
    assert sorted(s["idx"] for s in samples) == list(range(103))
    for s in samples[:5]:
        assert isinstance(s["x"], torch.Tensor) and s["x"].is_contiguous()
        np.testing.assert_array_equal(s["x"].numpy(), everything[s["idx"]]["x"])
        assert s["y"] == int(everything[s["idx"]]["y"])
    s["x"][:] = 0                                     # a copy: writing to it cannot reach the file
    assert np.load(SeedStreamingTensors(small_data / "npy").shards[0], mmap_mode="r")["x"].any()
    batch = next(iter(DataLoader(SeedStreamingTensors(small_data / "npy"), batch_size=8)))
    assert batch["x"].shape[0] == 8 and batch["idx"].shape == (8,)


def test_load_all_and_per_sample_files(small_data, tmp_path):
    everything = LoadAllDataset(small_data)
    assert len(everything) == 103 and everything[7]["idx"] == 7
    export_per_sample_files(small_data, tmp_path / "files", limit=30)
    files = PerSampleFileDataset(tmp_path / "files")
    assert len(files) == 30
    assert files[29]["idx"] == 29
    np.testing.assert_array_equal(files[5]["x"], everything[5]["x"])
    with pytest.raises(FileNotFoundError, match="no sample_"):
        PerSampleFileDataset(tmp_path)


def test_a_run_below_the_minimum_duration_or_sample_count_is_flagged_and_not_compared():
    """Issue 22 item 15: a run of a few ms or a few hundred samples is flagged and `versus` concludes nothing."""
    batches = [{"x": np.zeros((8, 4), np.uint8), "y": np.arange(8)} for _ in range(20)]
    short = measure_throughput(batches, warmup=1, progress=False, repeat=3)
    assert short.samples == 19 * 8 and short.too_short and short.as_dict()["too_short"]
    assert short.versus(short) == "too short to compare" and "too short" in str(short)
    long_enough = measure_throughput(batches, warmup=1, progress=False, min_seconds=0.0, min_samples=152)
    assert not long_enough.too_short
    assert long_enough.versus(long_enough) == "within noise"
    assert ThroughputResult.from_dict(short.as_dict()).too_short
