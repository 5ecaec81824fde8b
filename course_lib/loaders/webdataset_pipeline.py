"""Building WebDataset pipelines over data_gen's tar shards from webdataset's public stages and our own.

``make_webdataset``: the classic per-sample pipeline (shard shuffle, split by node and worker, tar
expansion, shuffle buffer, safe decode, optional batching). ``make_block_webdataset``: the fast path over
``wdsb`` shards, whose members are pre-batched blocks of samples. Both return a :class:`ShardPipeline`.
The jobs live beside this module: ``shard_open``, ``tar_members``, ``sample_grouping`` and ``shard_accounting``
(opening shards, their members, samples, counting every shard), ``npy_members`` (decoding
without pickle), ``shuffle_buffer`` and ``block_mixing``. Every stage is a plain object, never a lambda, so a
pipeline pickles into DataLoader workers under the ``fork``, ``spawn`` and ``forkserver`` start methods.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import webdataset as wds
from torch.utils.data import default_collate
from webdataset.shardlists import expand_urls

from data_gen.layout import WDS, WDS_BLOCK, WDSB, format_dir, shard_glob

from .block_mixing import MixBlocks
from .keyed_random import keyed_rng
from .npy_members import BLOCK_MEMBERS, SAMPLE_MEMBERS, decode_block, decode_sample
from .resharding import refuse_resharding
from .retry_policy import RetryPolicy
from .runtime import check_non_negative, check_positive, check_split, current_rank, current_worker, rank_and_world
from .shard_accounting import ShardSamples
from .shard_errors import ErrorLog, MissingShardError, ShardReadError
from .shard_index import ShardExpectation, manifest_shards
from .shard_open import open_shard
from .shard_resume import ResumePlan, plan_resume, shard_state
from .shuffle_buffer import ShuffleBuffer
from .worker_transport import RING_SLOTS

Source = str | Path | Sequence[str]
SHUFFLE_SALT, RESAMPLE_SALT, MIX_SALT = 1, 2, 3   # one keyed stream per use within a worker


def shard_urls(source: Source, fmt: str = WDS) -> list[str]:
    """Shard URLs from a data_gen directory, a folder of ``.tar`` files, a URL or brace pattern, or a list."""
    if isinstance(source, (list, tuple)):
        return [str(u) for u in source]
    text = str(source)
    if "://" not in text and Path(text).is_dir():
        folder = format_dir(text, fmt)
        urls = [str(p) for p in sorted(folder.glob(shard_glob(fmt)))]
        if not urls:
            raise MissingShardError(f"{folder}: no {shard_glob(fmt)} files")
        return urls
    urls = expand_urls(text)
    missing = [u for u in urls if "://" not in u and not Path(u).exists()]
    if missing:
        raise MissingShardError(f"{len(missing)} of {len(urls)} shard(s) missing: {', '.join(missing)}")
    return urls


class ShardPipeline(wds.DataPipeline):
    """A WebDataset pipeline over shard URLs that knows its epoch (``set_epoch``) and its error log (``errors``).

    Its first stages list the shards (shuffled by (seed, epoch), or resampled), split them by rank and by
    DataLoader worker, and open them; the stages after that are what ``make_webdataset`` or
    ``make_block_webdataset`` append.
    """

    def __init__(self, urls: list[str], *, seed: int, epoch: int, shardshuffle: bool, rank: int | None,
                 world_size: int | None, errors: ErrorLog, resampled: bool = False,
                 retry: RetryPolicy | None = None):
        check_split(rank, world_size)
        self.retry = RetryPolicy() if retry is None else retry
        self.dropped: frozenset[str] = frozenset()   # shard names a resumed epoch does not read (shard_resume)
        self.urls, self.seed, self.epoch, self.shardshuffle = urls, seed, int(epoch), shardshuffle
        self.rank, self.world_size, self.errors, self.resampled = rank, world_size, errors, resampled
        super().__init__(self._shards, self._split_by_node, self._split_by_worker, self._open)

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle for ``epoch`` (a pure function of seed and epoch, the same on every rank)."""
        refuse_resharding(self)                  # split by node already: never split again (resharding.py)
        if int(epoch) != self.epoch:
            self.dropped = frozenset()                # a resume covers the epoch it was saved in only
        self.epoch = int(epoch)

    def state_dict(self, delivered: dict[str, int]) -> dict[str, Any]:
        """What to save at a stop: this pipeline's settings and ``delivered`` (samples per shard name, e.g. from
        ``shard_resume.delivered_per_shard``); resume with ``make_webdataset(..., resume=[every rank's])``."""
        return shard_state(self, delivered)

    def resume_from(self, state: Any, expected: dict[str, ShardExpectation], in_flight: str = "replay") -> ResumePlan:
        """Resume this epoch from ``state`` (every rank's, as a list) on this pipeline's ranks: the plan, counted."""
        self.resume_plan = plan_resume(state, seed=self.seed, epoch=self.epoch, shardshuffle=self.shardshuffle,
                                       shards=[u.rsplit("/", 1)[-1] for u in self.urls], expected=expected,
                                       in_flight=in_flight, world_size=rank_and_world(self.rank, self.world_size)[1])
        self.dropped = self.resume_plan.dropped
        return self.resume_plan

    def worker_rng(self, *salt: int) -> np.random.Generator:
        """A generator keyed by (seed, epoch, rank, worker, salt): reproducible, distinct per worker."""
        rank = self.rank if self.rank is not None else current_rank()
        return keyed_rng(self.seed, self.epoch, rank, current_worker()[0], *salt)

    def _shards(self) -> Iterator[dict[str, str]]:
        refuse_resharding(self)
        if self.resampled:
            return self._resample()
        order = range(len(self.urls))
        if self.shardshuffle:
            order = keyed_rng(self.seed, self.epoch).permutation(len(self.urls)).tolist()
        return iter([{"url": self.urls[i]} for i in order if self.urls[i].rsplit("/", 1)[-1] not in self.dropped])

    def _resample(self) -> Iterator[dict[str, str]]:
        """Shards drawn with replacement, forever; each (rank, worker) draws its own reproducible sequence."""
        rng = self.worker_rng(RESAMPLE_SALT)
        while True:
            yield {"url": self.urls[int(rng.integers(len(self.urls)))]}

    def _split_by_worker(self, src: Iterable[dict]) -> Iterator[dict]:
        return src if self.resampled else wds.split_by_worker(src)

    def _split_by_node(self, src: Iterable[dict]) -> Iterator[dict]:
        if self.resampled:
            yield from src
        elif self.rank is None:
            yield from wds.split_by_node(src)      # torch.distributed's rank when initialised, else all
        else:
            for i, item in enumerate(src):
                if i % self.world_size == self.rank:
                    yield item

    def _open(self, src: Iterable[dict]) -> Iterator[dict]:
        for item in src:
            try:
                item["stream"] = open_shard(item["url"], self.retry, self.errors.retried)
            except ShardReadError as e:
                if self.errors(e):
                    continue
                return
            yield item


