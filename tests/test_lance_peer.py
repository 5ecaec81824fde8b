"""Lance as a peer: its three readers deliver every sample once, and what chapter 05 says about its shuffle."""
from __future__ import annotations

import random
from pathlib import Path

import torch

from course_lib.measure.lance_peer import epoch_seed, lance_specs, write_lance
from course_lib.measure.shuffle_metrics import arrival_order


def test_every_lance_reader_delivers_each_sample_once(small_data, tmp_path):
    timings: dict[str, float] = {}
    specs = lance_specs(Path(small_data), tmp_path, batch_size=16, crop_size=8, timings=timings)
    assert [s.library for s in specs] == ["lance"] * 3 and timings["lance raw conversion"] > 0
    for spec in specs:
        ids = arrival_order(spec.make(0))
        assert sorted(ids.tolist()) == list(range(103)), spec.name
        assert arrival_order(spec.order()).tolist() == ids.tolist(), f"{spec.name}: order() is not its order"
        batch = next(iter(spec.make(0)))
        assert batch["x"].dtype == torch.uint8 and batch["x"].shape[1:] == (3, 4, 4), spec.name   # small_data


def test_claim_lance_batch_shuffle_repeats_every_epoch_and_reseeds_python_random(small_data, tmp_path):
    """Chapter 05: 'its batch-order shuffle repeats the same order every epoch (set_epoch does not reach it),
    and it reseeds Python's global random' - true of the installed pylance; the fix is a sampler per epoch."""
    from lance.sampler import ShardedBatchSampler
    from lance.torch.data import LanceDataset

    uri = str(write_lance(Path(small_data), tmp_path / "d.lance"))

    def order(sampler) -> list[int]:
        return torch.cat([b["idx"] for b in LanceDataset(uri, batch_size=16, columns=["idx", "y"], sampler=sampler,
                                                         auto_detect_rank=False)]).tolist()

    first, second = ShardedBatchSampler(0, 1, randomize=True, seed=0), ShardedBatchSampler(0, 1, randomize=True, seed=0)
    second.set_epoch(1)
    assert order(first) == order(second) != sorted(order(first))
    random.seed(123)
    expected = random.random()
    random.seed(123)
    order(ShardedBatchSampler(0, 1, randomize=True, seed=0))
    assert random.random() != expected, "the global random generator was left alone"
    fixed = [order(ShardedBatchSampler(0, 1, randomize=True, seed=epoch_seed(0, e))) for e in (0, 1)]
    assert fixed[0] != fixed[1] and sorted(fixed[0]) == sorted(fixed[1]) == list(range(103))
