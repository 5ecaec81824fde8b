"""``data_gen convert``: every source layout read back exactly, bounded memory, bad input, resumption, the CLI."""
from __future__ import annotations

import hashlib
import io
import json
import tarfile
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import psutil
import pytest
from PIL import Image
from torch.utils.data import DataLoader

from course_lib import MmapShardDataset, make_image_webdataset, make_webdataset
from course_lib.loaders.shard_errors import ShardReadError
from course_lib.teaching import export_per_sample_files
from data_gen import ConvertError, convert, read_manifest, verify, write_sample_image_folder, writers
from data_gen.cli import main
from data_gen.images import decode_image
from data_gen.writers import write_npy_shard

SHAPE = (3, 12, 10)


def records(out: Path) -> np.ndarray:
    """Every npy record of a converted dataset, in index order."""
    return np.concatenate([np.load(p, allow_pickle=False) for p in sorted((out / "npy").glob("shard_*.npy"))])


def tar_samples(out: Path, fmt: str) -> dict[int, dict[str, bytes]]:
    """idx -> members of every sample in the ``fmt`` tars (each idx must appear once)."""
    samples: dict[int, dict[str, bytes]] = {}
    for path in sorted((out / fmt).glob("shard_*.tar")):
        with tarfile.open(path) as tar:
            grouped: dict[str, dict[str, bytes]] = {}
            for info in tar:
                key, member = info.name.split(".", 1)
                grouped.setdefault(key, {})[member] = tar.extractfile(info).read()
        for members in grouped.values():
            idx = int(members["idx"])
            assert idx not in samples, f"sample {idx} twice"
            samples[idx] = members
    return samples


def no_temp_files(root: Path) -> bool:
    return not [p for p in root.rglob("*") if ".tmp-" in p.name]


def listing(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    return write_sample_image_folder(tmp_path_factory.mktemp("images") / "src", images=41, max_side=60)


def corrupt_file(root: Path) -> str:
    """The sample folder's one corrupt file (its last), relative to the folder."""
    return str(next(root.rglob("0040.jpg")).relative_to(root))


def source_images(root: Path) -> dict[str, tuple[bytes, int]]:
    """Relative path -> (bytes, label from the sorted class folders), read independently of the converter."""
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    return {str(p.relative_to(root)): (p.read_bytes(), classes.index(p.parent.name))
            for p in sorted(root.rglob("*")) if p.is_file()}


# -- each layout read back exactly ------------------------------------------------------------------------------

def test_image_folder_keeps_bytes_decodes_pixels_and_counts_the_corrupt_file(image_folder, tmp_path):
    out = tmp_path / "out"
    manifest = convert(image_folder, out, shape=SHAPE, formats=["npy", "img", "wds"], shard_size=7, skip_bad=True,
                       progress=False, report=None)
    files = source_images(image_folder)
    corrupt = corrupt_file(image_folder)
    good = {rel: v for rel, v in files.items() if rel != corrupt}
    assert manifest["skipped"] == [{"file": corrupt, "reason": manifest["skipped"][0]["reason"]}]
    assert "truncated" in manifest["skipped"][0]["reason"] and manifest["skipped_count"] == 1
    assert manifest["class_names"] == sorted(p.name for p in image_folder.iterdir())
    assert manifest["total_samples"] == len(good) and manifest["classes"] == 4 and verify(out) == []

    by_bytes = {hashlib.sha256(data).hexdigest(): (rel, label) for rel, (data, label) in good.items()}
    img, recs, wds = tar_samples(out, "img"), records(out), tar_samples(out, "wds")
    assert sorted(img) == sorted(wds) == list(range(len(good))) == recs["idx"].tolist()
    seen = Counter()
    for idx, members in img.items():
        (ext,) = set(members) & {"jpg", "png"}
        rel, label = by_bytes[hashlib.sha256(members[ext]).hexdigest()]   # the original bytes, not re-encoded
        seen[rel] += 1
        assert ext == rel.rsplit(".", 1)[1] and int(members["cls"]) == label == recs["y"][idx]
        pixels = decode_image(good[rel][0], SHAPE)
        assert np.array_equal(recs["x"][idx], pixels)
        assert np.array_equal(np.load(io.BytesIO(wds[idx]["x.npy"])), pixels)
    assert seen == Counter(list(good))   # every readable file exactly once


def test_converted_images_stream_through_the_course_loaders(image_folder, tmp_path):
    out = tmp_path / "out"
    convert(image_folder, out, shape=SHAPE, shard_size=7, skip_bad=True, progress=False, report=None)
    n = read_manifest(out)["total_samples"]
    ds = MmapShardDataset(out, batch_size=8)
    ids = np.concatenate([b["idx"].numpy() for b in DataLoader(ds, batch_size=None, num_workers=2)])
    assert sorted(ids.tolist()) == list(range(n))
    recs = records(out)
    decoded = {s["idx"]: s for s in make_image_webdataset(out)}   # shape from the manifest
    assert sorted(decoded) == list(range(n))
    assert all(np.array_equal(decoded[i]["x"].numpy(), recs["x"][i]) and decoded[i]["y"] == recs["y"][i]
               for i in range(n))


@pytest.mark.parametrize("layout", ["npy pair", "npz stored", "npz compressed"])
def test_arrays_read_back_exactly(tmp_path, layout):
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, 256, (53, 3, 5, 4), dtype=np.uint8), rng.integers(0, 7, 53)
    if layout == "npy pair":
        src = tmp_path / "arrays"
        src.mkdir()
        np.save(src / "x.npy", x)
        np.save(src / "y.npy", y)
    else:
        src = tmp_path / "arrays.npz"
        (np.savez if layout == "npz stored" else np.savez_compressed)(src, x=x, y=y)
    out = tmp_path / "out"
    manifest = convert(src, out, formats=["npy", "wds", "wdsb"], shard_size=10, progress=False, report=None)
    assert manifest["shape"] == [3, 5, 4] and manifest["total_samples"] == 53 and manifest["classes"] == y.max() + 1
    assert verify(out) == [] and manifest["class_names"] is None and manifest["skipped"] == []
    recs = records(out)
    order = shuffled_order(53) if layout != "npz compressed" else np.arange(53)   # a stream keeps its order
    assert manifest["source"]["order"].startswith("shuffled with seed 0" if layout != "npz compressed" else "as stored")
    assert np.array_equal(recs["x"], x[order]) and np.array_equal(recs["y"], y[order])
    assert recs["idx"].tolist() == list(range(53))
    streamed = sorted((s for s in make_webdataset(out, shuffle_buffer=0)), key=lambda s: s["idx"])
    assert np.array_equal(np.stack([s["x"].numpy() for s in streamed]), x[order])
    assert [s["y"] for s in streamed] == y[order].tolist()


