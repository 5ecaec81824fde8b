"""Loader benchmark: every loading strategy on one dataset, side by side in one run (figures, not a test).

    python -m course_lib.bench --data-dir build/data --out build/bench.json [--repeat 3] [--max-samples N]

Prints samples/s, MB/s and the ratio to the page-cache read speed of the same files (median of
``--repeat`` runs each), and writes the table as JSON.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterable, NamedTuple

from torch.utils.data import DataLoader

from data_gen.layout import WDS

from ..course.verification import backend, package_versions
from ..loaders.mmap_shards import MmapShardDataset
from ..loaders.shard_index import index_shards
from ..loaders.vocabulary import add_data_dir_argument, add_num_workers_argument, renamed_keywords
from ..loaders.webdataset_pipeline import make_block_webdataset, make_webdataset, shard_urls
from ..teaching.naive import (LoadAllDataset, PerSampleFileDataset, SeedStreamingDataset, SeedStreamingTensors,
                              export_per_sample_files)
from .page_cache import page_cache_mb_per_s
from .peers import litdata_loader, missing, prepare_litdata
from .throughput import measure_throughput
from ..loaders.image_tars import make_image_webdataset
from data_gen.layout import EXTENSIONS, format_dir, shard_glob

SLOW_CAP = 10_000  # samples measured per run for per-sample tar/file loaders and per-sample rows with workers


def _identity(item):
    return item


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
        "seed pattern (sample shuffle, np.void)": through(lambda: SeedStreamingDataset(index_shards(data_dir).shard_dir),
                                                          per_sample_fast, collate_fn=_identity),
        "seed pattern, copied into tensors": through(lambda: SeedStreamingTensors(index_shards(data_dir).shard_dir),
                                                     per_sample_fast),
        "mmap sample shuffle, per sample": through(lambda: MmapShardDataset(data_dir, shuffle="sample"), per_sample_fast),
        "mmap block shuffle, per sample": through(lambda: MmapShardDataset(data_dir, shuffle="block"), per_sample_fast),
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
        f"webdataset JPEG/PNG decode, batched {batch_size}": through(
            lambda: make_image_webdataset(data_dir, batch_size=batch_size), (), ("img",)),
        **(_litdata_loaders(data_dir, peers_dir, batch_size) if peers_dir is not None else {}),
    }


def _litdata_loaders(data_dir: Path, peers_dir: Path, batch_size: int) -> dict[str, Loader]:
    """litdata's StreamingDataset on the same samples, converted once (not timed); {} when not installed."""
    if missing("litdata"):
        return {}
    prepared = prepare_litdata(data_dir, peers_dir / "litdata")
    return {
        "litdata StreamingDataset (shuffle, per sample)": Loader(
            lambda w: litdata_loader(prepared, num_workers=w), (None, 0)),
        f"litdata StreamingDataLoader (shuffle, batched {batch_size})": Loader(
            lambda w: litdata_loader(prepared, batch_size=batch_size, num_workers=w), (None, 0)),
    }


@renamed_keywords(data="data_dir", workers="num_workers")
def run(data_dir: Path, *, repeat: int = 3, num_workers: Iterable[int | None] = (None, 0, 2), batch_size: int = 256,
        max_samples: int | None = None, per_sample_files: int = 5000, progress: bool = True,
        only: str | None = None, peers_dir: Path | None = None) -> dict:
    """Measure every loader x worker setting ``repeat`` times; return the JSON-ready table.

    ``only`` keeps the loaders whose name contains it; peers (litdata) are measured when installed, with
    their converted copy of the data in ``peers_dir`` (default: ``peers/`` beside ``data_dir``).
    """
    index = index_shards(data_dir)
    ceiling = page_cache_mb_per_s(index.paths)
    ceiling_1m = page_cache_mb_per_s(index.paths, chunk=1 << 20)
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
                label = f"{name} [{'no DataLoader' if w is None else f'DataLoader, {w} workers'}]"
                loader = spec.make(w)  # one object, iterated `repeat` times: like epochs of one training run
                whole = spec.full is None or w in spec.full
                cap = max_samples if whole else min(max_samples or SLOW_CAP, SLOW_CAP)
                runs = [measure_throughput(loader, bytes_per_sample=index.bytes_per_sample, warmup=1,
                                           max_samples=cap, progress=progress, label=label)
                        for _ in range(repeat)]
                sps = statistics.median(r.samples_per_s for r in runs)
                mbps = statistics.median(r.mb_per_s for r in runs)
                rows.append({"loader": name, "workers": w, "samples_per_s": sps, "mb_per_s": mbps,
                             "ratio_to_page_cache": mbps / ceiling, "runs": [r.as_dict() for r in runs]})
                if progress:
                    print(f"  {label}: {sps:,.0f} samples/s, {mbps:,.0f} MB/s", file=sys.stderr)
    return {"data": str(data_dir), "samples": len(index), "bytes_per_sample": index.bytes_per_sample,
            "page_cache_mb_per_s": ceiling, "page_cache_1mib_mb_per_s": ceiling_1m, "repeat": repeat,
            "backend": backend(), "packages": package_versions(), "rows": rows,
            "skipped": skipped + [reason for reason in [missing("litdata")] if reason]}


def format_table(result: dict) -> str:
    """The benchmark as a fixed-width text table."""
    lines = [f"data: {result['data']} ({result['samples']:,} samples x {result['bytes_per_sample']:,} B), "
             f"median of {result['repeat']}",
             f"page-cache sequential read: {result['page_cache_mb_per_s']:,.0f} MB/s (8 MiB chunks), "
             f"{result['page_cache_1mib_mb_per_s']:,.0f} MB/s (1 MiB chunks)",
             f"{'loader':<48} {'workers':>13} {'samples/s':>12} {'MB/s':>9} {'of page cache':>14}"]
    for r in result["rows"]:
        w = "-" if r["workers"] is None else str(r["workers"])
        lines.append(f"{r['loader']:<48} {w:>13} {r['samples_per_s']:>12,.0f} {r['mb_per_s']:>9,.0f} "
                     f"{r['ratio_to_page_cache']:>13.0%}")
    lines += [f"skipped: {reason}" for reason in result.get("skipped", [])]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(prog="python -m course_lib.measure.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_dir_argument(parser)
    parser.add_argument("--out", type=Path, help="write the table as JSON here")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--max-samples", type=int, default=None, help="cap each measured loop")
    add_num_workers_argument(parser, default="none,0,2", type=str,
                             help="comma list: none (no DataLoader) and/or DataLoader worker counts")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--only", default=None, help="measure only loaders whose name contains this text")
    args = parser.parse_args(argv)
    num_workers = [None if w.strip() == "none" else int(w) for w in args.num_workers.split(",")]
    result = run(args.data_dir, repeat=args.repeat, num_workers=num_workers, batch_size=args.batch_size,
                 max_samples=args.max_samples, progress=not args.no_progress, only=args.only)
    print(format_table(result))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
