"""WebDataset pipelines over data_gen's tar shards, built from webdataset's own stages.

``make_webdataset``: the classic per-sample pipeline (shard shuffle, split by node and worker, tar
expansion, shuffle buffer, safe decode, optional batching). ``make_block_webdataset``: the fast path over
``wdsb`` shards, whose members are pre-batched blocks of samples.

Decoding never unpickles: only the members data_gen writes are decoded (``.npy`` with
``allow_pickle=False``, decimal labels). A sample carrying anything else (``.pyd``, ``.pickle``, ``.pt``, …)
is refused, because webdataset's default decoders would run pickle on it.
"""
from __future__ import annotations

import functools
import importlib
import io
import os
import random
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
import webdataset as wds
from torch.utils.data import default_collate
from webdataset.shardlists import expand_urls
from webdataset.tariterators import group_by_keys, tar_file_expander

from data_gen.layout import WDS_BLOCK

from .epoch_plan import epoch_rng
from .row_gather import gather_rows
from .seeding import current_rank, current_worker
from .shard_errors import ErrorLog, ShardReadError
from .shard_index import manifest_counts, parse_npy_header

SAMPLE_MEMBERS = {"x.npy", "cls", "idx"}
BLOCK_MEMBERS = {"x.npy", "y.npy", "idx.npy"}


def shard_urls(source: str | Path | Sequence[str], fmt: str = "wds") -> list[str]:
    """Shard URLs from a data_gen directory, a folder of ``.tar`` files, a brace pattern or a list."""
    if isinstance(source, (list, tuple)):
        return [str(u) for u in source]
    text = str(source)
    path = Path(text)
    if "://" not in text and path.is_dir():
        folder = path / fmt if (path / fmt).is_dir() else path
        urls = [str(p) for p in sorted(folder.glob("shard_*.tar"))]
        if not urls:
            raise FileNotFoundError(f"{folder}: no shard_*.tar files")
        return urls
    urls = expand_urls(text)
    missing = [u for u in urls if "://" not in u and not Path(u).exists()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} of {len(urls)} shard(s) missing: {', '.join(missing)}")
    return urls


READ_BUFFER = 1 << 20  # tarfile's stream mode reads 10 KiB at a time: serve those from a 1 MiB buffer


def count_per_shard(files: Iterable[dict[str, Any]], expected: dict[str, int], errors: ErrorLog,
                    unit: str = "samples") -> Iterator[dict[str, Any]]:
    """Pass tar records through; at each end-of-shard marker compare the keys (``unit``) seen with ``expected``.

    A shard that ends early (truncated) is reported through ``errors`` with how many samples it lost,
    so a skipped tail is counted, not silently missing. Shards not in ``expected`` are not checked.
    """
    keys: set[str] = set()
    url = None

    def check() -> bool:
        want = expected.get(Path(str(url)).name) if url else None
        if want is None or len(keys) == want:
            return True
        return errors(ShardReadError(f"{url}: ended after {len(keys)} of {want} {unit} "
                                     f"({want - len(keys)} lost: truncated?)"))

    for record in files:
        if record == {} or record.get("__url__", url) != url:  # end marker, or a shard that ended in an error
            if url is not None and not check():
                return
            keys, url = set(), None
        if record != {}:
            url = record["__url__"]
            keys.add(record["fname"].split(".", 1)[0])
        yield record
    if url is not None:
        check()


def open_shard(url: str, timeout: float = 30.0):
    """A buffered stream for a local path or an http(s) URL; HTTP errors name the status and the URL."""
    if url.startswith(("http://", "https://")):
        try:
            return io.BufferedReader(urllib.request.urlopen(url, timeout=timeout), buffer_size=READ_BUFFER)
        except urllib.error.HTTPError as e:
            raise ShardReadError(f"{url}: HTTP {e.code} {e.reason}") from e
        except urllib.error.URLError as e:
            raise ShardReadError(f"{url}: cannot connect ({e.reason})") from e
    if "://" in url and not url.startswith("file://"):   # s3:// etc.: the opener registered with webdataset's gopen
        opener = importlib.import_module("webdataset.gopen").gopen_schemes.get(url.split("://", 1)[0])
        if opener is None:
            raise ShardReadError(f"{url}: no opener registered for this scheme (webdataset.gopen.gopen_schemes)")
        try:
            return opener(url, mode="rb", bufsize=READ_BUFFER)
        except ShardReadError:
            raise
        except Exception as e:  # noqa: BLE001 - name the URL whatever the client raised
            raise ShardReadError(f"{url}: {type(e).__name__}: {e}") from e
    try:
        return open(url, "rb", buffering=READ_BUFFER)
    except OSError as e:
        raise ShardReadError(f"{url}: {e.strerror}") from e


