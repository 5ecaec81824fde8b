"""Chapter 05's decode-bound path: the img (JPEG) format, the transforms, the pipelines across workers."""
from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from course_lib import ImageShardDataset, ShardError
from course_lib.loaders import ImageShardError, TrainTransform, read_image_shard
from course_lib.loaders.image_transforms import crop_box, finish_batch
from course_lib.teaching import seed_jpeg_pipeline, seed_style_shard
from data_gen import GenerateError, generate, read_manifest, verify
from data_gen.images import decode_pixels
from data_gen.samples import make_sample

IMG = dict(samples=60, shard_size=16, shape=(3, 24, 20), classes=5, seed=3)


@pytest.fixture(scope="module")
def img_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("img") / "data"
    generate(root, **IMG, formats=["npy", "img"], jpeg_quality=92, progress=False, report=None)
    return root


def test_img_shards_are_in_the_manifest_and_verified(img_data):
    m = read_manifest(img_data)
    info = m["formats"]["img"]
    assert info["jpeg_quality"] == 92 and info["encoding"] == "jpeg"
    assert [e["samples"] for e in info["shards"]] == [16, 16, 16, 12]
    assert verify(img_data) == []


def test_verify_names_a_damaged_img_shard(tmp_path):
    root = tmp_path / "d"
    generate(root, **IMG, formats=["img"], progress=False, report=None)
    shard = root / "img" / "shard_0001.tar"
    data = bytearray(shard.read_bytes())
    data[2000] ^= 0xFF
    shard.write_bytes(bytes(data))
    problems = verify(root)
    assert len(problems) == 1 and "shard_0001.tar" in problems[0]


def test_jpeg_decodes_to_the_generated_pixels_within_jpeg_tolerance(img_data):
    samples = [s for p in sorted((img_data / "img").glob("*.tar")) for s in read_image_shard(p)]
    assert [s.idx for s in samples] == list(range(IMG["samples"]))
    for s in samples[::7]:
        x, y = make_sample(IMG["seed"], s.idx, IMG["shape"], IMG["classes"])
        assert s.y == y and s.kind == "jpeg"
        decoded = decode_pixels(s.data)
        assert decoded.shape == x.shape
        error = np.abs(decoded.astype(int) - x.astype(int))
        assert error.mean() < 8, error.mean()            # lossy, but close: quality 92, no chroma subsampling
        assert np.corrcoef(decoded.ravel(), x.ravel())[0, 1] > 0.9


def test_img_needs_an_image_shape_and_a_valid_quality(tmp_path):
    with pytest.raises(GenerateError, match="--shape"):
        generate(tmp_path / "a", samples=4, shard_size=2, shape=(2, 8, 8), formats=["img"], progress=False,
                 report=None)
    with pytest.raises(GenerateError, match="--jpeg-quality"):
        generate(tmp_path / "b", samples=4, shard_size=2, shape=(3, 8, 8), formats=["img"], jpeg_quality=0,
                 progress=False, report=None)


def test_a_different_quality_for_existing_img_shards_is_refused(tmp_path):
    root = tmp_path / "q"
    generate(root, **IMG, formats=["img"], jpeg_quality=80, progress=False, report=None)
    with pytest.raises(GenerateError, match="quality 80"):
        generate(root, **IMG, formats=["img"], jpeg_quality=70, progress=False, report=None)


def _epoch(ds, num_workers: int, **kw) -> list[dict[str, torch.Tensor]]:
    return list(DataLoader(ds, batch_size=None, num_workers=num_workers, **kw))


@pytest.mark.parametrize("num_workers", [0, 2])
def test_every_sample_exactly_once_with_its_label(img_data, num_workers):
    ds = ImageShardDataset(img_data, batch_size=8, size=12, seed=1)
    batches = _epoch(ds, num_workers)
    idx = torch.cat([b["idx"] for b in batches])
    assert sorted(idx.tolist()) == list(range(IMG["samples"])) and len(ds) == IMG["samples"]
    for b in batches:
        assert b["x"].dtype == torch.float32 and b["x"].shape[1:] == (3, 12, 12)
        for i, y in zip(b["idx"].tolist(), b["y"].tolist()):
            assert make_sample(IMG["seed"], i, IMG["shape"], IMG["classes"])[1] == y


