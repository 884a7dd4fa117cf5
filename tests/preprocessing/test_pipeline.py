import numpy as np
import pytest

from gradwell.preprocessing import (
    Clip,
    LinearScaler,
    LogScaler,
    NonFiniteValueError,
    NotInvertibleError,
    Pipeline,
    RobustScaler,
    ZScoreScaler,
    parse_chain,
)


def test_chain_equals_steps_applied_in_sequence(rng):
    X = rng.lognormal(5, 1.5, size=(300, 3))
    pipe = Pipeline([Clip(quantiles=(0, 0.95)), LogScaler(), LinearScaler()])
    Z = pipe.fit_transform(X)
    a = Clip(quantiles=(0, 0.95)).fit_transform(X)
    b = LogScaler().fit_transform(a)
    c = LinearScaler().fit_transform(b)
    np.testing.assert_allclose(Z, c)
    np.testing.assert_allclose(pipe.transform(X), c)
    # fit and then transform agree with fit_transform
    np.testing.assert_allclose(
        Pipeline([Clip(quantiles=(0, 0.95)), LogScaler(), LinearScaler()]).fit(X).transform(X), c
    )


def test_fit_does_not_modify_input(rng):
    X = rng.lognormal(size=(50, 2))
    before = X.copy()
    Pipeline([LogScaler(), ZScoreScaler()]).fit(X)
    np.testing.assert_array_equal(X, before)


def test_steps_are_fitted_in_place_and_inspectable(rng):
    X = rng.uniform(1, 100, size=(40, 2))
    log, lin = LogScaler(), LinearScaler()
    Pipeline([log, lin]).fit(X)
    np.testing.assert_allclose(lin.data_min_, np.log1p(X).min(axis=0))


def test_empty_pipeline_is_identity():
    X = np.array([[1.0, 2.0]])
    np.testing.assert_array_equal(Pipeline([]).fit_transform(X), X)
    assert Pipeline([]).spec() == "identity"


def test_inverse_of_invertible_chain(rng):
    X = rng.lognormal(3, 1, size=(100, 2))
    pipe = Pipeline([LogScaler(), RobustScaler(), LinearScaler((0, 1))]).fit(X)
    np.testing.assert_allclose(pipe.inverse_transform(pipe.transform(X)), X, rtol=1e-9)


def test_inverse_of_chain_with_clip_is_an_error_unless_skipped():
    X = np.array([[1.0], [10.0], [1000.0]])
    pipe = Pipeline([Clip(max=100), LogScaler(), LinearScaler()]).fit(X)
    with pytest.raises(NotInvertibleError, match=r"step 0 \(clip\(max=100\)\) is lossy"):
        pipe.inverse_transform(pipe.transform(X))
    back = pipe.inverse_transform(pipe.transform(X), skip_lossy=True)
    np.testing.assert_allclose(back.ravel(), [1.0, 10.0, 100.0])


def test_nan_policy_of_first_step_or_pipeline_override():
    X = np.array([[1.0], [np.nan], [3.0]])
    with pytest.raises(NonFiniteValueError, match="row 1"):
        Pipeline([LogScaler(), LinearScaler()]).fit(X)
    Z = Pipeline([LogScaler(nan_policy="median"), LinearScaler()]).fit_transform(X)
    np.testing.assert_allclose(
        Z.ravel(),
        [-1.0, LinearScaler().fit_transform(np.log1p([[1.0], [2.0], [3.0]])).ravel()[1], 1.0],
    )
    Z2 = Pipeline([LogScaler(), LinearScaler()], nan_policy="median").fit_transform(X)
    np.testing.assert_allclose(Z, Z2)


def test_pipeline_rejects_non_scalers():
    with pytest.raises(TypeError, match="step 1"):
        Pipeline([LinearScaler(), "log"])


@pytest.mark.parametrize(
    "text",
    [
        "linear",
        "linear(0,1)",
        "zscore",
        "robust",
        "robust(q=0.1,0.9)",
        "clip(q=0,0.99) -> log -> linear",
        "clip(min=0,max=5) -> linear",
        "clip(max=5)",
        "log(shift=auto) -> zscore",
        "log(shift=2.5)",
    ],
)
def test_parse_chain_round_trips_spec(text):
    assert parse_chain(text).spec() == text


@pytest.mark.parametrize("bad", ["linear ->", "sqrt", "clip(q=0.5)", "log(base=2)", "zscore(1)"])
def test_parse_chain_errors(bad):
    with pytest.raises(ValueError, match="parse_chain"):
        parse_chain(bad)
