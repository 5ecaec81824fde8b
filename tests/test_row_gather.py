"""gather_rows copies exactly the chosen rows, by slice or by index_select."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.loaders.row_gather import gather_rows


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_gather_rows_equals_numpy_indexing(data):
    n_rows = data.draw(st.integers(1, 40))
    rows = np.random.default_rng(n_rows).integers(0, 256, (n_rows, 37), dtype=np.uint8)
    picked = np.array(sorted(data.draw(st.sets(st.integers(0, n_rows - 1), min_size=1))), dtype=np.int64)
    out = torch.zeros(len(picked), 37, dtype=torch.uint8)
    assert gather_rows(torch.from_numpy(rows), picked, out) is out
    np.testing.assert_array_equal(out.numpy(), rows[picked])


def test_consecutive_rows_are_one_slice_and_bad_rows_are_refused():
    rows = torch.arange(50, dtype=torch.uint8).reshape(10, 5)
    out = torch.empty(3, 5, dtype=torch.uint8)
    gather_rows(rows, np.array([4, 5, 6]), out)
    assert torch.equal(out, rows[4:7])
    with pytest.raises(IndexError):
        gather_rows(rows, np.array([2, 10, 11]), out)


def test_runs_of_rows_are_copied_as_slices_and_match_take():
    rows = np.random.default_rng(0).integers(0, 256, (100, 9), dtype=np.uint8)
    picked = np.array([3, 4, 5, 6, 20, 21, 22, 23, 24, 50, 51, 52, 53, 97, 98, 99])
    out = np.zeros((len(picked), 9), dtype=np.uint8)
    assert gather_rows(rows, picked, out) is out
    np.testing.assert_array_equal(out, rows[picked])
    with pytest.raises(IndexError):
        gather_rows(rows, np.array([96, 97, 98, 99, 100]), np.zeros((5, 9), dtype=np.uint8))
