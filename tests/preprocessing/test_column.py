import numpy as np
import pytest

from gradwell.preprocessing import (
    Clip,
    ColumnMismatchError,
    ColumnScaler,
    LinearScaler,
    LogScaler,
    NonFiniteValueError,
    NotInvertibleError,
    Pipeline,
    ZScoreScaler,
)


def test_named_chains_and_default(housing_like):
    cs = ColumnScaler(
        {"total_rooms": [LogScaler(), LinearScaler()], "median_income": "zscore"},
        default=[LinearScaler()],
    )
    Z = cs.fit_transform(housing_like)
    X = np.column_stack(list(housing_like.values()))
    np.testing.assert_allclose(Z[:, 0], LinearScaler().fit_transform(X[:, [0]])[:, 0])
    np.testing.assert_allclose(
        Z[:, 2], Pipeline([LogScaler(), LinearScaler()]).fit_transform(X[:, [2]])[:, 0]
    )
    np.testing.assert_allclose(Z[:, 3], ZScoreScaler().fit_transform(X[:, [3]])[:, 0])
    np.testing.assert_allclose(cs.transform(housing_like), Z)
    assert cs.chains_ == {
        "longitude": "linear",
        "latitude": "linear",
        "total_rooms": "log -> linear",
        "median_income": "zscore",
    }


def test_columns_not_named_pass_through_by_default():
    X = np.array([[1.0, 100.0], [3.0, 300.0]])
    Z = ColumnScaler({0: LinearScaler()}).fit_transform(X)
    np.testing.assert_array_equal(Z, [[-1.0, 100.0], [1.0, 300.0]])


def test_identical_chains_share_one_group(housing_like):
    cs = ColumnScaler(
        {name: "linear" for name in ["longitude", "latitude", "median_income"]},
        default="log -> linear",
    ).fit(housing_like)
    assert len(cs.groups_) == 2
    assert cs.chain_for("latitude") is cs.chain_for("longitude")


def test_tuple_keys_negative_indices_and_feature_names():
    X = np.array([[1.0, 10.0, 5.0], [3.0, 30.0, 7.0]])
    cs = ColumnScaler({(0, -1): "linear"}, default="zscore").fit(X)
    assert cs.chains_ == {0: "linear", 1: "zscore", 2: "linear"}
    named = ColumnScaler({("a", "c"): "linear"}, feature_names=["a", "b", "c"])
    np.testing.assert_allclose(named.fit_transform(X)[:, [0, 2]], [[-1, -1], [1, 1]])


def test_user_scalers_are_not_mutated():
    lin = LinearScaler()
    ColumnScaler({0: lin}).fit(np.array([[1.0], [2.0]]))
    assert not lin.is_fitted


@pytest.mark.parametrize(
    ("columns", "kwargs", "match"),
    [
        ({"nope": "linear"}, {}, r"expected column 'nope' in the input"),
        ({5: "linear"}, {}, r"column index in \[-2, 1\], got 5"),
        ({"a": "linear", ("a", "b"): "zscore"}, {}, "column 'a' under both"),
    ],
)
def test_bad_column_references(columns, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ColumnScaler(columns, **kwargs).fit({"a": [1.0, 2.0], "b": [3.0, 4.0]})


def test_name_on_unnamed_array_is_an_error():
    with pytest.raises(ColumnMismatchError, match="no column names"):
        ColumnScaler({"a": "linear"}).fit(np.ones((2, 2)))


def test_bad_chain_spec_type():
    with pytest.raises(TypeError, match="chain for 'a'"):
        ColumnScaler({"a": 3})


def test_transform_reorders_named_columns_and_reports_missing(housing_like):
    cs = ColumnScaler({"total_rooms": "log -> linear"}, default="linear").fit(housing_like)
    shuffled = {k: housing_like[k] for k in reversed(list(housing_like))}
    np.testing.assert_allclose(cs.transform(shuffled), cs.transform(housing_like))
    partial = dict(housing_like)
    del partial["latitude"]
    with pytest.raises(ColumnMismatchError, match="column 'latitude' is missing"):
        cs.transform(partial)


def test_non_finite_error_names_global_column_and_row(housing_like):
    data = {k: v.copy() for k, v in housing_like.items()}
    data["total_rooms"][7] = np.nan
    cs = ColumnScaler({"total_rooms": "log -> linear"}, default="linear")
    with pytest.raises(NonFiniteValueError, match=r"column 'total_rooms' \(index 2\) at row 7"):
        cs.fit(data)
    cs.fit(housing_like)
    with pytest.raises(NonFiniteValueError, match=r"'total_rooms' \(index 2\) at row 7"):
        cs.transform(data)


def test_domain_error_names_global_column():
    X = np.array([[1.0, 1.0, -2.0], [2.0, 2.0, 3.0]])
    with pytest.raises(ValueError, match=r"column 2 at row 0"):
        ColumnScaler({2: "log"}).fit(X)


def test_nan_policy_override_applies_to_every_chain():
    X = np.array([[1.0, np.nan], [np.nan, 4.0], [3.0, 6.0]])
    Z = ColumnScaler({0: "linear"}, default="zscore", nan_policy="median").fit_transform(X)
    assert np.isfinite(Z).all()
    np.testing.assert_allclose(Z[1, 0], 0.0)


def test_inverse_transform(housing_like):
    cs = ColumnScaler({"total_rooms": "log -> linear"}, default="zscore").fit(housing_like)
    X = np.column_stack(list(housing_like.values()))
    np.testing.assert_allclose(cs.inverse_transform(cs.transform(housing_like)), X, rtol=1e-9)
    clipped = ColumnScaler({"total_rooms": [Clip(max=1000), LinearScaler()]}).fit(housing_like)
    with pytest.raises(NotInvertibleError, match="total_rooms"):
        clipped.inverse_transform(clipped.transform(housing_like))


def test_float32_preserved_with_scattered_groups(rng):
    X = rng.lognormal(size=(20_000, 6)).astype(np.float32)
    cs = ColumnScaler({(0, 2, 4): "log -> linear"}, default="zscore")
    Z = cs.fit_transform(X)
    assert Z.dtype == np.float32
    np.testing.assert_allclose(
        Z[:, [1, 3, 5]], ZScoreScaler().fit_transform(X[:, [1, 3, 5]]), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(cs.transform(X), Z, rtol=1e-6, atol=1e-6)