def test_order_is_a_function_of_seed_and_epoch_and_decoding_does_not_change_it(img_data):
    def order(**kw):
        return torch.cat([b["idx"] for b in ImageShardDataset(img_data, batch_size=8, size=8, **kw)]).tolist()

    assert order(seed=1) == order(seed=1) == order(seed=1, decode=False)
    assert order(seed=1) != order(seed=2)
    ds = ImageShardDataset(img_data, batch_size=8, size=8, seed=1)
    first = torch.cat([b["idx"] for b in ds]).tolist()
    ds.set_epoch(1)
    assert torch.cat([b["idx"] for b in ds]).tolist() != first
    assert order(shuffle=False) == list(range(IMG["samples"]))


def test_augmented_batches_are_reproducible_and_unaugmented_ones_match_the_pixels(img_data):
    a = next(iter(ImageShardDataset(img_data, batch_size=4, size=10, seed=5)))
    b = next(iter(ImageShardDataset(img_data, batch_size=4, size=10, seed=5)))
    assert torch.equal(a["x"], b["x"])
    plain = next(iter(ImageShardDataset(img_data, batch_size=4, size=24, shuffle=False, augment=False,
                                        mean=(0.0,), std=(1 / 255,))))
    # no crop, no flip, identity normalization: the decoded image resized from 24x20 to 24x24
    x = make_sample(IMG["seed"], 0, IMG["shape"], IMG["classes"])[0].astype(np.float32)
    got = plain["x"][0].numpy()
    assert abs(got.mean() - x.mean()) < 4 and got.shape == (3, 24, 24)


@pytest.mark.parametrize("decoder", ["simplejpeg", "pillow"])
def test_both_decoders_give_close_images(img_data, decoder):
    base = next(iter(ImageShardDataset(img_data, batch_size=4, size=12, seed=0, decoder="pillow")))
    other = next(iter(ImageShardDataset(img_data, batch_size=4, size=12, seed=0, decoder=decoder)))
    assert torch.equal(base["idx"], other["idx"])
    assert (base["x"] - other["x"]).abs().mean() < 0.2   # same crops; decoders differ by rounding


def test_png_members_and_any_size_work(tmp_path):
    import webdataset as wds
    from PIL import Image

    folder = tmp_path / "png"
    folder.mkdir()
    with wds.TarWriter(str(folder / "shard_0000.tar"), encoder=False) as sink:
        for i, (h, w) in enumerate([(30, 17), (9, 40), (25, 25)]):
            buf = io.BytesIO()
            mode = "L" if i == 1 else "RGBA" if i == 2 else "RGB"
            Image.new(mode, (w, h), color=100 if mode == "L" else (10 * i, 20, 30, 255)[:len(mode)]).save(buf, "PNG")
            sink.write({"__key__": f"{i:09d}", "png": buf.getvalue(), "cls": str(i).encode(),
                        "idx": str(i).encode()})
    batches = _epoch(ImageShardDataset(folder, batch_size=2, size=16), 0)
    assert sorted(torch.cat([b["idx"] for b in batches]).tolist()) == [0, 1, 2]
    assert all(b["x"].shape[1:] == (3, 16, 16) for b in batches)


