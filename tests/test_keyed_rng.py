"""One keyed generator for every loader: distinct keys give distinct streams, the same key the same stream."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib import keyed_rng
from course_lib.loaders.seeding import worker_rng

keys = st.lists(st.integers(0, 2**64 - 1), max_size=5).map(tuple)


def stream(seed, *key) -> list[int]:
    return keyed_rng(seed, *key).integers(0, 2**63, size=4).tolist()


@pytest.mark.parametrize("a,b", [
    ((5,), (5, 0)),                 # default_rng([s, 0]) == default_rng(s): not here
    ((5, 3, 1), (5, 3, 1, 0)),      # default_rng([s, e, 1, 0]) == default_rng([s, e, 1]): not here
    ((5, 0), (5, 0, 0)),
    ((5, 2**32), (5, 0, 1)),        # one large part is not two small ones
    ((5, 1, 0), (5, 0, 1)),
])
def test_keys_that_numpy_lists_would_collide_give_distinct_streams(a, b):
    assert stream(*a) != stream(*b)


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**64), key=keys, other=keys)
def test_distinct_keys_distinct_streams_same_key_same_stream(seed, key, other):
    assert stream(seed, *key) == stream(seed, *key)
    if key != other:
        assert stream(seed, *key) != stream(seed, *other)


def test_numpy_key_lists_really_collide():
    """Why the helper exists: the naive key lists give equal streams."""
    assert np.array_equal(np.random.default_rng([5, 0]).random(3), np.random.default_rng(5).random(3))
    assert np.array_equal(np.random.default_rng([5, 3, 1, 0]).random(3), np.random.default_rng([5, 3, 1]).random(3))


def test_worker_rng_is_the_keyed_stream_and_bad_keys_are_refused():
    assert worker_rng(7, 2, rank=1, worker=3).random() == keyed_rng(7, 2, 1, 3).random()
    with pytest.raises(ValueError, match="key"):
        keyed_rng(1, -1)
    with pytest.raises(ValueError, match="seed"):
        keyed_rng(-1)
    with pytest.raises(ValueError, match="2\\*\\*64"):
        keyed_rng(1, 2**64)