def shuffled_order(n: int, seed: int = 0) -> np.ndarray:
    """The order convert writes a randomly readable source in: source row of converted sample i."""
    return np.random.default_rng(seed).permutation(n)


def test_a_class_sorted_array_is_mixed_across_shards(tmp_path):
    """Arrays sorted by class (as many datasets are saved) must not give shards of one class each."""
    src = tmp_path / "sorted"
    src.mkdir()
    np.save(src / "x.npy", np.zeros((1000, 1, 2, 2), np.uint8))
    np.save(src / "y.npy", np.repeat(np.arange(10), 100))
    convert(src, tmp_path / "out", shard_size=100, progress=False, report=None)
    first_shard = np.load(sorted((tmp_path / "out" / "npy").glob("*.npy"))[0])["y"]
    assert len(np.unique(first_shard)) == 10, "a shard of the converted data holds every class"
    again = convert(src, tmp_path / "other", shard_size=100, seed=1, progress=False, report=None)
    assert again["source"]["order"] == "shuffled with seed 1"
    assert not np.array_equal(np.load(sorted((tmp_path / "other" / "npy").glob("*.npy"))[0])["y"], first_shard)


def test_per_sample_files_read_back_exactly(small_data, tmp_path):
    files = export_per_sample_files(small_data, tmp_path / "files", limit=45)
    out = tmp_path / "out"
    manifest = convert(files, out, shard_size=20, progress=False, report=None)
    original = records(small_data)[:45][shuffled_order(45)]   # files sorted by name, then shuffled with seed 0
    recs = records(out)
    assert manifest["source"]["layout"] == "per_sample_npy" and manifest["total_samples"] == 45
    assert np.array_equal(recs["x"], original["x"]) and np.array_equal(recs["y"], original["y"])
    assert recs["idx"].tolist() == list(range(45)) and verify(out) == []


# -- larger than RAM: converted without reading the array whole ------------------------------------------------

