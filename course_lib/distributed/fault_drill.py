"""One epoch through a faulty server, checked: the chapter's few lines to show that transient faults cost time,
not samples (``fault_epoch``), over HTTP or the S3 API."""
from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from torch.utils.data import DataLoader

from data_gen.layout import WDS, format_dir, shard_glob

from ..loaders.cli_args import add_data_dir_argument, add_num_workers_argument
from ..loaders.faulty_http import Faults, serve_faulty
from ..loaders.retry_policy import RetryPolicy
from ..loaders.shard_index import manifest_shards
from ..loaders.webdataset_pipeline import make_webdataset
from .s3_faults import s3_faulty_server
from .s3_shards import S3Opener, s3_scheme, upload_shards

VIA = ("http", "s3")


@dataclass(frozen=True)
class FaultDrill:
    """What one epoch through the faulty server delivered and what the faults cost."""

    via: str
    samples: int          # samples delivered
    exactly_once: bool    # every sample of the manifest once, none twice, none missing
    missing: int
    repeated: int
    retries: int          # transient faults retried (the pipeline's ErrorLog.retries)
    retry_seconds: float  # time the retries cost (waits and repeated requests), all processes
    seconds: float        # the whole epoch
    faults: dict          # what the server injected, per kind
    requests: int         # requests the server answered

    def row(self) -> dict:
        """A flat row for a table."""
        return {**{k: v for k, v in asdict(self).items() if k != "faults"}, **{f"injected {k}": v
                                                                              for k, v in self.faults.items()}}


def fault_epoch(data_dir: str | Path, via: str = "http", faults: Faults = Faults(), *, num_workers: int = 0,
                shuffle_buffer: int = 0, seed: int = 0, retry: RetryPolicy | None = None) -> FaultDrill:
    """Stream one epoch of ``data_dir``'s ``wds`` shards through a fault-injecting server (``via`` ``"http"`` or
    ``"s3"``) and check it: every sample exactly once, the retries counted, the time measured."""
    if via not in VIA:
        raise ValueError(f"via must be one of {VIA}, got {via!r}")
    expected = manifest_shards(data_dir, WDS)
    if not expected:
        raise FileNotFoundError(f"{data_dir}: no manifest.json with wds shards (write the data with data_gen)")
    files = sorted(format_dir(data_dir, WDS).glob(shard_glob(WDS)))
    with _faulty_urls(files, via, faults) as (urls, server):
        pipeline = make_webdataset(urls, shuffle_buffer=shuffle_buffer, seed=seed, expected_counts=expected,
                                   retry=retry)
        start = time.perf_counter()
        ids = [int(s["idx"]) for s in DataLoader(pipeline, batch_size=None, num_workers=num_workers)]
        seconds = time.perf_counter() - start
        injected, requests = dict(server.faults), server.requests
    total = sum(e.samples for e in expected.values())
    unique = set(ids)
    missing = len(set(range(total)) - unique)
    return FaultDrill(via, len(ids), missing == 0 and len(ids) == total == len(unique), missing,
                      len(ids) - len(unique), pipeline.errors.retries, pipeline.errors.retry_seconds, seconds,
                      injected, requests)


@contextlib.contextmanager
def _faulty_urls(files: list[Path], via: str, faults: Faults) -> Iterator[tuple[list[str], object]]:
    if via == "http":
        with serve_faulty(files[0].parent, faults) as server:
            yield [server.url(f.name) for f in files], server
        return
    with s3_faulty_server("course-fault-drill", faults) as s3:
        urls = upload_shards(s3.direct, files)          # uploads straight to moto; reads through the proxy
        with s3_scheme(S3Opener(s3.faulty.endpoint)):
            yield urls, s3.proxy


def fault_cost(data_dir: str | Path, via: str = "http", faults: Faults = Faults(), *, repeat: int = 3,
               num_workers: int = 0) -> dict:
    """What the faults cost: ``repeat`` epochs without faults and with them, side by side (medians, spreads)."""
    clean = [fault_epoch(data_dir, via, Faults(fail_share=0, cut_share=0), num_workers=num_workers)
             for _ in range(repeat)]
    faulty = [fault_epoch(data_dir, via, faults, num_workers=num_workers) for _ in range(repeat)]
    base, slow = (statistics.median(d.seconds for d in runs) for runs in (clean, faulty))
    retries = statistics.median(d.retries for d in faulty)
    return {"via": via, "exactly once": all(d.exactly_once for d in clean + faulty), "retries": retries,
            "clean s": base, "faulty s": slow,
            "spread s": max(d.seconds for d in faulty) - min(d.seconds for d in faulty),
            "cost per retry s": (slow - base) / retries if retries else 0.0}


def main(argv: list[str] | None = None) -> None:
    """``python -m course_lib.distributed.fault_drill --data-dir build/data``: print what the faults cost."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    add_data_dir_argument(parser)
    add_num_workers_argument(parser)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    for via in VIA:
        print(fault_cost(args.data_dir, via, repeat=args.repeat, num_workers=args.num_workers))


if __name__ == "__main__":
    main()
