"""Every peer library chapter 05 compares, measured at a small size on the course's image data.

tests/test_notebooks.py runs chapter 05 with one peer (``peer_libraries="torchdata"``) to keep the course run
short; this file measures them all, through measure/peer_runner.py as the chapter does (one subprocess, a
forked process per peer). A peer that is installed but fails to run fails here; one that is not installed
fails in CI (COURSE_STRICT / CI, see tests/conftest.py) and is skipped with the reason elsewhere."""
from __future__ import annotations

import pytest

from course_lib.measure.peer_runner import PEER_LIBRARIES, run_peers
from course_lib.measure.regimes import image_data

from conftest import require

TINY_IMAGES = dict(samples=64, shard_size=16, shape=(3, 16, 16))
PACKAGES = {"litdata": "litdata", "HF datasets": "datasets", "torchdata": "torchdata", "webdataset": "webdataset",
            "lance": "lance"}
pytestmark = pytest.mark.timeout(900)   # one subprocess: its start-up plus up to SMALL_RUN's timeout per peer
SMALL_RUN = dict(worker_counts=[0], repeats=1, max_seconds=0.05, batch_size=16, crop_size=8, wait_workers=[0],
                 wait_batches=2, timeout=120.0)


def test_every_peer_library_has_its_package_named():
    assert set(PACKAGES) == set(PEER_LIBRARIES)


@pytest.fixture(scope="module")
def peer_results(tmp_path_factory) -> dict:
    """All installed peers measured once (one subprocess): ``run_peers``'s merged result."""
    root = tmp_path_factory.mktemp("peers")
    images = image_data(root / "data", progress=False, **TINY_IMAGES)
    return run_peers(images, root / "peers", libraries=list(PEER_LIBRARIES), **SMALL_RUN)


@pytest.mark.parametrize("library", PEER_LIBRARIES)
def test_installed_peer_runs_and_reads_every_sample_once(peer_results, library):
    require(PACKAGES[library], install="make setup (the peers extra: pip install -e '.[peers]')")
    failed = {f["library"]: f["error"] for f in peer_results["failed"]}
    assert library not in failed, f"{library} is installed but failed to run: {failed.get(library)}"
    rows = [r for r in peer_results["rows"] if r["library"] == library]
    assert rows and all(r["samples_per_s"] > 0 and r["data_wait"]["batches"] == 2 for r in rows), rows
    orders = [o for o in peer_results["order"] if o["library"] == library]
    assert orders and all(o["samples"] == TINY_IMAGES["samples"] for o in orders), orders   # each sample, once


def test_peers_never_measured_here_are_rows_with_their_reason(peer_results):
    skipped = [f for f in peer_results["failed"] if f["library"] not in PEER_LIBRARIES]
    assert [f["library"] for f in skipped] == ["Mosaic Streaming"] and "skipped:" in skipped[0]["error"]
