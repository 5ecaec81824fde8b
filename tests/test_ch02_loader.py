"""Chapter 02's learner loader (the stored ShardLoader) and the checks its three exercises use."""
from __future__ import annotations

import importlib.util
import warnings

import numpy as np
import pytest
from torch.utils.data import DataLoader

from course_lib.measure.fingerprints import coverage
from course_lib.measure.fresh_block_order import (
    block_order_fingerprints,
    block_order_fingerprints_in_fresh_process,
    method_payload,
)
from course_lib.measure.page_cache import cached_ceilings
from course_lib.measure.shuffle_metrics import arrival_order
from course_lib.solutions.ch02_mmap_streaming import ShardLoader

LEARNER_CELL = '''
import numpy as np


def seeded(self):
    return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.blocks))


def global_rng(self):
    return np.random.permutation(len(self.blocks))


BLOCKS = 3
seed = 7  # a notebook global named like an attribute the method reads (self.seed): not sent, not refused


def uses_notebook_value(self):
    return np.arange(BLOCKS)
'''


@pytest.fixture
def notebook_functions(tmp_path):
    """Two block orders as a learner defines them in a notebook: module ``__main__``, source in a file."""
    path = tmp_path / "cell.py"
    path.write_text(LEARNER_CELL)
    spec = importlib.util.spec_from_file_location("cell_module", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for fn in (module.seeded, module.global_rng, module.uses_notebook_value):
        fn.__module__ = "__main__"  # as in a notebook: a new process cannot import it by path
    return module


def test_shard_loader_yields_every_sample_once_with_two_workers_and_batches_of_copies(small_data):
    loader = ShardLoader(small_data, batch_size=8, block_size=16, seed=3)
    total = sum(stop - start for _, start, stop in loader.blocks)
    order = arrival_order(DataLoader(loader, batch_size=None, num_workers=2))
    assert coverage(order, total).exactly_once
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns when a tensor would wrap the read-only map itself
        batch = next(iter(loader))
    assert 0 < batch["x"].shape[0] <= 8 and batch["x"].is_contiguous() and str(batch["y"].dtype) == "torch.int64"


def test_shard_loader_order_depends_on_seed_and_epoch_only(small_data):
    a, b = ShardLoader(small_data, seed=1, block_size=16), ShardLoader(small_data, seed=1, block_size=16)
    np.random.seed(5)
    first = a.block_order()
    np.random.seed(6)
    assert np.array_equal(first, b.block_order())
    b.set_epoch(1)
    assert not np.array_equal(first, b.block_order())
    assert sorted(first) == list(range(len(a.blocks)))


def test_stored_block_order_gives_the_same_fingerprints_in_a_fresh_process(small_data):
    here = block_order_fingerprints(ShardLoader, ShardLoader.block_order, small_data, seed=2, block_size=16)
    fresh = block_order_fingerprints_in_fresh_process(ShardLoader, ShardLoader.block_order, small_data, seed=2,
                                                      block_size=16)
    assert here == fresh and here["0"] != here["1"]


def test_a_notebook_method_travels_by_source_and_a_global_generator_is_caught(small_data, notebook_functions):
    assert method_payload(notebook_functions.seeded)["imports"] == {"np": "numpy:"}
    kw = {"seed": 2, "block_size": 8, "epochs": (0, 1)}
    fresh = block_order_fingerprints_in_fresh_process(ShardLoader, notebook_functions.seeded, small_data, **kw)
    assert fresh == block_order_fingerprints(ShardLoader, notebook_functions.seeded, small_data, **kw)
    np.random.seed(0)
    here = block_order_fingerprints(ShardLoader, notebook_functions.global_rng, small_data, **kw)
    fresh = block_order_fingerprints_in_fresh_process(ShardLoader, notebook_functions.global_rng, small_data, **kw)
    assert here != fresh  # numpy's global generator starts from fresh entropy in the new process


def test_a_method_using_a_notebook_variable_or_a_closure_is_refused_with_its_name(notebook_functions):
    with pytest.raises(ValueError, match="'BLOCKS'"):
        method_payload(notebook_functions.uses_notebook_value)
    blocks = 3

    def closure(self):
        return np.arange(blocks)

    closure.__module__ = "__main__"
    with pytest.raises(ValueError, match="blocks"):
        method_payload(closure)
    with pytest.raises(ValueError, match="lambda"):
        method_payload(lambda self: np.arange(3))


def test_cached_ceilings_measure_both_ways_of_taking_the_cached_files(small_data):
    paths = sorted((small_data / "npy").glob("shard_*.npy"))
    rates = cached_ceilings(paths, batch_bytes=4096, repeat=1)
    assert set(rates) == {"read", "mapped_copy"} and all(r > 0 for r in rates.values())


def test_memory_stages_draws_every_stage_with_its_legend_outside_the_bars():
    import matplotlib

    matplotlib.use("Agg")
    from course_lib.course.plots_ch02 import memory_stages
    from course_lib.measure.memory import MemorySnapshot

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ax = memory_stages({"maps opened": MemorySnapshot(0, 0), "every page read once": MemorySnapshot(0.3, 492.0),
                            "maps released": MemorySnapshot(0, 0)})
        ax.figure.canvas.draw()
    assert [t.get_text() for t in ax.get_yticklabels()] == ["maps opened", "every page read once", "maps released"]
    renderer = ax.figure.canvas.get_renderer()
    legend, axes = ax.get_legend().get_window_extent(renderer), ax.get_window_extent(renderer)
    assert legend.x0 >= axes.x1  # right of the axes: it covers no bar


def _no_split(self):
    return self.block_order()


def _zero_copy(self):
    import torch

    maps = [np.load(p, mmap_mode="r") for p in self.paths]
    for block in self.my_blocks():
        shard, start, stop = self.blocks[block]
        records = maps[shard][start:stop]
        yield {"x": torch.from_numpy(records["x"]), "y": torch.from_numpy(records["y"]),
               "idx": torch.from_numpy(records["idx"])}


def test_the_step_checks_catch_the_usual_mistakes(small_data):
    """Step 1 without a worker split repeats samples; step 3 wrapping the read-only map warns (the check errors)."""
    unsplit = type("Unsplit", (ShardLoader,), {"my_blocks": _no_split})(small_data, batch_size=8, block_size=16)
    total = sum(stop - start for _, start, stop in unsplit.blocks)
    assert coverage(arrival_order(DataLoader(unsplit, batch_size=None, num_workers=2)), total).duplicates == total
    wrapped = type("Wrapped", (ShardLoader,), {"__iter__": _zero_copy})(small_data, batch_size=8, block_size=16)
    with warnings.catch_warnings(), pytest.raises(UserWarning, match="not writable"):
        warnings.simplefilter("error")
        next(iter(wrapped))
