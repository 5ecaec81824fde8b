"""Chapter 07's Ray section: what it states about the Ray engine, its leftover-process check, its exercise."""
from __future__ import annotations

import math
import subprocess
import sys
import time

import pytest

from course_lib.measure.conversion_scale import ConversionTimings, cores_to_beat_local
from course_lib.measure.ray_cleanup import ray_leftovers
from course_lib.solutions.ch07_your_own_data import break_even_cores
from data_gen import convert
from data_gen.cli import main as data_gen_main
from data_gen.sample_images import write_sample_image_folder


def test_a_file_that_fails_only_when_decoded_stops_the_ray_conversion_by_name_and_leaves_no_process(tmp_path, capsys):
    """Chapter 07, section 5: "Ray plans before decoding, so a file that only fails when decoded would stop its
    task" (even with --skip-bad, which the local engine honours for the same file): the CLI names the file and
    exits 2, and no Ray process is left."""
    src = write_sample_image_folder(tmp_path / "src", images=12, max_side=60)   # its last file is corrupt
    local = convert(src, tmp_path / "local", formats=["npy"], shard_size=4, skip_bad=True, progress=False,
                    report=None)
    assert local["skipped_count"] == 1
    since = time.time()
    argv = ["convert", str(src), "--out", str(tmp_path / "ray"), "--engine", "ray", "--num-cpus", "2", "--skip-bad",
            "--formats", "npy", "--shard-size", "4", "--no-progress"]
    assert data_gen_main(argv) == 2
    err = capsys.readouterr().err
    assert "found unreadable while decoding" in err and local["skipped"][0]["file"] in err
    assert ray_leftovers(since) == []


def test_leftovers_are_this_process_s_ray_like_children_started_since():
    before = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "ray::IDLE"])
    time.sleep(3)   # create_time is off by up to 1 s (the kernel's boot time is whole seconds): a clear margin
    since = time.time()
    plain = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    ray_like = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "ray::IDLE"])
    try:
        found = ray_leftovers(since)
        assert [line.split(":")[0] for line in found] == [str(ray_like.pid)]   # not the older one, not the plain one
    finally:
        for proc in (before, plain, ray_like):
            proc.kill()
            proc.wait()
    assert ray_leftovers(since) == []


@pytest.mark.parametrize("gap", [0.25, float("nan"), 0.0])
def test_the_exercise_s_closed_form_matches_the_library_s_search(gap):
    for local_s, start in [(4.0, 5.0), (0.06, 6.5), (3.9, 23.6), (40.0, 0.5)]:
        t = ConversionTimings(shards=8, local_s=local_s, ray_start_s=start, ray_tasks_s=1.0, ray_stop_s=1.0,
                              first_task_wait_s=3.0, task_work_s=local_s / 8 * 1.5, task_gap_s=gap, ray_cpus=2,
                              same_bytes=True)
        for shards in (1, 8, 99, 10_000, 1_000_000):
            assert break_even_cores(t, shards) == cores_to_beat_local(t, shards), (local_s, start, shards)
    t = ConversionTimings(shards=8, local_s=4.0, ray_start_s=5.0, ray_tasks_s=1.0, ray_stop_s=1.0,
                          first_task_wait_s=1.0, task_work_s=0.5, task_gap_s=gap, ray_cpus=2, same_bytes=True)
    assert break_even_cores(t, 8) is None and math.isfinite(break_even_cores(t, 10_000))
