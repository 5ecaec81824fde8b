"""Issue 13's remaining goals, measured side by side (figures, not a test): JSON lines on stdout.

    PYTHONPATH=. python tools/perf13_measure.py CODE DATA_DIR [PARTS]     (CODE: a label, e.g. before / after)

Parts (comma list, default all):
  workers  - mmap block shuffle batched 256 through DataLoader(batch_size=None, num_workers=N): samples/s (median,
             min-max of 3, runs alternating), main-thread CPU per batch and the share of the time it was busy;
             fresh workers each epoch (what a learner's loop does) and persistent workers
  protocol - DataLoader's per-item protocol alone ({"idx": int} items) and the per-sample mmap path, 0/2/4 workers
  wds      - WebDataset block path, batched 256: no DataLoader and 0/2/4 workers (and torch's transport when the
             code has worker_slots), beside the page-cache read of its files
  frontier - shuffle quality / speed of the batched mmap path (course_lib.measure.shuffle_frontier)
  parallel - the ceiling for workers: N independent processes (no DataLoader, no transport) each gathering its
             1/N of an epoch (rank=i, world_size=N, warm maps), aggregate samples/s beside 1 process
"""
from __future__ import annotations

import inspect
import json
import os
import statistics
import sys
import time
from pathlib import Path

from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from course_lib import MmapShardDataset, make_block_webdataset
from course_lib.measure.page_cache import memcpy_mb_per_s, page_cache_mb_per_s
from course_lib.measure.throughput import touch_pages

WORKERS = tuple(int(w) for w in os.environ.get("PERF_WORKERS", "0,2,4,8").split(","))
REPEAT = 3


def emit(**record) -> None:
    print(json.dumps({**record, "load": round(os.getloadavg()[0], 2)}), flush=True)


def epoch(loader, cap: int | None = None) -> dict:
    """One pass after the first item: samples/s, main-thread CPU per item, share of the wall time it was busy."""
    it = iter(loader)
    touch_pages(next(it))
    samples = items = 0
    c0, t0 = time.thread_time(), time.perf_counter()
    for item in it:
        touch_pages(item)
        y = item.get("y", item.get("idx"))
        samples += 1 if isinstance(y, int) or getattr(y, "ndim", 1) == 0 else len(y)
        items += 1
        if cap and samples >= cap:
            break
    wall, cpu = time.perf_counter() - t0, time.thread_time() - c0
    del it
    return {"samples_per_s": samples / wall, "main_us_per_item": 1e6 * cpu / items, "main_busy": cpu / wall}


def summary(runs: list[dict]) -> dict:
    rates = [r["samples_per_s"] for r in runs]
    return {"samples_per_s": round(statistics.median(rates)), "min": round(min(rates)), "max": round(max(rates)),
            "main_us_per_item": round(statistics.median(r["main_us_per_item"] for r in runs), 1),
            "main_busy": round(statistics.median(r["main_busy"] for r in runs), 2)}


def compare(code: str, part: str, makers: dict, cap: int | None = None, persistent: bool = False) -> None:
    """Every maker measured REPEAT times in alternating order; one line each with the ratio to the first.
    ``persistent``: each loader is made once and warmed by one epoch (workers started, rings announced)."""
    kept = {k: make() for k, make in makers.items()} if persistent else {}
    for loader in kept.values():
        epoch(loader, cap)
    runs: dict = {k: [] for k in makers}
    for r in range(REPEAT):
        for k in (list(makers) if r % 2 == 0 else list(makers)[::-1]):
            runs[k].append(epoch(kept[k] if persistent else makers[k](), cap))
    base = statistics.median(x["samples_per_s"] for x in runs[next(iter(makers))])
    for k in makers:
        s = summary(runs[k])
        emit(code=code, part=part, mode="persistent" if persistent else "fresh", loader=k, **s,
             of_first=round(s["samples_per_s"] / base, 2))


def through(make_ds, w, **kw):
    return lambda: make_ds() if w is None else DataLoader(make_ds(), batch_size=None, num_workers=w, **kw)


def workers(code: str, data: Path) -> None:
    def make(w: int, persistent: bool):
        return lambda: DataLoader(MmapShardDataset(data, shuffle="block", batch_size=256), batch_size=None,
                                  num_workers=w, persistent_workers=persistent and w > 0)
    for persistent in (False, True):
        compare(code, "workers", {f"mmap block batched 256, {w} workers": make(w, persistent) for w in WORKERS},
                persistent=persistent)


class ProtocolItems(IterableDataset):
    def __init__(self, n: int):
        self.n = n

    def __iter__(self):
        info = get_worker_info()
        w, k = (info.id, info.num_workers) if info else (0, 1)
        return ({"idx": i} for i in range(w, self.n, k))


