import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from gradwell.preprocessing import (
    Clip,
    ColumnMismatchError,
    DomainError,
    LinearScaler,
    LogScaler,
    NonFiniteValueError,
    NotFittedError,
    NotInvertibleError,
    RobustScaler,
    ZScoreScaler,
)

ALL = [LinearScaler, ZScoreScaler, RobustScaler, LogScaler, lambda: Clip(quantiles=(0.1, 0.9))]
INVERTIBLE = [LinearScaler, ZScoreScaler, RobustScaler, LogScaler]


def test_linear_maps_training_range_to_feature_range(rng):
    X = rng.normal(5, 3, size=(200, 4))
    Z = LinearScaler().fit_transform(X)
    np.testing.assert_allclose(Z.min(axis=0), -1.0, atol=1e-12)
    np.testing.assert_allclose(Z.max(axis=0), 1.0, atol=1e-12)
    Z01 = LinearScaler(feature_range=(0, 1)).fit_transform(X)
    np.testing.assert_allclose(Z01, (X - X.min(0)) / (X.max(0) - X.min(0)), atol=1e-12)


def test_linear_does_not_clip_unseen_values():
    s = LinearScaler().fit(np.array([[0.0], [10.0]]))
    assert s.transform(np.array([[20.0]]))[0, 0] == pytest.approx(3.0)


def test_zscore_gives_zero_mean_unit_std(rng):
    X = rng.normal(100, 7, size=(500, 3)) * np.array([1.0, 1e3, 1e-3])
    Z = ZScoreScaler().fit_transform(X)
    np.testing.assert_allclose(Z.mean(axis=0), 0.0, atol=1e-10)
    np.testing.assert_allclose(Z.std(axis=0), 1.0, atol=1e-10)


def test_zscore_statistics_accurate_for_large_offsets_in_float32():
    # Mean 1e4 with spread 1: a one-pass sum of squares would lose the variance.
    X = (1e4 + np.random.default_rng(0).normal(size=(100_000, 2))).astype(np.float32)
    s = ZScoreScaler().fit(X)
    expected = X.astype(np.float64).std(axis=0)
    np.testing.assert_allclose(s.std_, expected, rtol=1e-6)


def test_robust_uses_median_and_iqr(rng):
    X = rng.standard_t(2, size=(301, 2))
    s = RobustScaler().fit(X)
    q1, med, q3 = np.quantile(X, [0.25, 0.5, 0.75], axis=0)
    np.testing.assert_allclose(s.center_, med)
    np.testing.assert_allclose(s.transform(X), (X - med) / (q3 - q1), atol=1e-12)


def test_robust_falls_back_to_range_when_iqr_is_zero():
    X = np.array([[0.0], [0.0], [0.0], [0.0], [0.0], [10.0]])
    Z = RobustScaler().fit_transform(X)
    np.testing.assert_allclose(Z.ravel(), [0, 0, 0, 0, 0, 1.0])


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (LinearScaler, 0.0),
        (lambda: LinearScaler(feature_range=(0, 1)), 0.5),
        (ZScoreScaler, 0.0),
        (RobustScaler, 0.0),
    ],
)
def test_constant_column_documented_value_and_inverse(make, expected):
    X = np.array([[3.0, 1.0], [3.0, 2.0], [3.0, 5.0]])
    s = make().fit(X)
    Z = s.transform(X)
    np.testing.assert_allclose(Z[:, 0], expected)
    assert np.isfinite(Z).all()
    np.testing.assert_allclose(s.inverse_transform(Z)[:, 0], 3.0)


def test_clip_fixed_bounds_and_one_sided():
    X = np.array([[-5.0, -5.0], [0.5, 0.5], [9.0, 9.0]])
    np.testing.assert_array_equal(Clip(min=0, max=1).fit_transform(X)[:, 0], [0, 0.5, 1])
    np.testing.assert_array_equal(Clip(max=1).fit_transform(X)[:, 1], [-5, 0.5, 1])


def test_clip_quantiles_fitted_on_training_data_only(rng):
    X = rng.normal(size=(1001, 2))
    s = Clip(quantiles=(0.05, 0.95)).fit(X)
    np.testing.assert_allclose(s.lower_, np.quantile(X, 0.05, axis=0))
    np.testing.assert_allclose(s.upper_, np.quantile(X, 0.95, axis=0))
    Z = s.transform(np.full((1, 2), 100.0))
    np.testing.assert_allclose(Z[0], s.upper_)


def test_clip_quantile_zero_means_no_lower_bound():
    s = Clip(quantiles=(0, 0.5)).fit(np.array([[1.0], [2.0], [3.0]]))
    assert s.lower_[0] == -np.inf
    assert s.transform(np.array([[-100.0]]))[0, 0] == -100.0


