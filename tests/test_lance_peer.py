"""Lance as a peer: its three readers deliver every sample once, and what chapter 05 says about its shuffle.

Lance starts threads of its own when it is imported and warns that it is not fork-safe: every check runs in a
spawned process, so this pytest worker never imports it and can still fork DataLoader workers for later files."""
from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from course_lib.measure.lance_peer import lance_epoch_orders


def in_spawned_process(fn, *args):
    """``fn(*args)`` in a fresh spawned interpreter (its result pickled back)."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result(timeout=240)


def _readers(data: str, tmp: str) -> tuple[dict[str, float], list[dict]]:
    import torch

    from course_lib.measure.lance_peer import lance_specs
    from course_lib.measure.shuffle_metrics import arrival_order

    timings: dict[str, float] = {}
    seen = []
    for spec in lance_specs(Path(data), Path(tmp), batch_size=16, crop_size=8, timings=timings):
        ids = arrival_order(spec.make(0)).tolist()
        batch = next(iter(spec.make(0)))
        seen.append({"name": spec.name, "library": spec.library, "ids": ids,
                     "order": arrival_order(spec.order()).tolist(), "uint8": batch["x"].dtype == torch.uint8,
                     "shape": tuple(batch["x"].shape[1:])})
    return timings, seen


def test_every_lance_reader_delivers_each_sample_once(small_data, tmp_path):
    timings, readers = in_spawned_process(_readers, str(small_data), str(tmp_path))
    assert [r["library"] for r in readers] == ["lance"] * 3 and timings["lance raw conversion"] > 0
    for r in readers:
        assert sorted(r["ids"]) == list(range(103)), r["name"]
        assert r["order"] == r["ids"], f"{r['name']}: order() is not its order"
        assert r["uint8"] and r["shape"] == (3, 4, 4), r["name"]   # small_data


@pytest.mark.parametrize("seed", [0, 7])
def test_claim_lance_batch_shuffle_repeats_every_epoch_and_reseeds_python_random(small_data, tmp_path, seed):
    """Chapter 05b: 'its batch-order shuffle repeats the same order every epoch (set_epoch does not reach it),
    and it reseeds Python's global random' - true of the installed pylance; the fix is a sampler per epoch."""
    found = lance_epoch_orders(small_data, tmp_path, batch_size=16, seed=seed)   # in a spawned process
    assert found == {"shuffled": True, "repeats_with_set_epoch": True, "reseeds_python_random": True,
                     "differs_with_epoch_seed": True}, found