class PeakAnon:
    """Peak anonymous memory (rss - shared) of this process, sampled by psutil every 5 ms."""

    def __init__(self):
        self.proc, self.peak, self.stop = psutil.Process(), 0, threading.Event()

    def anon(self) -> int:
        info = self.proc.memory_info()
        return info.rss - info.shared

    def __enter__(self):
        self.start = self.peak = self.anon()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
        return self

    def run(self):
        while not self.stop.wait(0.005):
            self.peak = max(self.peak, self.anon())

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.peak = max(self.peak, self.anon())


@pytest.mark.parametrize("layout", ["npy pair", "npz compressed"])
def test_a_large_array_is_converted_with_bounded_memory(tmp_path, layout):
    n, shape = 25_000, (3, 64, 64)                      # 307 MB of images
    bound_mb = 64
    src = tmp_path / "big"
    src.mkdir()
    x = np.lib.format.open_memmap(src / "x.npy", mode="w+", dtype=np.uint8, shape=(n, *shape))  # sparse file
    marks = np.arange(0, n, 997)
    x[marks, 0, 0, 0] = (marks % 251).astype(np.uint8)   # a few known bytes to read back
    x.flush()
    del x
    y = np.arange(n) % 10
    np.save(src / "y.npy", y)
    if layout == "npz compressed":
        big = np.load(src / "x.npy", mmap_mode="r")
        np.savez_compressed(tmp_path / "big.npz", x=big, y=y)     # numpy writes the member in chunks
        del big
        (src / "x.npy").unlink()
        src = tmp_path / "big.npz"
    assert (src.stat().st_size if src.is_file() else (src / "x.npy").stat().st_size) > 0
    out = tmp_path / "out"
    with PeakAnon() as memory:
        manifest = convert(src, out, shard_size=1_000, progress=False, report=None)   # 12 MB per shard
    grown_mb = (memory.peak - memory.start) / 1e6
    assert manifest["total_samples"] == n and n * np.prod(shape) / 1e6 > 4 * bound_mb
    assert grown_mb < bound_mb, f"anonymous memory grew {grown_mb:.0f} MB converting {n * np.prod(shape) / 1e6:.0f} MB"
    ds_x = np.concatenate([np.load(p, mmap_mode="r")["x"][:, 0, 0, 0] for p in sorted((out / "npy").glob("*.npy"))])
    if layout != "npz compressed":   # converted sample i is source row order[i]: put them back in source order
        restored = np.empty_like(ds_x)
        restored[shuffled_order(n)] = ds_x
        ds_x = restored
    assert np.array_equal(ds_x[marks], marks % 251) and int(ds_x.sum()) == int((marks % 251).sum())


# -- bad input: clear errors, exit 2, nothing half-written ------------------------------------------------------

def _mixed_lengths(tmp: Path) -> Path:
    src = tmp / "mixed"
    src.mkdir()
    np.save(src / "x.npy", np.zeros((5, 2, 2), np.uint8))
    np.save(src / "y.npy", np.zeros(4, np.int64))
    return src


def _empty(tmp: Path) -> Path:
    (tmp / "empty").mkdir()
    return tmp / "empty"


def _no_images(tmp: Path) -> Path:
    (tmp / "classes" / "a").mkdir(parents=True)
    (tmp / "classes" / "b").mkdir()
    return tmp / "classes"


def _mixed_sample_shapes(tmp: Path) -> Path:
    src = tmp / "files"
    src.mkdir()
    for i, side in enumerate([2, 2, 3]):
        rec = np.zeros(1, dtype=[("x", np.uint8, (1, side, side)), ("y", "<i8")])
        np.save(src / f"sample_{i}.npy", rec)
    return src


def _not_an_image(tmp: Path) -> Path:
    src = tmp / "pics"
    (src / "cat").mkdir(parents=True)
    for i in range(3):
        Image.new("RGB", (9, 7), (i, 0, 0)).save(src / "cat" / f"{i}.png")
    (src / "cat" / "notes.jpg").write_text("these are my notes, not a picture")
    return src


