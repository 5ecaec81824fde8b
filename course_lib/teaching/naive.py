"""For teaching only: the loaders the course warns against, small and honest, so a chapter can measure them.

- :class:`LoadAllDataset` reads every shard fully into RAM (memory grows with the dataset).
- :func:`export_per_sample_files` + :class:`PerSampleFileDataset`: one file per sample (per-file latency).
- :data:`SEED_STREAMING_SOURCE` is the seed chapter's ``StreamingDataset`` exactly as printed (it does not run);
  :class:`SeedStreamingDataset` is that code with only the fixes it needs to run, bugs kept: no worker
  split (duplicates with ``num_workers > 0``), unseeded global-RNG shuffle, one random read per sample.
  :class:`SeedStreamingTensors` is the same loop made into what a training loop takes (a dict of tensors).
- :data:`SEED_EPOCH_ITERATOR_SOURCE` is the seed's ``epoch_iterator``, which seeds a generator it never uses.
- :class:`ImageFolderDataset`: a folder of images decoded file by file (what chapter 07 measures first).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset

from data_gen.images import IMAGE_SUFFIXES, check_shape, decode_image

from ..loaders.shard_index import index_shards

SEED_STREAMING_SOURCE = '''\
import numpy as np
import mmap
from torch.utils.data import IterableDataset
class StreamingDataset(IterableDataset):
    """Memory-efficient streaming for large numpy arrays."""
    def __init__(self, data_path: str, shard_pattern: str = "shard_{:04d}.npy"):
        self.data_path = Path(data_path)
        self.shard_pattern = shard_pattern
        self.shards = sorted(self.data_path.glob("shard_*.npy"))
    def __len__(self):
        return sum(self._count_samples(shard) for shard in self.shards)
    def _count_samples(self, shard_path):
        # Fast count without loading data
        with open(shard_path, 'rb') as f:
            return np.lib.format.read_array_header(f)[0][0]
    def __iter__(self):
        for shard in self.shards:
            data = np.load(shard, mmap_mode='r') # Memory map, don't load
            indices = np.random.permutation(len(data))
            for idx in indices:
                yield data[idx]
'''


# The seed's "Avoiding Epoch Boundaries" helper, as printed: the generator it seeds reaches nothing.
SEED_EPOCH_ITERATOR_SOURCE = '''\
def epoch_iterator(loader, seed=42):
    """Reproducible epoch with different shuffle each time."""
    g = torch.Generator()
    g.manual_seed(seed)
    for batch in loader:
        yield batch
'''


def exec_seed_code(source: str = SEED_STREAMING_SOURCE, **names: Any) -> dict[str, Any]:
    """Execute the seed's code in a fresh namespace (as a reader pasting it would) and return that namespace.

    ``names`` go into the namespace first, like the imports of the reader's notebook (``torch=torch``).
    """
    namespace: dict[str, Any] = {"__name__": "seed_chapter", **names}
    exec(compile(source, "<seed chapter>", "exec"), namespace)
    return namespace


class SeedStreamingDataset(IterableDataset):
    """The seed's StreamingDataset, fixed only so it runs (``Path`` imported, a header read that exists).

    Kept bugs, on purpose: every DataLoader worker iterates every shard; ``np.random.permutation`` uses the
    unseeded global RNG; each sample is one random read from the memory map.
    """

    def __init__(self, data_path: str | Path, shard_pattern: str = "shard_{:04d}.npy"):
        self.data_path = Path(data_path)
        self.shard_pattern = shard_pattern
        self.shards = sorted(self.data_path.glob("shard_*.npy"))

    def __len__(self) -> int:
        return sum(self._count_samples(shard) for shard in self.shards)

    def _count_samples(self, shard_path: Path) -> int:
        return np.load(shard_path, mmap_mode="r").shape[0]  # reads only the header

    def __iter__(self):
        for shard in self.shards:
            data = np.load(shard, mmap_mode="r")
            indices = np.random.permutation(len(data))
            for idx in indices:
                yield data[idx]


class SeedStreamingTensors(SeedStreamingDataset):
    """The seed's loop, each lazy ``np.void`` record copied into ``{"x": tensor, "y": int, "idx": int}``.

    The seed yields views that a DataLoader cannot collate and that are read only when touched; this is the
    smallest change that makes them a training input, so the seed pattern can be timed delivering exactly
    what ``MmapShardDataset`` delivers per sample (same bugs kept).
    """

    def __iter__(self):
        for rec in super().__iter__():
            x, y, idx = rec.item()       # the fastest split of a record found: x is still a view into the file
            yield {"x": torch.from_numpy(x.copy()), "y": y, "idx": idx}


class LoadAllDataset(Dataset):
    """Every shard read fully into RAM at construction: simple, fast once loaded, and bounded by RAM."""

    def __init__(self, data_dir: str | Path):
        index = index_shards(data_dir)
        self.records = np.concatenate([np.load(p, allow_pickle=False) for p in index.paths])

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict[str, Any]:
        rec = self.records[i]
        return {"x": rec["x"], "y": int(rec["y"]), "idx": int(rec["idx"])}

    def batches(self, batch_size: int = 256, seed: int = 0) -> Iterator[dict[str, np.ndarray]]:
        """Batches of a shuffled order, each gathered with one copy: the batched mmap loader's work, from RAM."""
        order = np.random.default_rng(seed).permutation(len(self.records))
        for a in range(0, len(order), batch_size):
            batch = self.records[np.sort(order[a:a + batch_size])]
            yield {"x": batch["x"], "y": batch["y"], "idx": batch["idx"]}