def decode_npy(data: bytes, where: str) -> np.ndarray:
    """An array from ``.npy`` bytes without a copy and without pickle; errors name ``where``.

    The header of every member of one kind is identical, so it is parsed once and cached: this is what
    ``np.load`` would redo (with ``ast.literal_eval``) for every sample.
    """
    try:
        shape, fortran, dtype, offset = _npy_header(bytes(data[:_header_end(data)]))
        count = int(np.prod(shape))
        if len(data) - offset < count * dtype.itemsize:
            raise ValueError(f"truncated: {len(data) - offset} data bytes for {count} x {dtype}")
        array = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
        return array.reshape(shape, order="F" if fortran else "C")
    except ValueError as e:
        raise ShardReadError(f"{where}: bad .npy member ({e})") from e


def _header_end(data: bytes) -> int:
    """Where the data of a ``.npy`` file starts (magic, version, header length, header)."""
    if len(data) < 10 or bytes(data[:6]) != b"\x93NUMPY":
        raise ValueError("not a .npy file (bad magic)")
    if data[6] == 1:
        return 10 + int.from_bytes(data[8:10], "little")
    return 12 + int.from_bytes(data[8:12], "little")


@functools.lru_cache(maxsize=64)
def _npy_header(header: bytes) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    stream = io.BytesIO(header)
    shape, fortran, dtype = parse_npy_header(stream)
    if dtype.hasobject:
        raise ValueError("object arrays need pickle: refused")
    return shape, fortran, dtype, stream.tell()


def _check_members(sample: dict[str, Any], allowed: set[str]) -> str:
    where = f"{sample.get('__url__', '?')}: sample {sample.get('__key__', '?')}"
    extra = sorted(k for k in sample if not k.startswith("__") and k not in allowed)
    if extra:
        raise ShardReadError(f"{where}: member(s) {extra} refused — this pipeline decodes only {sorted(allowed)} "
                             "(pickle-based members such as .pyd/.pickle/.pt can run code when decoded)")
    missing = sorted(allowed - sample.keys())
    if missing:
        raise ShardReadError(f"{where}: missing member(s) {missing}")
    return where


def decode_sample(sample: dict[str, Any]) -> dict[str, Any]:
    """``{"x": uint8 tensor, "y": int, "idx": int}`` from one data_gen sample; refuses unknown members."""
    where = _check_members(sample, SAMPLE_MEMBERS)
    x = decode_npy(sample["x.npy"], where)
    try:
        y, idx = int(sample["cls"]), int(sample["idx"])
    except ValueError as e:
        raise ShardReadError(f"{where}: bad label ({e})") from e
    return {"x": torch.from_numpy(x.copy()), "y": y, "idx": idx}


def decode_block(sample: dict[str, Any]) -> dict[str, Any]:
    """A pre-batched block: ``y`` and ``idx`` as arrays, ``x`` as an array or, for a local shard, a
    :class:`LazyBlock` that the window reads later with one copy."""
    where = _check_members(sample, BLOCK_MEMBERS)
    block = {k: _small_npy(sample[f"{k}.npy"], where) for k in ("y", "idx")}
    x = sample["x.npy"]
    if isinstance(x, MemberRef):
        head = x.read(0, min(x.size, 4096))
        shape, fortran, dtype, offset = _npy_header(bytes(head[:_header_end(head)]))
        if fortran or x.size - offset != int(np.prod(shape)) * dtype.itemsize:
            raise ShardReadError(f"{where}: bad .npy member (size does not match header {shape} {dtype})")
        block["x"] = LazyBlock(x, offset, shape, dtype)
    else:
        block["x"] = decode_npy(x, where)
    if not len(block["x"]) == len(block["y"]) == len(block["idx"]):
        raise ShardReadError(f"{where}: block members disagree in length")
    return block