def test_clip_is_not_invertible():
    s = Clip(max=1).fit(np.zeros((3, 1)))
    with pytest.raises(NotInvertibleError, match="not invertible"):
        s.inverse_transform(np.zeros((1, 1)))


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"min": 2, "max": 1}, {"min": 0, "quantiles": (0.1, 0.9)}, {"quantiles": (0.9, 0.1)}],
)
def test_clip_rejects_bad_bounds(kwargs):
    with pytest.raises(ValueError, match="Clip: expected"):
        Clip(**kwargs)


def test_log_matches_log1p_and_inverts():
    X = np.array([[0.0, 1.0], [9.0, 1e6]])
    s = LogScaler()
    np.testing.assert_allclose(s.fit_transform(X), np.log1p(X))
    np.testing.assert_allclose(s.inverse_transform(np.log1p(X)), X)


def test_log_negative_value_names_column_and_row():
    X = {"a": np.array([1.0, 2.0, 3.0]), "b": np.array([4.0, -0.5, 6.0])}
    with pytest.raises(DomainError, match=r"column 'b' \(index 1\) at row 1"):
        LogScaler().fit(X)


def test_log_auto_shift_handles_negatives_and_rejects_lower_unseen_values():
    X = np.array([[-3.0], [0.0], [7.0]])
    s = LogScaler(shift="auto").fit(X)
    np.testing.assert_allclose(s.shift_, [3.0])
    np.testing.assert_allclose(s.transform(X).ravel(), np.log1p([0.0, 3.0, 10.0]))
    with pytest.raises(DomainError, match="below the training minimum"):
        s.transform(np.array([[-4.0]]))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("make", ALL)
def test_non_finite_input_names_column_and_first_bad_row(make, bad):
    X = {"ok": np.arange(6.0) + 1, "income": np.array([1.0, 2.0, 3.0, bad, 5.0, bad])}
    with pytest.raises(NonFiniteValueError, match=r"column 'income' \(index 1\) at row 3"):
        make().fit(X)
    s = make().fit({"ok": np.arange(6.0) + 1, "income": np.arange(6.0) + 1})
    with pytest.raises(NonFiniteValueError, match=r"'income'.*row 3"):
        s.transform(X)


def test_non_finite_error_for_plain_arrays_names_index():
    X = np.ones((4, 3))
    X[2, 1] = np.nan
    with pytest.raises(NonFiniteValueError, match=r"column 1 at row 2.*nan_policy"):
        LinearScaler().fit(X)


def test_huge_finite_values_are_not_mistaken_for_inf():
    X = np.full((10, 1), 3e38, dtype=np.float32)  # the column sum overflows float32
    X[0] = 0
    Z = LinearScaler().fit_transform(X)
    assert np.isfinite(Z).all()


@pytest.mark.parametrize(("policy", "stat"), [("median", np.median), ("mean", np.mean)])
def test_nan_policy_imputes_with_training_statistic(policy, stat):
    X = np.array([[1.0, 10.0], [np.nan, 20.0], [3.0, np.inf], [10.0, 40.0]])
    s = LinearScaler(nan_policy=policy).fit(X)
    fill0, fill1 = stat([1.0, 3.0, 10.0]), stat([10.0, 20.0, 40.0])
    np.testing.assert_allclose(s.fill_, [fill0, fill1])
    Z = s.transform(np.array([[np.nan, -np.inf]]))
    expected = LinearScaler().fit(np.array([[1, 10], [fill0, 20], [3, fill1], [10, 40]]))
    np.testing.assert_allclose(Z, expected.transform(np.array([[fill0, fill1]])))
    assert np.isnan(X[1, 0])  # the caller's array is untouched


def test_nan_policy_all_nan_column_is_a_clear_error():
    X = np.array([[1.0, np.nan], [2.0, np.nan]])
    with pytest.raises(ValueError, match=r"column 1.*at least one finite value"):
        ZScoreScaler(nan_policy="median").fit(X)


def test_bad_nan_policy_rejected():
    with pytest.raises(ValueError, match="nan_policy"):
        ZScoreScaler(nan_policy="drop")


@pytest.mark.parametrize("make", ALL)
def test_empty_input_is_an_error_at_fit_and_fine_at_transform(make):
    with pytest.raises(ValueError, match="at least 1 row"):
        make().fit(np.empty((0, 3)))
    s = make().fit(np.ones((4, 3)) + np.arange(4)[:, None])
    out = s.transform(np.empty((0, 3)))
    assert out.shape == (0, 3)


def test_one_dimensional_input_error_suggests_reshape():
    with pytest.raises(ValueError, match=r"2-D.*got shape \(5,\).*reshape"):
        LinearScaler().fit(np.arange(5.0))


def test_non_numeric_input_error():
    with pytest.raises(TypeError, match="numeric"):
        LinearScaler().fit(np.array([["a", "b"]]))


@pytest.mark.parametrize("make", ALL)
def test_not_fitted_error(make):
    with pytest.raises(NotFittedError, match="not fitted"):
        make().transform(np.ones((2, 2)))


