"""TargetScaler: each method against its formula, the round trip, errors, configs, sklearn."""

from __future__ import annotations

import json

import numpy as np
import pytest

import gradwell.preprocessing as pp


@pytest.fixture
def prices(rng):
    return rng.lognormal(12.0, 0.4, size=300)  # house prices in dollars


def test_standardize_is_the_z_score(prices):
    z = pp.TargetScaler("standardize").fit_transform(prices)
    expected = (prices - prices.mean()) / prices.std()
    np.testing.assert_allclose(z, expected, rtol=1e-12)
    assert z.shape == prices.shape


def test_log_is_the_z_score_of_the_log(prices):
    s = pp.TargetScaler("log").fit(prices)
    logs = np.log(prices)
    np.testing.assert_allclose(s.transform(prices), (logs - logs.mean()) / logs.std(), rtol=1e-12)
    assert s.center_[0] == pytest.approx(logs.mean()) and s.spread_[0] == pytest.approx(logs.std())


def test_log1p_and_robust(rng):
    counts = rng.poisson(30.0, size=200).astype(np.float64)
    l1p = np.log1p(counts)
    z = pp.TargetScaler("log1p").fit_transform(counts)
    np.testing.assert_allclose(z, (l1p - l1p.mean()) / l1p.std(), rtol=1e-12)
    q25, q50, q75 = np.quantile(counts, [0.25, 0.5, 0.75])
    r = pp.TargetScaler("robust").fit_transform(counts)
    np.testing.assert_allclose(r, (counts - q50) / (q75 - q25), rtol=1e-12)


@pytest.mark.parametrize("method", ["standardize", "robust", "log", "log1p"])
@pytest.mark.parametrize("shape", [(50,), (50, 1), (50, 3)])
def test_inverse_undoes_transform_and_keeps_shape(method, shape, rng):
    y = rng.lognormal(3.0, 1.0, size=shape)
    s = pp.TargetScaler(method).fit(y)
    z = s.transform(y)
    assert z.shape == shape
    np.testing.assert_allclose(s.inverse_transform(z), y, rtol=1e-10)
    # fitted on training targets only: later data uses the same statistics
    later = y[:5] * 2.0
    np.testing.assert_allclose(s.inverse_transform(s.transform(later)), later, rtol=1e-10)


def test_float32_stays_float32_and_a_constant_target_maps_to_zero():
    y = np.full(10, 7.0, dtype=np.float32)
    s = pp.TargetScaler().fit(y)
    z = s.transform(y)
    assert z.dtype == np.float32 and np.all(z == 0.0)
    assert np.all(s.inverse_transform(z) == 7.0)


def test_config_round_trip_is_exact(prices):
    s = pp.TargetScaler("log").fit(prices)
    back = pp.from_config(json.loads(s.to_json()))
    assert isinstance(back, pp.TargetScaler) and back.method == "log"
    assert np.array_equal(back.transform(prices), s.transform(prices))


def test_clear_errors():
    with pytest.raises(ValueError, match="expected method to be one of"):
        pp.TargetScaler("zscore")
    with pytest.raises(pp.DomainError, match=r"needs y > 0; got -1.0 in column 0 at row 1"):
        pp.TargetScaler("log").fit(np.array([1.0, -1.0, 2.0]))
    with pytest.raises(pp.NotFittedError):
        pp.TargetScaler().transform(np.ones(3))
    with pytest.raises(pp.NonFiniteValueError):
        pp.TargetScaler().fit(np.array([1.0, np.nan]))


def test_works_with_scikit_learn(prices, rng):
    sklearn = pytest.importorskip("sklearn")
    del sklearn
    from sklearn.base import clone
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline

    s = clone(pp.TargetScaler("log"))
    assert s.get_params() == {"method": "log", "nan_policy": "error"} and not s.is_fitted
    X = rng.normal(size=(prices.size, 2))
    pipe = make_pipeline(pp.TargetScaler("standardize"), LinearRegression())
    assert pipe.fit(X, prices).predict(X).shape == prices.shape
    reg = TransformedTargetRegressor(LinearRegression(), transformer=pp.TargetScaler("log"))
    pred = reg.fit(X, prices).predict(X)
    assert pred.shape == prices.shape and np.all(pred > 0)  # inverted: back in dollars