@dataclass(frozen=True)
class LazyBlock:
    """A block's images still on disk: shape and dtype known, bytes read on demand."""

    ref: MemberRef
    data_offset: int
    shape: tuple[int, ...]
    dtype: np.dtype

    def __len__(self) -> int:
        return self.shape[0]

    def readinto(self, rows: np.ndarray) -> None:
        """Fill ``rows`` (a ``(n, row_bytes)`` uint8 array) with this block's bytes."""
        self.ref.readinto(memoryview(rows.reshape(-1)), self.data_offset)


def _small_npy(data: Any, where: str) -> np.ndarray:
    return decode_npy(data.read() if isinstance(data, MemberRef) else data, where)


class _Pipeline(wds.DataPipeline):
    """A DataPipeline that knows its epoch (``set_epoch``) and its error log (``errors``)."""

    def __init__(self, urls: list[str], *, seed: int, epoch: int, shardshuffle: bool, rank: int | None,
                 world_size: int | None, errors: ErrorLog, stages: list, resampled: bool = False):
        self.urls, self.seed, self.epoch, self.shardshuffle = urls, seed, epoch, shardshuffle
        self.rank, self.world_size, self.errors, self.resampled = rank, world_size, errors, resampled
        super().__init__(self._shards, self._split_by_node, self._split_by_worker, self._open, *stages)

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle for ``epoch`` (a pure function of seed and epoch, the same on every rank)."""
        self.epoch = int(epoch)

    def _shards(self) -> Iterator[dict[str, str]]:
        if self.resampled:
            return self._resample()
        order = list(range(len(self.urls)))
        if self.shardshuffle:
            order = epoch_rng(self.seed, self.epoch).permutation(len(self.urls)).tolist()
        return iter([{"url": self.urls[i]} for i in order])

    def _resample(self) -> Iterator[dict[str, str]]:
        """Shards drawn with replacement, forever; each (rank, worker) draws its own reproducible sequence."""
        rng = self.worker_rng(2)
        while True:
            yield {"url": rng.choice(self.urls)}

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
                item["stream"] = open_shard(item["url"])
            except ShardReadError as e:
                if self.errors(e):
                    continue
                return
            yield item

    def worker_rng(self, *salt: int) -> random.Random:
        """A ``random.Random`` keyed by (seed, epoch, rank, worker, salt): reproducible, distinct per worker."""
        rank = self.rank if self.rank is not None else current_rank()
        key = [self.seed, self.epoch, rank, current_worker()[0], *salt]
        return random.Random(int(np.random.SeedSequence(key).generate_state(1)[0]))


def make_webdataset(urls: str | Path | Sequence[str], *, shuffle_buffer: int = 1000, seed: int = 0, epoch: int = 0,
                    batch_size: int | None = None, handler: str = "raise", shardshuffle: bool = True,
                    rank: int | None = None, world_size: int | None = None, partial: bool = True,
                    initial: int | None = None, expected_counts: dict[str, int] | None = None,
                    resampled: bool = False) -> _Pipeline:
    """The per-sample WebDataset pipeline over data_gen ``wds`` shards (see module docstring).

    ``shuffle_buffer=0`` disables the sample shuffle; ``initial`` is how many samples the buffer holds before
    the first one comes out (default: the whole buffer). ``handler="warn"`` skips bad shards/samples and
    counts them in ``pipeline.errors``. Splits shards by node (``rank``/``world_size``, or torch.distributed)
    and by DataLoader worker. ``expected_counts`` (shard file name -> samples; read from the manifest when
    ``urls`` is a data_gen directory) lets a truncated shard report how many samples it lost.
    ``resampled=True`` draws shards with replacement, forever (no exactly-once: chapter 04 measures it); give
    the stream an epoch length with webdataset's ``.with_epoch(n)`` (``n`` per worker).
    """
    expected = _expected(urls, "wds", expected_counts)
    urls = shard_urls(urls, "wds")
    errors = ErrorLog(handler, urls)
    _check_split(rank, world_size)
    stages: list = [lambda src: group_by_keys(count_per_shard(tar_file_expander(src, handler=errors), expected,
                                                              errors), handler=errors)]
    pipeline = _Pipeline(urls, seed=seed, epoch=epoch, shardshuffle=shardshuffle, rank=rank,
                         world_size=world_size, errors=errors, stages=stages, resampled=resampled)
    if shuffle_buffer:
        start = shuffle_buffer if initial is None else initial
        pipeline.append(lambda src: wds.filters._shuffle(src, shuffle_buffer, start, pipeline.worker_rng(1)))
    pipeline.append(wds.map(decode_sample, handler=errors))
    if batch_size:
        pipeline.append(wds.batched(batch_size, collation_fn=default_collate, partial=partial))
    return pipeline


def make_block_webdataset(urls: str | Path | Sequence[str], *, batch_size: int = 256, block_buffer: int = 8,
                          seed: int = 0, epoch: int = 0, handler: str = "raise", shardshuffle: bool = True,
                          rank: int | None = None, world_size: int | None = None,
                          partial: bool = True) -> _Pipeline:
    """The fast path over data_gen ``wdsb`` shards: blocks of samples, shuffled within a window of
    ``block_buffer`` blocks, yielded as ready batches ``{"x", "y", "idx"}`` of tensors."""
    expected = {name: -(-n // WDS_BLOCK) for name, n in _expected(urls, "wdsb", None).items()}
    urls = shard_urls(urls, "wdsb")
    errors = ErrorLog(handler, urls)
    _check_split(rank, world_size)
    if block_buffer < 1 or batch_size < 1:
        raise ValueError(f"block_buffer and batch_size must be >= 1, got {block_buffer}, {batch_size}")
    stages: list = [lambda src: group_by_keys(count_per_shard(seekable_tar_expander(src, handler=errors),
                                                              expected, errors, unit="blocks"),
                                              handler=errors),
                    wds.map(decode_block, handler=errors)]
    pipeline = _Pipeline(urls, seed=seed, epoch=epoch, shardshuffle=shardshuffle, rank=rank,
                         world_size=world_size, errors=errors, stages=stages)
    pipeline.append(lambda src: mix_blocks(src, block_buffer, batch_size, pipeline.worker_rng(2), partial))
    return pipeline


@dataclass(frozen=True)
class MemberRef:
    """Where one tar member's bytes are (file, offset, size): read later, straight into a buffer."""

    path: str
    offset: int
    size: int

    def read(self, start: int = 0, size: int | None = None) -> bytes:
        """``size`` bytes of the member from ``start`` (default: to its end)."""
        size = self.size - start if size is None else size
        with open(self.path, "rb", buffering=0) as f:
            return os.pread(f.fileno(), size, self.offset + start)

    def readinto(self, buffer: memoryview, start: int = 0) -> None:
        """Fill ``buffer`` with the member's bytes from ``start``, in one ``preadv``."""
        with open(self.path, "rb", buffering=0) as f:
            got = os.preadv(f.fileno(), [buffer], self.offset + start)
        if got != len(buffer):
            raise ShardReadError(f"{self.path}: short read at byte {self.offset + start} ({got} of {len(buffer)})")


