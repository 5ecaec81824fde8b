"""The course's figures on a GPU machine (16 cores): workers, decode-bound JPEG, and a GPU training step fed.

Run by tools/gpu_check.sh; writes JSON lines to OUT/gpu_figures.jsonl and prints them. Three parts:
  workers  - the batched mmap path through DataLoader(batch_size=None, num_workers=N), N in 0..16, median of 3
  regimes  - chapter 05's copy-bound vs decode-bound loaders at each worker count (no peers: not installed there)
  feed     - a small CNN trained on the GPU from each loader (pinned+prefetch): share of step time waiting for data
    python tools/gpu_measure.py OUT DATA_DIR
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

from torch.utils.data import DataLoader

from course_lib import MmapShardDataset, measure_throughput
from course_lib.loaders.device_transfer import DeviceLoader, default_device
from course_lib.loaders.image_pipeline import ImageShardDataset
from course_lib.measure.regime_runs import measure_specs
from course_lib.measure.regimes import course_specs, image_data
from course_lib.measure.training_step import TrainingStep, data_wait

WORKERS = tuple(int(w) for w in os.environ.get("GPU_WORKERS", "0,1,2,4,8,16").split(","))
IMAGES = int(os.environ.get("GPU_IMAGES", "8192"))


def emit(out: Path, record: dict) -> None:
    line = json.dumps(record)
    print(line, flush=True)
    with open(out / "gpu_figures.jsonl", "a") as f:
        f.write(line + "\n")


def workers(out: Path, data_dir: Path) -> None:
    for shuffle in ("block", "none"):
        order = [None, *WORKERS]
        runs: dict = {w: [] for w in order}
        for r in range(3):
            for w in (order if r % 2 == 0 else order[::-1]):
                ds = MmapShardDataset(data_dir, shuffle=shuffle, batch_size=256)
                loader = ds if w is None else DataLoader(ds, batch_size=None, num_workers=w)
                runs[w].append(measure_throughput(loader, bytes_per_sample=ds.bytes_per_sample, warmup=1,
                                                  progress=False).samples_per_s)
        base = statistics.median(runs[0])
        for w in order:
            emit(out, {"part": "workers", "loader": f"mmap {shuffle} shuffle, batched 256",
                       "num_workers": w, "samples_per_s": round(statistics.median(runs[w])),
                       "min": round(min(runs[w])), "max": round(max(runs[w])),
                       "of_0_workers": round(statistics.median(runs[w]) / base, 2)})


def regimes(out: Path, data_dir: Path) -> Path:
    image_dir = image_data(data_dir, samples=IMAGES, shard_size=256)
    rows = measure_specs(course_specs(image_dir, batch_size=64, crop_size=64), WORKERS, repeats=3, max_seconds=1.0,
                         step=TrainingStep("busy", 20.0), wait_workers=tuple(w for w in (0, 4, 16) if w in WORKERS))
    for row in rows:
        emit(out, {"part": "regimes", "label": row["label"], "samples_per_s": round(row["samples_per_s"]),
                   "min": round(row["min"]), "max": round(row["max"]), "start_s": round(row["start_s"], 2),
                   "wait_fraction_busy20ms": row.get("data_wait", {}).get("fraction")})
    return image_dir


def feed(out: Path, data_dir: Path, image_dir: Path) -> None:
    makers = {
        "raw mmap block batched 256": lambda: MmapShardDataset(data_dir, batch_size=256),
        "JPEG decode at crop size + batch transform, 256": lambda: ImageShardDataset(image_dir, batch_size=256),
    }
    for name, make in makers.items():
        for w in (w for w in (0, 4, 8, 16) if w in WORKERS):
            loader = DeviceLoader(DataLoader(make(), batch_size=None, num_workers=w), default_device())
            t0 = time.perf_counter()
            waited = data_wait(loader, TrainingStep("cnn"), batches=24, label=name)  # warm-up: every worker
            emit(out, {"part": "feed", "loader": name, "num_workers": w, "step": f"small CNN on {default_device()}",
                       "wait_fraction": round(waited.fraction, 3), "samples_per_s": round(waited.samples_per_s),
                       "step_ms": round(1000 * waited.step_s / waited.batches, 2),
                       "seconds": round(time.perf_counter() - t0, 1)})


def main() -> int:
    out, data_dir = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    workers(out, data_dir)
    print(f"# workers part: {time.perf_counter() - t0:.0f} s", flush=True)
    image_dir = regimes(out, data_dir)
    print(f"# regimes part: {time.perf_counter() - t0:.0f} s", flush=True)
    feed(out, data_dir, image_dir)
    print(f"# total: {time.perf_counter() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