def test_pickle_members_and_truncated_shards_are_refused_naming_the_shard(img_data, tmp_path):
    bad = seed_style_shard(img_data, tmp_path / "seed.tar")
    with pytest.raises(ImageShardError, match=r"seed\.tar.*target\.pt.*refused"):
        read_image_shard(bad)
    assert issubclass(ImageShardError, ShardError)
    shard = sorted((img_data / "img").glob("*.tar"))[0]
    data = shard.read_bytes()
    cut = tmp_path / "cut.tar"
    cut.write_bytes(data[:len(data) // 2])
    with pytest.raises(ImageShardError, match="cut.tar"):
        read_image_shard(cut)
    # cut exactly after a member: a valid-looking shorter tar; the manifest's count catches it
    with tarfile.open(shard) as tar:
        members = tar.getmembers()
    last = members[11]   # the 4th sample's last member (3 members per sample)
    boundary = last.offset_data + -(-last.size // 512) * 512
    cut.write_bytes(data[:boundary])
    with pytest.raises(ImageShardError, match="lost"):
        read_image_shard(cut, expected=16)


def test_the_dataset_and_the_seed_pipeline_pickle_and_run_under_spawn(img_data):
    ds = ImageShardDataset(img_data, batch_size=8, size=8)
    pickle.dumps(ds)
    pickle.dumps(seed_jpeg_pipeline(img_data, TrainTransform(8), batch_size=8))
    batches = _epoch(ds, 2, multiprocessing_context="spawn")
    assert sorted(torch.cat([b["idx"] for b in batches]).tolist()) == list(range(IMG["samples"]))


def test_seed_pipeline_yields_transformed_batches(img_data):
    batches = _epoch(seed_jpeg_pipeline(img_data, TrainTransform(8), batch_size=8, shuffle_buffer=10), 0)
    x, y, idx = batches[0]
    assert x.shape == (8, 3, 8, 8) and x.dtype == torch.float32 and len(y) == len(idx) == 8
    seen = torch.cat([torch.as_tensor(b[2]) for b in batches]).tolist()
    assert len(seen) == len(set(seen)) == IMG["samples"] // 8 * 8   # partial=False drops the short tail


def test_train_transform_shapes_determinism_and_range():
    image = torch.randint(0, 256, (3, 40, 30), dtype=torch.uint8)
    t = TrainTransform(16)
    out = t(image, generator=torch.Generator().manual_seed(0))
    assert out.shape == (3, 16, 16) and out.dtype == torch.float32
    assert torch.equal(out, t(image, generator=torch.Generator().manual_seed(0)))
    assert not torch.equal(out, t(image, generator=torch.Generator().manual_seed(1)))
    pil = TrainTransform(16)(np.zeros((40, 30, 3), dtype=np.uint8), generator=torch.Generator().manual_seed(0))
    expected = -torch.tensor([0.485, 0.456, 0.406]) / torch.tensor([0.229, 0.224, 0.225])
    assert torch.allclose(pil[:, 0, 0], expected, atol=1e-5)   # black normalizes to -mean/std


def test_flip_actually_flips():
    ramp = torch.arange(32, dtype=torch.uint8).repeat(3, 32, 1)             # brighter to the right
    never = TrainTransform(32, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=0.0)(ramp)
    always = TrainTransform(32, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=1.0)(ramp)
    assert never[0, 0, -1] > never[0, 0, 0] and always[0, 0, 0] > always[0, 0, -1]
    assert torch.allclose(always, never.flip(-1))
    images = np.tile(np.arange(8, dtype=np.uint8)[None, None, :, None], (2, 8, 1, 3))   # (B, H, W, C)
    batch = finish_batch(images, np.array([True, False]), mean=(0.0,), std=(1 / 255,))
    assert batch.shape == (2, 3, 8, 8)
    assert torch.equal(batch[0, :, :, 0], batch[1, :, :, -1]) and batch[1, 0, 0, 0] == 0
    assert images[0, 0, 0, 0] == 0   # the caller's images are not modified


def test_crop_box_stays_inside_and_respects_scale():
    rng = np.random.default_rng(0)
    for _ in range(200):
        h, w = int(rng.integers(5, 300)), int(rng.integers(5, 300))
        top, left, ch, cw = crop_box(h, w, rng.random, scale=(0.3, 1.0))
        assert 0 <= top and top + ch <= h and 0 <= left and left + cw <= w and ch > 0 and cw > 0
