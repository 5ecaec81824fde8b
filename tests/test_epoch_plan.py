"""Property tests of the pure epoch plan: exactly-once, equal counts, reproducibility, resume."""
from __future__ import annotations

import subprocess
import sys
from itertools import zip_longest

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.loaders.epoch_plan import (
    SHUFFLE_MODES,
    EpochPlan,
    block_table,
    deal,
    epoch_order,
    rank_length,
    remaining_positions,
)

shard_sizes = st.lists(st.integers(min_value=0, max_value=37), min_size=1, max_size=6).filter(lambda s: sum(s) > 0)


def loader_order(plan: EpochPlan, workers: int, unit: int, resume: int = 0) -> list[int]:
    """What a DataLoader yields: results taken round-robin from each worker's units (0 workers = 1 worker)."""
    streams = [list(plan.worker_units(w, max(workers, 1), unit, resume)) for w in range(max(workers, 1))]
    out: list[int] = []
    for round_ in zip_longest(*streams):
        for units in round_:
            if units is not None:
                out += units.tolist()
    return out


@settings(max_examples=150, deadline=None)
@given(sizes=shard_sizes, mode=st.sampled_from(SHUFFLE_MODES), workers=st.integers(0, 3),
       world=st.integers(1, 3), block=st.integers(1, 9), unit=st.integers(1, 7), window=st.integers(1, 4),
       seed=st.integers(0, 2**32 - 1), epoch=st.integers(0, 50), run=st.integers(1, 5))
def test_every_sample_exactly_once_across_ranks_and_workers(sizes, mode, workers, world, block, unit, window, seed,
                                                            epoch, run):
    seen = []
    for rank in range(world):
        plan = EpochPlan(sizes, block_size=block, shuffle=mode, seed=seed, epoch=epoch, rank=rank,
                         world_size=world, window_blocks=window, run_length=run)
        order = loader_order(plan, workers, unit)
        assert len(order) == len(plan)
        assert order == plan.ids(0, len(plan)).tolist(), "worker split changed the rank's order"
        seen += order
    assert sorted(seen) == list(range(sum(sizes)))


@settings(max_examples=100, deadline=None)
@given(sizes=shard_sizes, mode=st.sampled_from(SHUFFLE_MODES), world=st.integers(1, 4),
       block=st.integers(1, 9), seed=st.integers(0, 1000))
def test_drop_last_gives_equal_counts_and_no_duplicates(sizes, mode, world, block, seed):
    plans = [EpochPlan(sizes, block_size=block, shuffle=mode, seed=seed, rank=r, world_size=world, drop_last=True)
             for r in range(world)]
    counts = {len(loader_order(p, 2, 3)) for p in plans}
    assert counts == {sum(sizes) // world}
    ids = np.concatenate([p.ids(0, len(p)) for p in plans])
    assert len(np.unique(ids)) == len(ids)


@settings(max_examples=100, deadline=None)
@given(sizes=shard_sizes, mode=st.sampled_from(SHUFFLE_MODES), workers=st.integers(0, 3),
       unit=st.integers(1, 6), run=st.integers(1, 3), data=st.data())
def test_resume_yields_exactly_the_rest_in_order(sizes, mode, workers, unit, run, data):
    plan = EpochPlan(sizes, block_size=4, shuffle=mode, seed=3, epoch=1, window_blocks=2, run_length=run)
    full = loader_order(plan, workers, unit)
    cut = data.draw(st.integers(0, len(plan)), label="samples consumed before the stop")
    fresh = EpochPlan(sizes, block_size=4, shuffle=mode, seed=3, epoch=1, window_blocks=2, run_length=run)
    assert loader_order(fresh, workers, unit, resume=cut) == full[cut:]


@pytest.mark.parametrize("mode", ["block", "sample"])
def test_epochs_differ_and_seeds_differ(mode):
    sizes = [100, 100, 57]
    base = EpochPlan(sizes, block_size=8, shuffle=mode, seed=0, epoch=0).ids(0, 257)
    assert not np.array_equal(base, EpochPlan(sizes, block_size=8, shuffle=mode, seed=0, epoch=1).ids(0, 257))
    assert not np.array_equal(base, EpochPlan(sizes, block_size=8, shuffle=mode, seed=1, epoch=0).ids(0, 257))
    assert np.array_equal(base, EpochPlan(sizes, block_size=8, shuffle=mode, seed=0, epoch=0).ids(0, 257))


def test_order_is_the_same_in_a_new_process_and_ignores_global_rng():
    code = ("from course_lib.loaders.epoch_plan import EpochPlan; import numpy as np; np.random.seed(123);"
            "print(EpochPlan([50, 31], block_size=4, shuffle='block', seed=5, epoch=2).ids(0, 81).tolist())")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
            for _ in range(2)}
    np.random.seed(999)
    here = str(EpochPlan([50, 31], block_size=4, shuffle="block", seed=5, epoch=2).ids(0, 81).tolist()) + "\n"
    assert outs == {here}


def test_none_is_file_order_and_block_keeps_blocks_contiguous_in_file():
    sizes = [10, 7]
    assert EpochPlan(sizes, shuffle="none", block_size=3).ids(0, 17).tolist() == list(range(17))
    table = block_table(sizes, 3)
    assert table.tolist() == [[0, 3], [3, 6], [6, 9], [9, 10], [10, 13], [13, 16], [16, 17]]