@pytest.mark.parametrize("make, argument, says", [
    (lambda tmp: tmp / "missing", "SRC", "no such file or folder"),
    (_empty, "SRC", "empty folder"),
    (_no_images, "SRC", "no files in its class folders"),
    (_mixed_lengths, "SRC", "mixed array lengths: x has 5 rows, y has 4"),
    (_mixed_sample_shapes, "SRC", "mixed samples"),
    (_not_an_image, "SRC", "notes.jpg: not a JPEG or PNG image"),
])
def test_bad_sources_are_named_exit_2_and_leave_nothing(tmp_path, capsys, make, argument, says):
    src, out = make(tmp_path), tmp_path / "out"
    with pytest.raises(ConvertError) as err:
        convert(src, out, progress=False, report=None)
    assert err.value.argument == argument and says in str(err.value)
    assert main(["convert", str(src), "--out", str(out), "--no-progress"]) == 2
    assert says in capsys.readouterr().err
    assert not out.exists()


def test_skip_bad_counts_and_names_the_non_image(tmp_path):
    src, out = _not_an_image(tmp_path), tmp_path / "out"
    assert main(["convert", str(src), "--out", str(out), "--skip-bad", "--no-progress", "--shape", "3,4,4"]) == 0
    manifest = read_manifest(out)
    assert manifest["total_samples"] == 3 and manifest["skipped_count"] == 1
    assert manifest["skipped"][0]["file"] == "cat/notes.jpg" and "not a JPEG or PNG" in manifest["skipped"][0]["reason"]
    assert main(["verify", str(out)]) == 0


def test_output_folder_holding_another_dataset_is_refused_untouched(image_folder, small_data, tmp_path, capsys):
    other = tmp_path / "other"
    convert(_not_an_image(tmp_path), other, skip_bad=True, shape=SHAPE, progress=False, report=None)
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "keep.txt").write_text("mine")
    for out, says in [(small_data, "written by 'data_gen generate'"), (other, "already holds another dataset"),
                      (stray, "not empty and holds no manifest.json")]:
        before = listing(out)
        assert main(["convert", str(image_folder), "--out", str(out), "--skip-bad", "--no-progress"]) == 2
        assert says in capsys.readouterr().err
        assert listing(out) == before


@pytest.mark.parametrize("args, says", [
    (["--formats", "img"], "img keeps encoded image files: it needs an image folder"),
    (["--formats", "npy,tiff"], "unknown format 'tiff'"),
    (["--shape", "3,8,8"], "--shape asks for (3, 8, 8)"),
    (["--shard-size", "0"], "--shard-size: must be an integer >= 1"),
])
def test_bad_arguments_exit_2(tmp_path, capsys, args, says):
    src = tmp_path / "arrays"
    src.mkdir()
    np.save(src / "x.npy", np.zeros((4, 2, 2), np.uint8))
    np.save(src / "y.npy", np.zeros(4, np.int64))
    assert main(["convert", str(src), "--out", str(tmp_path / "out"), "--no-progress", *args]) == 2
    assert says in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_output_inside_the_source_is_refused(image_folder):
    with pytest.raises(ConvertError, match="inside the source"):
        convert(image_folder, image_folder / "converted", progress=False, report=None)
    assert not (image_folder / "converted").exists()


# -- a corrupt file found mid-run, interruption, resumption ----------------------------------------------------

def test_corrupt_file_mid_run_is_named_then_skip_bad_resumes(image_folder, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ConvertError) as err:
        convert(image_folder, out, shape=SHAPE, shard_size=3, progress=False, report=None)
    assert f"{image_folder / corrupt_file(image_folder)}: not a readable JPEG/PNG image" in str(err.value)
    assert "truncated" in str(err.value) and "--skip-bad" in str(err.value)
    first = read_manifest(out)
    kept = {e["file"]: (out / e["file"]).stat().st_mtime_ns for e in first["formats"]["npy"]["shards"]}
    assert kept and not first["complete"] and no_temp_files(out)
    assert verify(out) and all("manifest.json" in line for line in verify(out))  # unfinished; listed shards intact
    manifest = convert(image_folder, out, shape=SHAPE, shard_size=3, skip_bad=True, progress=False, report=None)
    assert manifest["complete"] and manifest["skipped_count"] == 1 and verify(out) == []
    assert all((out / f).stat().st_mtime_ns == t for f, t in kept.items())   # re-used, not rewritten


