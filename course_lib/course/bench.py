"""Loader benchmark: every loading strategy on one dataset, side by side in one run (figures, not a test).

    python -m course_lib.bench --data-dir build/data --out build/bench.json [--repeat 3] [--max-samples N]

Prints samples/s (median and min-max of ``--repeat`` runs), MB/s, whether each row ran on a warm or cold page
cache, and the ratio to two ceilings measured in the same run: the page-cache read of the same files (a
system call and a kernel copy per chunk: an mmap gather can beat it) and a warm memcpy (one copy of bytes
already in RAM: the real limit of a loader that copies each batch once). Then the cold-cache runs (each
loader right after eviction, against a cold sequential read) and the shuffle quality / speed frontier.
Writes everything as JSON. Then chapter 05's regimes (unless ``--no-regimes``): raw vs JPEG at each worker
count on an image dataset generated beside ``--data-dir``, and the peer libraries (litdata, HF datasets,
torchdata, webdataset), each in its own subprocess; a peer that fails is a row saying why.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterable, NamedTuple

from torch.utils.data import DataLoader, IterableDataset

from data_gen.layout import EXTENSIONS, WDS, format_dir, shard_glob

from ..loaders.cli_args import add_data_dir_argument, add_num_workers_argument
from ..loaders.image_tars import make_image_webdataset
from ..loaders.mmap_shards import MmapShardDataset
from ..loaders.runtime import current_worker
from ..loaders.shard_index import index_shards
from ..loaders.webdataset_pipeline import make_block_webdataset, make_webdataset, shard_urls
from ..measure.cold_cache import cold_runs
from ..measure.page_cache import memcpy_mb_per_s, page_cache_mb_per_s
from ..measure.peer_runner import PEER_LIBRARIES, run_peers
from ..measure.regime_runs import measure_specs
from ..measure.regimes import course_specs, image_data, regime_goals
from ..measure.shuffle_frontier import measure_shuffle_frontier
from ..measure.throughput import measure_throughput
from ..measure.training_step import TrainingStep
from ..teaching.naive import (
    LoadAllDataset,
    PerSampleFileDataset,
    SeedStreamingDataset,
    SeedStreamingTensors,
    export_per_sample_files,
)
from .bench_table import format_table
from .verification import backend, package_versions

SLOW_CAP = 10_000  # samples measured per run for per-sample tar/file loaders and per-sample rows with workers


def _identity(item):
    return item


class ProtocolItems(IterableDataset):
    """``{"idx": i}`` for ``i`` in ``range(n)``, split across DataLoader workers, no data at all: what the
    DataLoader's own per-item protocol costs (an index sent to a worker, a result pickled back, a profiler
    record), the bound on any loader that sends one sample per item through workers."""

    def __init__(self, n: int):
        self.n = int(n)

    def __iter__(self):
        worker, workers = current_worker()
        return ({"idx": i} for i in range(worker, self.n, workers))


def stock_webdataset(data_dir: Path):
    """The seed chapter's pipeline shape, as webdataset's README writes it (its decoders can unpickle)."""
    import webdataset as wds

    urls = shard_urls(data_dir, WDS)
    return (wds.WebDataset(urls, shardshuffle=False, empty_check=False).shuffle(1000).decode()
            .to_tuple("x.npy", "cls", "idx"))


class Loader(NamedTuple):
    """A compared loader: ``make(num_workers)`` builds it (None: no DataLoader); ``full`` lists the worker
    settings fast enough to time over whole epochs (None: all), the others are capped at ``SLOW_CAP`` samples;
    ``needs`` names the data_gen formats it reads (a dataset without one of them skips it, saying why)."""

    make: Callable[[int | None], Iterable]
    full: tuple[int | None, ...] | None
    needs: tuple[str, ...] = ("npy",)


def available_formats(data_dir: Path) -> set[str]:
    """The format folders of ``data_dir`` that hold shards (a converted dataset may have only some)."""
    return {fmt for fmt in EXTENSIONS if any(format_dir(data_dir, fmt).glob(shard_glob(fmt)))}


def loaders(data_dir: Path, files_dir: Path, batch_size: int, peers_dir: Path | None = None) -> dict[str, Loader]:
    """Every loader compared, by name (peer libraries only when installed and ``peers_dir`` is given)."""
    def through(make_ds, full, needs=("npy",), **kw) -> Loader:
        def factory(num_workers):
            ds = make_ds()
            if num_workers is None:
                return ds
            return DataLoader(ds, batch_size=None, num_workers=num_workers, **kw)
        return Loader(factory, full, needs)

    per_sample_fast = (None, 0)
    return {
        "load everything (RAM)": through(lambda: LoadAllDataset(data_dir), (None,)),
        "one file per sample": through(lambda: PerSampleFileDataset(files_dir), ()),
        "seed pattern (sample shuffle, np.void)": through(
            lambda: SeedStreamingDataset(index_shards(data_dir).shard_dir), per_sample_fast, collate_fn=_identity),
        "seed pattern, copied into tensors": through(lambda: SeedStreamingTensors(index_shards(data_dir).shard_dir),
                                                     per_sample_fast),
        "mmap sample shuffle, per sample": through(lambda: MmapShardDataset(data_dir, shuffle="sample"),
                                                   per_sample_fast),
        "mmap block shuffle, per sample": through(lambda: MmapShardDataset(data_dir, shuffle="block"), per_sample_fast),
        f"mmap block shuffle, per sample, DataLoader collates {batch_size}": Loader(
            lambda w: DataLoader(MmapShardDataset(data_dir, shuffle="block"), batch_size=batch_size,
                                 num_workers=w or 0), (0,)),
        f"mmap block shuffle, batched {batch_size}": through(lambda: MmapShardDataset(data_dir, shuffle="block",
                                                                                      batch_size=batch_size),
                                                             None),
        f"mmap no shuffle, batched {batch_size}": through(lambda: MmapShardDataset(data_dir, shuffle="none",
                                                                                   batch_size=batch_size),
                                                          None),
        "webdataset stock (shuffle 1000, decode)": through(lambda: stock_webdataset(data_dir), (), ("wds",),
                                                           collate_fn=_identity),
        "webdataset make_webdataset (per sample)": through(lambda: make_webdataset(data_dir), (), ("wds",)),
        f"webdataset blocks, batched {batch_size}": through(lambda: make_block_webdataset(data_dir,
                                                                                         batch_size=batch_size),
                                                            None, ("wdsb",)),
        "DataLoader per-item protocol ({'idx': int}, no data)": through(
            lambda: ProtocolItems(len(index_shards(data_dir))), per_sample_fast, ()),
        f"webdataset JPEG/PNG decode, batched {batch_size}": through(
            lambda: make_image_webdataset(data_dir, batch_size=batch_size), (), ("img",)),
    }  # peer libraries: measured in their own subprocesses by run_regimes (litdata switches to spawn)


def run_regimes(data_dir: Path, peers_dir: Path, *, workers: Iterable[int], repeat: int = 3, run_seconds: float = 1.0,
                batch_size: int = 64, crop_size: int = 64, step_ms: float = 20.0,
                peer_libraries: Iterable[str] = PEER_LIBRARIES, progress: bool = True,
                image_args: dict | None = None) -> dict:
    """Chapter 05's measurements: copy-bound vs decode-bound at each worker count, then every peer library.
    ``image_args`` (samples, shard_size, shape, jpeg_quality) size the image dataset written beside ``data_dir``."""
    image_dir = image_data(data_dir, progress=progress, **(image_args or {}))
    counts = sorted(set(workers))
    step = TrainingStep("busy", step_ms)
    rows = measure_specs(course_specs(image_dir, batch_size=batch_size, crop_size=crop_size), counts,
                         repeats=repeat, max_seconds=run_seconds, step=step, wait_workers=counts, progress=progress)
    peers = run_peers(image_dir, peers_dir, libraries=list(peer_libraries), worker_counts=counts, repeats=repeat,
                      max_seconds=run_seconds, batch_size=batch_size, crop_size=crop_size, step_ms=step_ms,
                      wait_workers=counts, progress=progress)
    return {"image_dir": str(image_dir), "rows": rows, "peer_rows": peers["rows"], "failed": peers["failed"],
            "order": peers["order"], "timings": peers["timings"], "peer_seconds": peers["seconds"],
            "goals": regime_goals(rows + peers["rows"], cores=len(os.sched_getaffinity(0)),
                                  load=os.getloadavg()[0])}


def run(data_dir: Path, *, repeat: int = 3, num_workers: Iterable[int | None] = (None, 0, 2), batch_size: int = 256,
        max_samples: int | None = None, per_sample_files: int = 5000, progress: bool = True,
        only: str | None = None, peers_dir: Path | None = None, regimes: bool = False, run_seconds: float = 1.0,
        peer_libraries: Iterable[str] = PEER_LIBRARIES, image_args: dict | None = None, cold: bool = True,
        frontier: bool = True) -> dict:
    """Measure every loader x worker setting ``repeat`` times; return the JSON-ready table.

    ``only`` keeps the loaders whose name contains it. With ``regimes`` (and no ``only``), chapter 05's
    regimes and peer libraries too (:func:`run_regimes`), peers converting into ``peers_dir``
    (default: ``peers/`` beside ``data_dir``).
    """
    index = index_shards(data_dir)
    ceiling = page_cache_mb_per_s(index.paths)
    ceiling_1m = page_cache_mb_per_s(index.paths, chunk=1 << 20)
    memcpy = memcpy_mb_per_s()
    rows, skipped, have = [], [], available_formats(data_dir)
    with tempfile.TemporaryDirectory() as tmp:
        files_dir = export_per_sample_files(data_dir, Path(tmp) / "files", limit=per_sample_files)
        peers_dir = Path(data_dir).resolve().parent / "peers" if peers_dir is None else peers_dir
        for name, spec in loaders(data_dir, files_dir, batch_size, peers_dir).items():
            if only and only not in name:
                continue
            if set(spec.needs) - have:
                lacking = ", ".join(sorted(set(spec.needs) - have))
                skipped.append(f"{name}: needs the {lacking} format, which {data_dir} does not have "
                               f"(write it with --formats ...,{lacking})")
                continue
            for w in num_workers:
                if w is None and "DataLoader collates" in name:
                    continue
                label = f"{name} [{'no DataLoader' if w is None else f'DataLoader, {w} workers'}]"
                loader = spec.make(w)  # one object, iterated `repeat` times: like epochs of one training run
                whole = spec.full is None or w in spec.full
                cap = max_samples if whole else min(max_samples or SLOW_CAP, SLOW_CAP)
                per_sample = index.bytes_per_sample if spec.needs else 0   # no data read: no MB/s
                runs = [measure_throughput(loader, bytes_per_sample=per_sample, warmup=1,
                                           max_samples=cap, progress=progress, label=label)
                        for _ in range(repeat)]
                sps = statistics.median(r.samples_per_s for r in runs)
                mbps = statistics.median(r.mb_per_s for r in runs)
                rows.append({"loader": name, "workers": w, "samples_per_s": sps, "mb_per_s": mbps,
                             "samples_per_s_min": min(r.samples_per_s for r in runs),
                             "samples_per_s_max": max(r.samples_per_s for r in runs),
                             "cache": "/".join(sorted({r.cache for r in runs})),
                             "ratio_to_page_cache": mbps / ceiling, "ratio_to_memcpy": mbps / memcpy,
                             "runs": [r.as_dict() for r in runs]})
                if progress:
                    print(f"  {label}: {sps:,.0f} samples/s, {mbps:,.0f} MB/s", file=sys.stderr)
    result = {"data": str(data_dir), "samples": len(index), "bytes_per_sample": index.bytes_per_sample,
              "page_cache_mb_per_s": ceiling, "page_cache_1mib_mb_per_s": ceiling_1m, "memcpy_mb_per_s": memcpy,
              "repeat": repeat, "backend": backend(), "packages": package_versions(), "rows": rows, "skipped": skipped}
    if frontier and not only:
        result["frontier"] = measure_shuffle_frontier(data_dir, batch_size=batch_size, repeat=repeat,
                                                      max_samples=max_samples)
    if cold and not only:
        result["cold"] = cold_runs(data_dir, repeat=repeat, batch_size=batch_size)
    if regimes and not only:
        result["regimes"] = run_regimes(data_dir, peers_dir, workers=[w for w in num_workers if w is not None] or [0],
                                        repeat=repeat, run_seconds=run_seconds, peer_libraries=peer_libraries,
                                        progress=progress, image_args=image_args,
                                        batch_size=min(batch_size, 64))
        result["skipped"] += [f"{f['library']}: {f['error']}" for f in result["regimes"]["failed"]]
    return result


def _worker_counts(text: str) -> list[int | None]:
    try:
        return [None if w.strip() == "none" else int(w) for w in text.split(",")]
    except ValueError:
        msg = f"{text!r}: a comma list of worker counts and/or none, e.g. none,0,2"
        raise argparse.ArgumentTypeError(msg) from None


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: a bad argument or data directory is one line on stderr and exit status 2."""
    parser = argparse.ArgumentParser(prog="python -m course_lib.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_dir_argument(parser)
    parser.add_argument("--out", type=Path, help="write the table as JSON here")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--max-samples", type=int, default=None, help="cap each measured loop")
    add_num_workers_argument(parser, default="none,0,2", type=_worker_counts,
                             help="comma list: none (no DataLoader) and/or DataLoader worker counts")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--only", default=None, help="measure only loaders whose name contains this text")
    parser.add_argument("--no-cold", action="store_true", help="skip the cold-cache runs")
    parser.add_argument("--no-frontier", action="store_true", help="skip the shuffle quality / speed frontier")
    parser.add_argument("--no-regimes", action="store_true", help="skip chapter 05's regimes and peer libraries")
    parser.add_argument("--run-seconds", type=float, default=1.0, help="time limit of each regime/peer run")
    parser.add_argument("--peers", default=",".join(PEER_LIBRARIES), help="comma list of peer libraries")
    parser.add_argument("--image-samples", type=int, default=None, help="size of the regimes' image dataset")
    parser.add_argument("--image-shape", default=None, help="its image shape, e.g. 3,128,128")
    args = parser.parse_args(argv)
    if not args.data_dir.is_dir():
        parser.error(f"--data-dir {args.data_dir}: no such directory (make one with: python -m data_gen generate)")
    result = run(args.data_dir, repeat=args.repeat, num_workers=args.num_workers, batch_size=args.batch_size,
                 max_samples=args.max_samples, progress=not args.no_progress, only=args.only,
                 cold=not args.no_cold, frontier=not args.no_frontier,
                 regimes=not args.no_regimes, run_seconds=args.run_seconds,
                 peer_libraries=[p.strip() for p in args.peers.split(",") if p.strip()],
                 image_args={k: v for k, v in [("samples", args.image_samples),
                                               ("shape", args.image_shape and [int(d) for d in
                                                                               args.image_shape.split(",")])] if v})
    print(format_table(result))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
