"""The doctor's compiled passes, and its medians, against the numpy formulas they replace."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from gradwell.doctor.kernels import relu_batch, squares_and_change, sum_of_squares, total
from gradwell.doctor.trace import median, row_medians

SPECIAL = st.sampled_from([0.0, -0.0, 1.0, 3e38, np.nan, np.inf, -np.inf, 1e-45])
VALUES = st.one_of(st.floats(-1e3, 1e3, width=32), SPECIAL)


@settings(max_examples=200, deadline=None)
@given(arrays(np.float32, st.tuples(st.integers(1, 9), st.integers(1, 7)), elements=VALUES))
def test_relu_batch_equals_the_numpy_reading(a):
    a = np.maximum(a, np.float32(0))  # ReLU outputs: >= 0, NaN kept
    units = a.shape[1]
    ever, last = np.zeros(units, bool), np.full(units, -1, np.int64)
    ever[0], last[0] = True, 2  # earlier windows' state is kept, never cleared
    nonzero, on = relu_batch(a[:, :, None], 5, ever, last)  # (examples, units, positions)
    fired = a.max(axis=0) > 0  # a NaN makes the maximum NaN: not fired
    assert nonzero == np.count_nonzero(a)
    assert on == fired.sum()
    np.testing.assert_array_equal(ever, fired | (np.arange(units) == 0))
    np.testing.assert_array_equal(last, np.where(fired, 5, np.where(np.arange(units) == 0, 2, -1)))


@settings(max_examples=200, deadline=None)
@given(arrays(np.float32, st.tuples(st.integers(1, 40), st.integers(1, 3)), elements=VALUES))
def test_sums_accumulate_in_float64_and_keep_inf_and_nan(a):
    b = a.astype(np.float64)
    rtol = 1e-12
    with np.errstate(over="ignore", invalid="ignore"):
        want_squares, want_total = float(np.sum(b * b)), float(np.sum(b))
        after = (a + np.float32(1)).astype(np.float32)
        change = after.astype(np.float64) - b
        want_change = float(np.sum(change * change))
    for got, want in ((sum_of_squares(a), want_squares), (total(a), want_total)):
        assert got == pytest.approx(want, rel=rtol, nan_ok=True)
    w2, d2 = squares_and_change(a, after)
    assert w2 == pytest.approx(want_squares, rel=rtol, nan_ok=True)
    assert d2 == pytest.approx(want_change, rel=rtol, nan_ok=True)


FINITE = st.floats(-1e300, 1e300, allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(arrays(np.float64, st.integers(1, 40), elements=FINITE))
def test_median_equals_numpy_median(a):
    assert median(a) == float(np.median(a))
    assert median(list(a)) == float(np.median(a))


@settings(max_examples=200, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 9)), elements=FINITE))
def test_row_medians_equal_numpy_median_by_row(a):
    np.testing.assert_array_equal(row_medians(a), np.median(a, axis=1))