def test_interrupted_conversion_resumes_to_the_same_bytes(image_folder, tmp_path, monkeypatch):
    reference = tmp_path / "reference"
    convert(image_folder, reference, shape=SHAPE, shard_size=5, skip_bad=True, progress=False, report=None)

    out, calls = tmp_path / "out", []

    def crash_on_third(path, *args):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt("simulated Ctrl-C while writing a shard")
        write_npy_shard(path, *args)

    monkeypatch.setitem(writers.WRITERS, "npy", crash_on_third)   # the dict convert writes through
    with pytest.raises(KeyboardInterrupt):
        convert(image_folder, out, shape=SHAPE, shard_size=5, skip_bad=True, progress=False, report=None)
    monkeypatch.undo()
    half = read_manifest(out)
    assert not half["complete"] and len([e for e in half["formats"]["npy"]["shards"] if e]) == 2
    assert no_temp_files(out) and verify(out)   # verify says it is unfinished
    (out / "npy" / "shard_0003.npy.tmp-4242").write_bytes(b"left by a killed run")
    (out / "img" / "shard_0000.tar").write_bytes(b"damaged")
    manifest = convert(image_folder, out, shape=SHAPE, shard_size=5, skip_bad=True, progress=False, report=None)
    assert manifest["complete"] and verify(out) == [] and no_temp_files(out)
    assert listing(out / "npy") == listing(reference / "npy") and listing(out / "img") == listing(reference / "img")
    assert manifest["formats"] == read_manifest(reference)["formats"]


def test_adding_a_format_later_rebuilds_the_same_samples(image_folder, tmp_path):
    out = tmp_path / "out"
    convert(image_folder, out, shape=SHAPE, formats=["img"], shard_size=6, skip_bad=True, progress=False, report=None)
    manifest = convert(image_folder, out, shape=SHAPE, formats=["npy"], shard_size=6, skip_bad=True, progress=False,
                       report=None)
    assert set(manifest["formats"]) == {"img", "npy"} and verify(out) == []
    recs, img = records(out), tar_samples(out, "img")
    for idx, members in img.items():
        (ext,) = set(members) & {"jpg", "png"}
        assert np.array_equal(recs["x"][idx], decode_image(members[ext], SHAPE))


# -- the sample folder, the img reader's safety, the benchmark on converted data --------------------------------

def test_sample_image_folder_is_deterministic_mixed_and_has_one_corrupt_file(tmp_path):
    a = write_sample_image_folder(tmp_path / "a", images=40)
    b = write_sample_image_folder(tmp_path / "b", images=40)
    assert listing(a) == listing(b) and len(listing(a)) == 40
    sizes, kinds, broken = set(), Counter(), []
    for path in sorted(a.rglob("*.*")):
        kinds[path.suffix] += 1
        try:
            with Image.open(path) as img:
                img.load()
                sizes.add(img.size)
        except OSError:
            broken.append(path.name)
    assert broken == ["0039.jpg"] and kinds[".jpg"] > 0 and kinds[".png"] > 0 and len(sizes) > 10
    with pytest.raises(FileExistsError):
        write_sample_image_folder(a)


def test_img_reader_refuses_pickle_members(tmp_path):
    shard = tmp_path / "img" / "shard_0000.tar"
    shard.parent.mkdir()
    with tarfile.open(shard, "w") as tar:
        for name, data in [("000000000.pyd", b"\x80\x04N."), ("000000000.cls", b"0"), ("000000000.idx", b"0")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(ShardReadError, match=r"pyd.*no pickle"):
        list(make_image_webdataset(tmp_path, shape=(3, 4, 4)))


def test_bench_skips_formats_a_conversion_did_not_write(tmp_path):
    from course_lib.course.bench import run

    src = tmp_path / "arrays"
    src.mkdir()
    np.save(src / "x.npy", np.random.default_rng(0).integers(0, 256, (40, 3, 4, 4), dtype=np.uint8))
    np.save(src / "y.npy", np.arange(40) % 3)
    convert(src, tmp_path / "out", shard_size=10, progress=False, report=None)
    result = run(tmp_path / "out", repeat=1, num_workers=[None], batch_size=8, progress=False, per_sample_files=40)
    measured = {r["loader"] for r in result["rows"]}
    assert "mmap block shuffle, batched 8" in measured and not any("webdataset" in m for m in measured)
    lacking = [s for s in result["skipped"] if "format, which" in s]
    assert len(lacking) == 4 and all(("needs the wds" in s or "needs the wdsb" in s or "needs the img" in s)
                                     for s in lacking)
    json.dumps(result)
