"""gradwell scalers inside scikit-learn (scikit-learn is imported only by these tests)."""

import numpy as np
import pytest

import gradwell.preprocessing as pp

sklearn = pytest.importorskip("sklearn")
from sklearn.base import clone  # noqa: E402
from sklearn.linear_model import Ridge  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import MinMaxScaler, RobustScaler, StandardScaler  # noqa: E402

SCALERS = [
    pp.LinearScaler(feature_range=(0, 1)),
    pp.ZScoreScaler(),
    pp.RobustScaler(),
    pp.Clip(quantiles=(0.1, 0.9)),
    pp.LogScaler(shift="auto"),
    pp.Pipeline([pp.LogScaler(shift="auto"), pp.LinearScaler()]),
    pp.ColumnScaler({0: "log(shift=auto) -> linear"}, default="zscore"),
    pp.AutoScaler(),
]


@pytest.mark.parametrize("scaler", SCALERS, ids=lambda s: type(s).__name__)
def test_clone_gives_equal_unfitted_copy(scaler, rng):
    scaler.fit(rng.normal(size=(30, 3)))
    copy = clone(scaler)
    assert copy is not scaler and not copy.is_fitted
    assert repr(copy) == repr(scaler)


@pytest.mark.parametrize("scaler", SCALERS, ids=lambda s: type(s).__name__)
def test_inside_sklearn_pipeline(scaler, rng):
    X = rng.normal(size=(80, 3)) * [1, 100, 1e4]
    y = X @ np.array([1.0, 0.01, 1e-4])
    X_new = rng.normal(size=(10, 3)) * [0.5, 50, 5e3]
    model = make_pipeline(scaler, Ridge(alpha=1e-3)).fit(X, y)
    # Same predictions as scaling by hand and fitting the regressor on the result.
    fitted = clone(scaler).fit(X)
    by_hand = Ridge(alpha=1e-3).fit(fitted.transform(X), y)
    np.testing.assert_allclose(model.predict(X_new), by_hand.predict(fitted.transform(X_new)))


def test_grid_search_sets_nested_params(rng):
    X = rng.normal(size=(60, 2))
    y = X.sum(axis=1)
    search = GridSearchCV(
        make_pipeline(pp.LinearScaler(), Ridge()),
        {"linearscaler__feature_range": [(0, 1), (-1, 1)]},
        cv=3,
    ).fit(X, y)
    assert search.best_params_["linearscaler__feature_range"] in [(0, 1), (-1, 1)]


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (pp.LinearScaler(), MinMaxScaler(feature_range=(-1, 1))),
        (pp.ZScoreScaler(), StandardScaler()),
        (pp.RobustScaler(), RobustScaler()),
    ],
)
def test_matches_sklearn_numbers(ours, theirs, rng):
    X = rng.standard_t(3, size=(500, 4)) * [1, 10, 100, 1000] + [0, 5, -50, 1e4]
    np.testing.assert_allclose(ours.fit_transform(X), theirs.fit_transform(X), atol=1e-10)