def test_column_missing_or_extra_or_wrong_count_at_transform():
    s = LinearScaler().fit({"a": [1.0, 2.0], "b": [3.0, 5.0]})
    with pytest.raises(ColumnMismatchError, match="column 'b' is missing"):
        s.transform({"a": [1.0]})
    with pytest.raises(ColumnMismatchError, match="unexpected column 'c'"):
        s.transform({"a": [1.0], "b": [2.0], "c": [0.0]})
    with pytest.raises(ColumnMismatchError, match="expected 2 columns"):
        s.transform(np.ones((3, 3)))
    # Same columns in another order are matched by name.
    np.testing.assert_allclose(s.transform({"b": [5.0], "a": [1.0]}), [[-1.0, 1.0]])


def test_ragged_dict_error_names_column():
    with pytest.raises(ValueError, match=r"column 'b'"):
        LinearScaler().fit({"a": [1.0, 2.0], "b": [1.0]})


@pytest.mark.parametrize("make", ALL)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_output_dtype_follows_float_input(make, dtype, rng):
    X = rng.uniform(0, 10, size=(50, 3)).astype(dtype)
    s = make()
    assert s.fit_transform(X).dtype == dtype
    assert s.transform(X).dtype == dtype


def test_integer_input_becomes_float64_and_input_untouched():
    X = np.array([[1, 2], [3, 4]], dtype=np.int64)
    Z = LinearScaler().fit_transform(X)
    assert Z.dtype == np.float64
    X2 = np.array([[1.0, 2.0], [3.0, 4.0]])
    before = X2.copy()
    LinearScaler().fit(X2).transform(X2)
    np.testing.assert_array_equal(X2, before)


def test_float32_close_to_float64(rng):
    X = rng.lognormal(3, 1, size=(1000, 4))
    for make in INVERTIBLE:
        z64 = make().fit_transform(X)
        z32 = make().fit_transform(X.astype(np.float32))
        np.testing.assert_allclose(z32, z64, rtol=1e-4, atol=1e-4)


def test_get_set_params_and_repr():
    s = LinearScaler()
    assert s.get_params() == {"feature_range": (-1.0, 1.0), "nan_policy": "error"}
    assert s.set_params(feature_range=(0, 2)) is s
    assert repr(s) == "LinearScaler(feature_range=(0, 2))"
    with pytest.raises(ValueError, match="expected one of"):
        s.set_params(bogus=1)
    with pytest.raises(ValueError, match="feature_range"):
        s.set_params(feature_range=(1, 1))


finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


# (interquartile range, largest value): a subnormal range; a normal one that 1e3 is
# more than the largest float of its spreads away from the median
@pytest.mark.parametrize(("tiny", "big"), [(1.1e-308, 15.0), (1e-306, 1e3)])
def test_robust_scaling_that_would_overflow_uses_the_range_instead(tiny, big):
    X = np.array([big, 1.0, tiny, tiny, tiny, 0.0, 0.0, 0.0, 0.0, 0.0])[:, None]
    s = RobustScaler().fit(X)
    z = s.transform(X)
    assert np.isfinite(z).all()
    assert s.spread_[0] == big
    np.testing.assert_allclose(s.inverse_transform(z), X, rtol=1e-12, atol=0)


@settings(max_examples=60, deadline=None)
@given(X=arrays(np.float64, st.tuples(st.integers(1, 30), st.integers(1, 4)), elements=finite))
def test_inverse_round_trips_for_invertible_scalers(X):
    for make in (LinearScaler, ZScoreScaler, RobustScaler):
        s = make().fit(X)
        np.testing.assert_allclose(s.inverse_transform(s.transform(X)), X, rtol=1e-9, atol=1e-6)
    pos = np.abs(X)
    s = LogScaler().fit(pos)
    np.testing.assert_allclose(s.inverse_transform(s.transform(pos)), pos, rtol=1e-9, atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(X=arrays(np.float64, st.tuples(st.integers(1, 30), st.integers(1, 4)), elements=finite))
def test_linear_output_stays_in_range_on_training_data(X):
    Z = LinearScaler(feature_range=(-1, 1)).fit_transform(X)
    assert np.all(Z >= -1 - 1e-9) and np.all(Z <= 1 + 1e-9)


@settings(max_examples=40, deadline=None)
@given(X=arrays(np.float64, st.tuples(st.integers(2, 30), st.integers(1, 3)), elements=finite))
def test_transform_is_per_column(X):
    # Scaling a matrix equals scaling each column on its own.
    for make in (LinearScaler, ZScoreScaler, RobustScaler):
        whole = make().fit_transform(X)
        for j in range(X.shape[1]):
            np.testing.assert_allclose(whole[:, j], make().fit_transform(X[:, [j]])[:, 0])


def test_pandas_dataframe_input():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [10, 20, 30]})
    s = LinearScaler().fit(df)
    assert s.feature_names_in_ == ("a", "b")
    np.testing.assert_allclose(s.transform(df[["b", "a"]])[:, 1], [-1, 0, 1])