def test_block_shuffle_mixes_samples():
    plan = EpochPlan([1000] * 10, block_size=16, shuffle="block", seed=0, window_blocks=8)
    order = plan.ids(0, len(plan))
    corr = np.corrcoef(np.arange(len(order)), order)[0, 1]
    assert abs(corr) < 0.1, f"order still follows write order (corr={corr:.2f})"


def test_deal_covers_everything_in_rounds_and_splits_the_last_round():
    assert [deal(10, 1, r, 3, False).tolist() for r in range(3)] == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    assert [deal(10, 1, r, 3, True).tolist() for r in range(3)] == [[0, 3, 6], [1, 4, 7], [2, 5, 8]]
    # pieces of 2: one round of 3 x 2, then the last 4 split 2/1/1 in rank order
    assert [deal(10, 2, r, 3, False).tolist() for r in range(3)] == [[0, 1, 6, 7], [2, 3, 8], [4, 5, 9]]
    assert remaining_positions(6, [1, 3, 4, 5]).tolist() == [0, 3, 5]


def interleaved(plans: list[EpochPlan], piece: int) -> list[int]:
    """The ranks' batches in rank order: batch 0 of rank 0, of rank 1, ..., then batch 1 of each."""
    batches = [[p.ids(k, k + piece).tolist() for k in range(0, len(p), piece)] for p in plans]
    return [i for round_ in zip_longest(*batches) for batch in round_ if batch is not None for i in batch]


@settings(max_examples=150, deadline=None)
@given(sizes=shard_sizes, mode=st.sampled_from(SHUFFLE_MODES), world=st.integers(1, 5), piece=st.integers(1, 7),
       block=st.integers(1, 9), window=st.integers(1, 4), run=st.integers(1, 4), streams=st.integers(1, 6),
       seed=st.integers(0, 2**32 - 1), drop_last=st.booleans())
def test_the_ranks_batches_in_rank_order_give_the_epoch_order_for_every_world_size(
        sizes, mode, world, piece, block, window, run, streams, seed, drop_last):
    settings_ = dict(block_size=block, shuffle=mode, seed=seed, epoch=3, window_blocks=window, run_length=run,
                     batch_size=piece, streams=streams)
    order = epoch_order(sizes, block_size=block, shuffle=mode, seed=seed, epoch=3, window_blocks=window,
                        run_length=run, piece=piece, streams=streams).tolist()
    assert sorted(order) == list(range(sum(sizes)))
    plans = [EpochPlan(sizes, rank=r, world_size=world, drop_last=drop_last, **settings_) for r in range(world)]
    got = interleaved(plans, piece)
    kept = len(order) - len(order) % world if drop_last else len(order)
    assert got == order[:kept]                        # the same global sequence, whatever the world size
    assert [len(p) for p in plans] == [rank_length(len(order), piece, r, world, drop_last) for r in range(world)]
    if drop_last:
        assert len({len(p) for p in plans}) == 1 and len(order) - kept < world


@pytest.mark.parametrize("world", [1, 2, 4, 8])
@pytest.mark.parametrize("piece", [None, 32])
def test_each_rank_reads_about_one_world_size_th_of_the_blocks(world, piece):
    """Locality: with world_size dividing streams, a rank's ids come from about 1/world_size of the blocks (the
    bytes it touches), plus the few blocks cut between two spans."""
    sizes, block = [500] * 40, 64
    blocks = block_table(sizes, block)
    touched = []
    for r in range(world):
        plan = EpochPlan(sizes, block_size=block, batch_size=piece, run_length=2, window_blocks=8, streams=8,
                         rank=r, world_size=world, seed=1)
        touched.append(set(np.searchsorted(blocks[:, 0], plan.ids(0, len(plan)), side="right").tolist()))
    share = len(blocks) / world
    assert all(len(t) <= share * 1.1 for t in touched), [len(t) for t in touched]
    assert sum(len(t) for t in touched) <= len(blocks) * 1.1        # hardly any block read by two ranks


@pytest.mark.parametrize("kwargs,word", [
    (dict(shuffle="random"), "shuffle"), (dict(block_size=0), "block_size"), (dict(world_size=0), "world_size"),
    (dict(rank=2, world_size=2), "rank"), (dict(window_blocks=0), "window_blocks")])
def test_bad_plan_arguments(kwargs, word):
    with pytest.raises(ValueError, match=word):
        EpochPlan([10], **kwargs)


def test_resume_out_of_range():
    with pytest.raises(ValueError, match="resume"):
        list(EpochPlan([10]).worker_units(resume=11))


@pytest.mark.parametrize("worker,workers,unit", [(0, 0, 1), (2, 2, 1), (-1, 2, 1), (0, 1, 0)])
def test_bad_worker_split(worker, workers, unit):
    with pytest.raises(ValueError, match="worker split"):
        list(EpochPlan([10]).worker_units(worker, workers, unit))


def test_runs_keep_consecutive_samples_together_within_a_block():
    plan = EpochPlan([1000] * 4, block_size=16, shuffle="block", seed=0, window_blocks=8, run_length=4, batch_size=16)
    order = plan.ids(0, len(plan))
    assert sorted(order.tolist()) == list(range(4000))
    runs = order.reshape(-1, 4)            # every run: 4 consecutive ids inside one block of 16
    assert (np.diff(runs, axis=1) == 1).all() and (runs[:, 0] // 16 == runs[:, -1] // 16).all()
    single = EpochPlan([1000] * 4, block_size=16, shuffle="block", seed=0, window_blocks=8, batch_size=16).ids(0, 4000)
    assert (np.abs(np.diff(single)) == 1).mean() < 0.2 < (np.abs(np.diff(order)) == 1).mean()
