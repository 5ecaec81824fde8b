"""``data_gen convert --engine ray``: the same shards and manifest as the local engine, and no Ray left behind."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import psutil
import pytest
import ray  # noqa: E402,F401  (installed by the set-up: an import failure here is a failure, not a skip)

from data_gen import ConvertError, convert, verify
from data_gen.cli import main as data_gen_main
from data_gen.ray_engine import plan_shards
from data_gen.sample_images import write_sample_image_folder


def hashes(manifest: dict) -> dict[str, list[str]]:
    """sha256 of every shard, per format: equal hashes mean byte-for-byte equal files."""
    return {fmt: [e["sha256"] for e in info["shards"]] for fmt, info in manifest["formats"].items()}


def alive(pids: list[int]) -> list[int]:
    """Those of ``pids`` still running (Ray's daemons and workers this conversion started; another Ray on the
    same machine, e.g. a chapter run beside this test, is not ours to count)."""
    return [pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]


def test_plan_skips_known_bad_items_where_they_lie():
    plan, tail = plan_shards(10, {1: "bad", 7: "bad", 8: "bad", 9: "bad"}, shard_size=3)
    assert [(e["start"], e["stop"], e["samples"], e["skipped"]) for e in plan] == [(0, 4, 3, [1]), (4, 7, 3, [])]
    assert tail == {"start": 7, "stop": 10, "skipped": [7, 8, 9]}


STARTUP_TIMEOUT = "The current node timed out during startup. This could happen because some of the raylet failed"


def failing_first_starts(monkeypatch, failures: int) -> list[subprocess.Popen]:
    """ray.init fails ``failures`` times as Ray does when its raylet misses its 30 s (seen under two test suites on
    2 cores), each after starting a process (as a half-started Ray leaves); then the real ray.init runs."""
    real_init, left = ray.init, []

    def init(*args, **kwargs):
        if len(left) < failures:
            left.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"]))
            raise Exception(STARTUP_TIMEOUT)
        return real_init(*args, **kwargs)

    monkeypatch.setattr(ray, "init", init)
    return left


def test_a_ray_start_that_times_out_twice_is_an_error_that_says_so_and_leaves_nothing(tmp_path, monkeypatch):
    src = tmp_path / "arrays"
    src.mkdir()
    np.save(src / "x.npy", np.zeros((8, 1, 2, 2), np.uint8))
    np.save(src / "y.npy", np.arange(8))
    left = failing_first_starts(monkeypatch, failures=2)
    times: dict = {}
    with pytest.raises(RuntimeError, match=r"Ray did not start in 2 attempts .*overloaded"):
        convert(src, tmp_path / "ray", engine="ray", num_cpus=2, formats=["npy"], shard_size=4, timings=times,
                progress=False, report=None)
    assert sorted(times["ray_pids"]) == sorted(p.pid for p in left) and alive(times["ray_pids"]) == []


def test_an_image_folder_converts_to_the_same_bytes_as_locally(tmp_path, monkeypatch):
    src = write_sample_image_folder(tmp_path / "src", images=41, max_side=60)
    next(src.rglob("0040.jpg")).unlink()                       # its one corrupt file (fails only when decoded)
    notes = next(p for p in src.iterdir() if p.is_dir()) / "notes.txt"
    notes.write_text("not an image")                           # known bad from its first bytes
    args = dict(formats=["npy", "img"], shard_size=8, skip_bad=True, progress=False, report=None)
    local = convert(src, tmp_path / "local", **args)
    ray_times: dict = {}
    failed_start = failing_first_starts(monkeypatch, failures=1)   # the first start times out: one more is made
    remote = convert(src, tmp_path / "ray", engine="ray", num_cpus=2, timings=ray_times, **args)
    assert ray_times["start_attempts"] == 2 and failed_start[0].pid in ray_times["ray_pids"]
    assert hashes(remote) == hashes(local) and len(hashes(local)["npy"]) == 5
    assert remote["skipped"] == local["skipped"]
    assert [s["file"] for s in local["skipped"]] == [str(notes.relative_to(src))]
    assert remote["convert"]["plan"] == local["convert"]["plan"] and remote["total_samples"] == 40
    assert verify(tmp_path / "ray") == [] and ray_times["ray_pids"] and alive(ray_times["ray_pids"]) == []


def test_interrupted_ray_conversion_leaves_no_process_and_resumes(tmp_path, monkeypatch):
    src = tmp_path / "arrays"
    src.mkdir()
    rng = np.random.default_rng(0)
    np.save(src / "x.npy", rng.integers(0, 256, (90, 3, 4, 4), dtype=np.uint8))
    np.save(src / "y.npy", np.repeat(np.arange(3), 30))      # sorted by class: converted shuffled
    import data_gen.ray_engine as engine

    calls = []

    def ctrl_c_after_one_shard(out, manifest):
        calls.append(1)
        if len(calls) == 3:   # the initial write, the plan, then the first shard's result: the user presses Ctrl-C
            raise KeyboardInterrupt
        real_write(out, manifest)

    real_write = engine.write_manifest
    monkeypatch.setattr(engine, "write_manifest", ctrl_c_after_one_shard)
    args = dict(formats=["npy", "wds"], shard_size=20, progress=False, report=None)
    interrupted: dict = {}
    with pytest.raises(KeyboardInterrupt):
        convert(src, tmp_path / "ray", engine="ray", num_cpus=2, timings=interrupted, **args)
    assert interrupted["ray_pids"] and alive(interrupted["ray_pids"]) == [], "a Ray process outlived the Ctrl-C"
    monkeypatch.setattr(engine, "write_manifest", real_write)
    local = convert(src, tmp_path / "local", **args)
    resumed = convert(src, tmp_path / "ray", **args)   # the local engine finishes what Ray started: one plan
    assert hashes(resumed) == hashes(local) and verify(tmp_path / "ray") == []
    assert not [p for p in Path("/tmp").glob("dg-ray-*") if p.stat().st_mtime > tmp_path.stat().st_mtime]


def test_a_compressed_npz_is_refused_by_name(tmp_path):
    np.savez_compressed(tmp_path / "a.npz", x=np.zeros((4, 1, 2, 2), np.uint8), y=np.arange(4))
    with pytest.raises(ConvertError, match=r"--engine.*a\.npz.*stream"):
        convert(tmp_path / "a.npz", tmp_path / "out", engine="ray", progress=False, report=None)
    assert not (tmp_path / "out").exists()


def test_bad_engine_arguments_exit_2(tmp_path, capsys):
    src = tmp_path / "arrays"
    src.mkdir()
    np.save(src / "x.npy", np.zeros((4, 1, 2, 2), np.uint8))
    np.save(src / "y.npy", np.arange(4))
    base = ["convert", str(src), "--out", str(tmp_path / "out"), "--no-progress"]
    with pytest.raises(SystemExit) as stop:
        data_gen_main([*base, "--engine", "spark"])
    assert stop.value.code == 2 and "invalid choice: 'spark'" in capsys.readouterr().err
    assert data_gen_main([*base, "--engine", "ray", "--num-cpus", "0"]) == 2
    assert "--num-cpus" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_the_cores_that_beat_one_process_are_the_first_that_do():
    from course_lib.measure.conversion_scale import ConversionTimings, cluster_seconds, cores_to_beat_local

    t = ConversionTimings(shards=8, local_s=4.0, ray_start_s=5.0, ray_tasks_s=4.0, ray_stop_s=1.0, ray_cpus=2,
                          first_task_wait_s=1.0, task_work_s=0.5, task_gap_s=0.25, same_bytes=True)
    assert t.per_shard_s == 0.5 and t.per_task_s == 0.75 and t.fixed_s == 7.0
    for shards in (1, 8, 20, 1000, 20_000):
        local = shards * t.per_shard_s
        brute = next((n for n in range(1, shards + 1) if cluster_seconds(t, shards, n) < local), None)
        assert cores_to_beat_local(t, shards) == brute, shards
    assert cores_to_beat_local(t, 8) is None                          # 7 s of start-up and stop > 4 s of work