def make_webdataset(source: Source, *, shuffle_buffer: int = 1000, seed: int = 0, epoch: int = 0,
                    batch_size: int | None = None, handler: str = "raise", shardshuffle: bool = True,
                    rank: int | None = None, world_size: int | None = None, partial: bool = True,
                    initial: int | None = None,
                    expected_counts: dict[str, int | ShardExpectation] | None = None,
                    resampled: bool = False, retry: RetryPolicy | None = None,
                    resume: Any = None, in_flight: str = "replay") -> ShardPipeline:
    """The per-sample WebDataset pipeline over data_gen ``wds`` shards (see module docstring).

    ``shuffle_buffer=0`` disables the sample shuffle; ``initial`` is how many samples the buffer holds before
    the first one comes out (default: the whole buffer). ``handler="warn"`` skips bad shards/samples and
    counts them in ``pipeline.errors`` (``errors.samples_lost``: samples that truncated shards never delivered).
    Splits shards by node (``rank``/``world_size``, or torch.distributed) and by DataLoader worker.
    ``expected_counts`` (shard file name -> samples, or :class:`ShardExpectation` with the size too; read from
    the manifest when ``source`` is a data_gen directory) lets a truncated shard report how many samples it lost.
    ``resampled=True`` draws shards with replacement, forever (no exactly-once: chapter 04 measures it); give
    the stream an epoch length with webdataset's ``.with_epoch(n)`` (``n`` per worker). ``retry`` bounds the
    retries of HTTP and S3 reads (default :class:`RetryPolicy()`); they are counted in ``errors.retries``.
    ``resume``: the state(s) saved at a stop (``pipeline.state_dict``; every rank's, as a list), on any number of
    ranks: finished shards are dropped, the shards in flight at the stop are read again (``in_flight="replay"``)
    or dropped (``"skip"``), counted in ``pipeline.resume_plan`` and said in a warning (``shard_resume``).
    """
    expected = _expected(source, WDS, expected_counts)
    urls = shard_urls(source, WDS)
    errors = ErrorLog(handler, urls)
    pipeline = ShardPipeline(urls, seed=seed, epoch=epoch, shardshuffle=shardshuffle, rank=rank,
                             world_size=world_size, errors=errors, resampled=resampled, retry=retry)
    if resume is not None:
        pipeline.resume_from(resume, expected, in_flight)
    pipeline.append(ShardSamples(expected, errors, SAMPLE_MEMBERS))
    if shuffle_buffer:
        start = shuffle_buffer if initial is None else initial
        pipeline.append(ShuffleBuffer(shuffle_buffer, start, functools.partial(pipeline.worker_rng, SHUFFLE_SALT)))
    pipeline.append(wds.map(decode_sample, handler=errors))
    if batch_size:
        pipeline.append(wds.batched(batch_size, collation_fn=default_collate, partial=partial))
    return pipeline