def export_per_sample_files(data_dir: str | Path, out_dir: str | Path, limit: int | None = None) -> Path:
    """Write the first ``limit`` samples (all by default) as one ``.npy`` file each; returns ``out_dir``."""
    index = index_shards(data_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    remaining = len(index) if limit is None else min(limit, len(index))
    for path in index.paths:
        if remaining <= 0:
            break
        data = np.load(path, mmap_mode="r")
        for rec in data[:remaining]:
            np.save(out / f"sample_{int(rec['idx']):09d}.npy", np.array([rec]), allow_pickle=False)
        remaining -= min(len(data), remaining)
    return out


class PerSampleFileDataset(Dataset):
    """One ``.npy`` file per sample: every item costs an open, a header parse and a small read."""

    def __init__(self, files_dir: str | Path):
        self.files = sorted(Path(files_dir).glob("sample_*.npy"))
        if not self.files:
            raise FileNotFoundError(f"{files_dir}: no sample_*.npy files (run export_per_sample_files first)")

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> dict[str, Any]:
        rec = np.load(self.files[i], allow_pickle=False)[0]
        return {"x": rec["x"], "y": int(rec["y"]), "idx": int(rec["idx"])}


class ImageFolderDataset(Dataset):
    """The usual first loader for a folder of images: each item opens one file and decodes it with Pillow.

    Lists ``root/<class>/**/<file>`` as torchvision's ``ImageFolder`` does (labels: sorted class folder names;
    files with a ``.jpg``/``.jpeg``/``.png`` suffix), and decodes, scales and centre-crops each to ``shape``
    exactly as ``python -m data_gen convert`` does for the ``npy`` format. A file that does not decode raises
    ``data_gen.images.UnreadableImage`` naming it and ends the epoch: this loader cannot skip it. ``exclude``
    drops files (paths relative to ``root``, as a conversion manifest's ``skipped`` list gives them).
    """

    def __init__(self, root: str | Path, shape: tuple[int, int, int] = (3, 64, 64), exclude: Any = ()):
        self.root, self.shape = Path(root), check_shape(shape)
        dropped = {str(Path(p)) for p in exclude}
        self.classes = sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        self.files = [(path, label) for label, name in enumerate(self.classes)
                      for path in sorted((self.root / name).rglob("*"))
                      if path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")
                      and str(path.relative_to(self.root)) not in dropped]
        if not self.files:
            raise FileNotFoundError(f"{root}: no .jpg/.jpeg/.png files in class folders (expected ROOT/<class>/<file>)")

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> dict[str, Any]:
        path, label = self.files[i]
        return {"x": torch.from_numpy(decode_image(path.read_bytes(), self.shape, path)), "y": label}
