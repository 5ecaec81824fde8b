"""ImageFolderDataset (teaching/naive.py), the usual first loader for a folder of images: labels from sorted
class folders, each image decoded as ``data_gen convert`` decodes it, and a corrupt file ends the epoch naming it."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from course_lib.teaching.naive import ImageFolderDataset
from data_gen.images import UnreadableImage, decode_image

SHAPE = (3, 8, 8)


def _image(seed: int, fmt: str) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (12, 10, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format=fmt)
    return out.getvalue()


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "images"
    for cls, names in {"dog": ["b.png", "a.jpg", "sub/c.jpeg"], "cat": ["z.jpg"], ".hidden": ["h.jpg"]}.items():
        for i, name in enumerate(names):
            path = root / cls / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(_image(i, "PNG" if name.endswith(".png") else "JPEG"))
    (root / "dog" / "notes.txt").write_text("not an image")
    (root / "dog" / ".a.jpg").write_bytes(_image(9, "JPEG"))
    return root


def test_lists_class_folders_and_labels_as_imagefolder_does(folder):
    ds = ImageFolderDataset(folder, shape=SHAPE)
    assert ds.classes == ["cat", "dog"]                       # sorted, hidden folders left out
    assert [(str(p.relative_to(folder)), y) for p, y in ds.files] == [
        ("cat/z.jpg", 0), ("dog/a.jpg", 1), ("dog/b.png", 1), ("dog/sub/c.jpeg", 1)]
    assert len(ds) == 4


def test_each_item_is_the_conversions_decode(folder):
    ds = ImageFolderDataset(folder, shape=SHAPE)
    for i, (path, label) in enumerate(ds.files):
        item = ds[i]
        assert item["y"] == label and item["x"].dtype == torch.uint8 and tuple(item["x"].shape) == SHAPE
        assert np.array_equal(item["x"].numpy(), decode_image(path.read_bytes(), SHAPE, path))
    batches = list(DataLoader(ds, batch_size=2))
    assert [b["y"].tolist() for b in batches] == [[0, 1], [1, 1]]


def test_a_corrupt_file_ends_the_epoch_naming_it_and_exclude_drops_it(folder):
    bad = folder / "dog" / "broken.jpg"
    bad.write_bytes(_image(3, "JPEG")[:40])                    # a truncated JPEG
    ds = ImageFolderDataset(folder, shape=SHAPE)
    with pytest.raises(UnreadableImage, match="broken.jpg"):
        list(DataLoader(ds, batch_size=2))
    kept = ImageFolderDataset(folder, shape=SHAPE, exclude=["dog/broken.jpg"])
    assert len(kept) == len(ds) - 1 and len(list(DataLoader(kept, batch_size=2))) == 2


def test_a_folder_without_images_is_named(tmp_path):
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="empty: no .jpg/.jpeg/.png files in class folders"):
        ImageFolderDataset(tmp_path / "empty")