def seekable_tar_expander(src: Iterable[dict[str, Any]], handler: ErrorLog) -> Iterator[dict[str, Any]]:
    """Like webdataset's ``tar_file_expander`` (same records, same end-of-shard marker), but for a local
    file ``tarfile`` only indexes the members (mode ``"r:"`` seeks over the data) and each record's data is
    a :class:`MemberRef`: block data is later read with one ``preadv`` straight into the batch window,
    instead of tarfile's 10 KiB stream reads joined into a new bytes object. HTTP streams are not
    seekable: they keep the stream mode and carry the bytes."""
    for source in src:
        url, stream = source["url"], source["stream"]
        try:
            local = "://" not in url and getattr(stream, "seekable", lambda: False)()
            with tarfile.open(fileobj=stream, mode="r:" if local else "r|*") as tar:
                for info in tar:
                    if not info.isreg():
                        continue
                    if local:
                        if info.offset_data + info.size > os.fstat(stream.fileno()).st_size:
                            raise tarfile.ReadError(f"member {info.name} runs past the end of the file")
                        data = MemberRef(url, info.offset_data, info.size)
                    else:
                        data = tar.extractfile(info).read()
                    yield {"fname": info.name, "data": data, "__url__": url}
            yield {}
        except Exception as exn:  # noqa: BLE001 - the handler decides (raise naming the shard, or count)
            exn.args = exn.args + (url,)
            if handler(exn):
                continue
            return
        finally:
            stream.close()