def protocol(code: str, data: Path) -> None:
    counts = (0, 2, 4)
    compare(code, "protocol", {f"{{'idx': int}} items, {w} workers": through(lambda: ProtocolItems(40000), w)
                               for w in counts}, cap=10000)
    compare(code, "protocol", {f"mmap block shuffle per sample, {w} workers": through(
        lambda: MmapShardDataset(data, shuffle="block"), w) for w in counts}, cap=10000)


def wds(code: str, data: Path) -> None:
    paths = sorted((data / "wdsb").glob("*.tar"))
    ceiling = page_cache_mb_per_s(paths)
    emit(code=code, part="wds", ceiling_page_cache_mb_per_s=round(ceiling), memcpy_mb_per_s=round(memcpy_mb_per_s()))
    makers = {f"wds blocks batched 256, {'no DataLoader' if w is None else f'{w} workers'}": through(
        lambda: make_block_webdataset(data, batch_size=256), w) for w in (None, 0, 2, 4)}
    if "worker_slots" in inspect.signature(make_block_webdataset).parameters:
        makers["wds blocks batched 256, 2 workers, torch's transport"] = through(
            lambda: make_block_webdataset(data, batch_size=256, worker_slots=0), 2)
    compare(code, "wds", makers)
    print(json.dumps({"note": f"12,304 B per sample: of page cache = samples/s * 12304 / 1e6 / {ceiling:.0f}"}))


def frontier(code: str, data: Path) -> None:
    from course_lib.measure.shuffle_frontier import FRONTIER_SETTINGS, measure_shuffle_frontier

    settings = {**FRONTIER_SETTINGS, "block, runs of 8": {"shuffle": "block", "run_length": 8},
                "block, runs of 32": {"shuffle": "block", "run_length": 32}}
    ceiling = page_cache_mb_per_s(sorted((data / "npy").glob("*.npy")))
    emit(code=code, part="frontier", ceiling_page_cache_mb_per_s=round(ceiling))
    for row in measure_shuffle_frontier(data, repeat=REPEAT, settings=settings):
        emit(code=code, part="frontier", setting=row["setting"], neighbours=round(row["neighbours"], 3),
             displacement=round(row["displacement"], 3), samples_per_s=round(row["samples_per_s"]),
             of_page_cache=round(row["samples_per_s"] * 12304 / 1e6 / ceiling, 2))


def _gather_share(data: Path, rank: int, world: int, barrier, ends) -> None:
    ds = MmapShardDataset(data, shuffle="block", batch_size=256, rank=rank, world_size=world)
    for batch in ds:                          # epoch 0: maps opened and faulted, like a persistent worker
        touch_pages(batch)
    ds.set_epoch(1)
    barrier.wait()
    n = 0
    for batch in ds:
        touch_pages(batch)
        n += len(batch["y"])
    ends.put((time.perf_counter(), n))


def parallel(code: str, data: Path) -> None:
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    runs: dict = {n: [] for n in WORKERS if n > 0}
    for r in range(REPEAT):
        for n in (list(runs) if r % 2 == 0 else list(runs)[::-1]):
            barrier, ends = ctx.Barrier(n + 1), ctx.Queue()
            procs = [ctx.Process(target=_gather_share, args=(data, i, n, barrier, ends)) for i in range(n)]
            for p in procs:
                p.start()
            barrier.wait()
            t0 = time.perf_counter()
            got = [ends.get() for _ in procs]
            for p in procs:
                p.join()
            runs[n].append(sum(k for _, k in got) / (max(t for t, _ in got) - t0))
    base = statistics.median(runs[min(runs)])
    for n, rates in runs.items():
        emit(code=code, part="parallel", loader=f"{n} independent processes, no DataLoader",
             samples_per_s=round(statistics.median(rates)), min=round(min(rates)), max=round(max(rates)),
             of_first=round(statistics.median(rates) / base, 2))


def prefetch(code: str, data: Path) -> None:
    """Persistent workers with more batches in flight per worker (prefetch_factor, slots to match) and
    out-of-order delivery (default worker_slots: the rings grow to what is in flight)."""
    def make(w: int, factor: int, in_order: bool):
        return lambda: DataLoader(MmapShardDataset(data, shuffle="block", batch_size=256),
                                  batch_size=None, num_workers=w, persistent_workers=True, prefetch_factor=factor,
                                  in_order=in_order)
    for w in (n for n in WORKERS if n >= 2):
        compare(code, "prefetch", {f"{w} workers, prefetch_factor {f}{'' if o else ', in_order=False'}": make(w, f, o)
                                   for f, o in ((2, True), (4, True), (8, True), (2, False), (4, False))},
                persistent=True)


def main() -> int:
    code, data = sys.argv[1], Path(sys.argv[2])
    parts = sys.argv[3].split(",") if len(sys.argv) > 3 else ["workers", "protocol", "wds", "frontier"]
    emit(code=code, cores=os.cpu_count())
    for part in parts:
        t0 = time.perf_counter()
        globals()[part](code, data)
        print(f"# {code} {part}: {time.perf_counter() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