def make_block_webdataset(source: Source, *, batch_size: int = 256, window_blocks: int = 8,
                          seed: int = 0, epoch: int = 0, handler: str = "raise", shardshuffle: bool = True,
                          rank: int | None = None, world_size: int | None = None,
                          partial: bool = True, worker_slots: int = RING_SLOTS,
                          retry: RetryPolicy | None = None, resume: Any = None,
                          in_flight: str = "replay") -> ShardPipeline:
    """The fast path over data_gen ``wdsb`` shards: blocks of samples, shuffled within a window of
    ``window_blocks`` blocks, yielded as ready batches ``{"x", "y", "idx"}`` of tensors. Inside DataLoader
    workers each batch is gathered into one of ``worker_slots`` reused shared-memory slots per worker
    (``worker_transport``; 0: torch's default, a fresh shared-memory segment per tensor). ``retry``, ``resume``
    and ``in_flight`` as in :func:`make_webdataset`."""
    check_positive("window_blocks", window_blocks)
    check_positive("batch_size", batch_size)
    check_non_negative("worker_slots", worker_slots)
    expected = _expected(source, WDSB, None)
    urls = shard_urls(source, WDSB)
    errors = ErrorLog(handler, urls)
    pipeline = ShardPipeline(urls, seed=seed, epoch=epoch, shardshuffle=shardshuffle, rank=rank,
                             world_size=world_size, errors=errors, retry=retry)
    if resume is not None:
        pipeline.resume_from(resume, expected, in_flight)
    pipeline.append(ShardSamples(expected, errors, BLOCK_MEMBERS, lazy=True, per_item=WDS_BLOCK))
    pipeline.append(wds.map(decode_block, handler=errors))
    pipeline.append(MixBlocks(window_blocks, batch_size, functools.partial(pipeline.worker_rng, MIX_SALT), partial,
                              worker_slots))
    return pipeline


def _expected(source: Any, fmt: str, given: dict[str, Any] | None) -> dict[str, ShardExpectation]:
    if given is not None:
        return {name: e if isinstance(e, ShardExpectation) else ShardExpectation(int(e)) for name, e in given.items()}
    if isinstance(source, (str, Path)) and "://" not in str(source) and Path(source).is_dir():
        return manifest_shards(source, fmt)
    return {}