def mix_blocks(blocks: Iterable[dict[str, Any]], window: int, batch_size: int, rng: random.Random,
               partial: bool = True) -> Iterator[dict[str, torch.Tensor]]:
    """Batches drawn from windows of ``window`` blocks: each window's images are read (or copied) into one
    reused buffer, its rows permuted, and every batch gathered from it with one copy; leftovers carry
    into the next window."""
    np_rng = np.random.default_rng(rng.getrandbits(64))
    mixer = _Window()
    held: list[dict[str, Any]] = []
    for block in blocks:
        held.append(block)
        if len(held) >= window:
            held = yield from mixer.emit(held, batch_size, np_rng)
    if held:
        rest = yield from mixer.emit(held, batch_size, np_rng)
        if rest and partial:
            yield {k: torch.from_numpy(np.asarray(v)) for k, v in rest[0].items()}


class _Window:
    """One reusable buffer holding a window's images as ``(rows, row_bytes)`` uint8."""

    def __init__(self):
        self.buffer = np.empty((0, 0), dtype=np.uint8)

    def fill(self, held: list[dict[str, Any]]) -> np.ndarray:
        first = held[0]["x"]
        sample_shape, dtype = tuple(first.shape[1:]), np.dtype(first.dtype)
        row_bytes = int(np.prod(sample_shape)) * dtype.itemsize
        total = sum(len(b["x"]) for b in held)
        if self.buffer.shape[0] < total or self.buffer.shape[1] != row_bytes:
            self.buffer = np.empty((max(total, self.buffer.shape[0]), row_bytes), dtype=np.uint8)
        rows, at = self.buffer[:total], 0
        for b in held:
            n = len(b["x"])
            if isinstance(b["x"], LazyBlock):
                b["x"].readinto(rows[at:at + n])
            else:
                rows[at:at + n] = np.ascontiguousarray(b["x"]).reshape(n, -1).view(np.uint8)
            at += n
        self.sample_shape, self.dtype = sample_shape, dtype
        return rows

    def emit(self, held, batch_size, rng):
        """Yield the full batches of one permuted window; return the leftover rows as one small block."""
        rows = self.fill(held)
        y = np.concatenate([b["y"] for b in held])
        idx = np.concatenate([b["idx"] for b in held])
        order = rng.permutation(len(rows))
        full = len(rows) - len(rows) % batch_size
        for a in range(0, full, batch_size):
            yield {k: torch.from_numpy(v) for k, v in self.gather(rows, y, idx, order[a:a + batch_size]).items()}
        return [self.gather(rows, y, idx, order[full:])] if full < len(rows) else []

    def gather(self, rows, y, idx, picked):
        picked = np.sort(picked)  # ascending rows: sequential copies
        x = np.empty((len(picked), rows.shape[1]), dtype=np.uint8)
        gather_rows(torch.from_numpy(rows), picked, torch.from_numpy(x))
        return {"x": x.view(self.dtype).reshape(len(picked), *self.sample_shape), "y": y[picked], "idx": idx[picked]}


def _expected(source: Any, fmt: str, given: dict[str, int] | None) -> dict[str, int]:
    if given is not None:
        return dict(given)
    if isinstance(source, (str, Path)) and "://" not in str(source) and Path(source).is_dir():
        return manifest_counts(source, fmt)
    return {}


def _check_split(rank: int | None, world_size: int | None) -> None:
    if (rank is None) != (world_size is None):
        raise ValueError("give both rank and world_size, or neither")
    if rank is not None and not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
