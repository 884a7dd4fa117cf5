import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from gradwell.preprocessing import (
    AutoScaler,
    Clip,
    ColumnScaler,
    LinearScaler,
    LogScaler,
    Pipeline,
    RobustScaler,
    ZScoreScaler,
    from_config,
)


def make_all():
    return [
        LinearScaler(feature_range=(0, 2)),
        ZScoreScaler(nan_policy="mean"),
        RobustScaler(quantiles=(0.1, 0.9)),
        Clip(quantiles=(0.05, 1.0)),
        Clip(min=-1),
        LogScaler(shift="auto"),
        Pipeline([Clip(quantiles=(0, 0.99)), LogScaler(shift="auto"), LinearScaler()]),
        ColumnScaler({0: "log(shift=auto) -> linear", (1, 2): ZScoreScaler()}, default="robust"),
        AutoScaler(),
    ]


def json_round_trip(scaler):
    return from_config(json.loads(json.dumps(scaler.to_config(), allow_nan=False)))


@pytest.mark.parametrize("scaler", make_all(), ids=lambda s: type(s).__name__)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fitted_round_trip_is_bit_exact(scaler, dtype, rng):
    X = (rng.lognormal(2, 1.5, size=(300, 4)) - 2).astype(dtype)
    X_new = (rng.lognormal(2, 1.5, size=(50, 4)) - 1).astype(dtype)
    scaler.fit(X)
    restored = json_round_trip(scaler)
    assert type(restored) is type(scaler)
    np.testing.assert_array_equal(restored.transform(X_new), scaler.transform(X_new))
    assert restored.to_config() == json.loads(json.dumps(scaler.to_config()))


@pytest.mark.parametrize("scaler", make_all(), ids=lambda s: type(s).__name__)
def test_unfitted_round_trip_keeps_parameters(scaler):
    restored = json_round_trip(scaler)
    assert not restored.is_fitted
    assert restored.spec() == scaler.spec()


def test_round_trip_keeps_feature_names_and_imputation(housing_like):
    data = {k: v.copy() for k, v in housing_like.items()}
    data["latitude"][3] = np.nan
    s = ZScoreScaler(nan_policy="median").fit(data)
    r = json_round_trip(s)
    assert r.feature_names_in_ == tuple(housing_like)
    np.testing.assert_array_equal(r.transform(data), s.transform(data))


def test_infinite_clip_bounds_survive_strict_json():
    s = Clip(max=3.0).fit(np.zeros((2, 2)))
    text = json.dumps(s.to_config(), allow_nan=False)
    r = from_config(text)
    assert r.lower_[0] == -np.inf and r.upper_[1] == 3.0


def test_auto_scaler_round_trip_keeps_reasons(housing_like):
    a = AutoScaler().fit(housing_like)
    r = json_round_trip(a)
    assert r.reasons_ == a.reasons_
    assert r.chains_ == a.chains_
    assert json_round_trip(r).to_config() == r.to_config()


@pytest.mark.parametrize(
    ("cfg", "match"),
    [
        ({"nope": 1}, "'type' key"),
        ({"type": "Sqrt"}, "scaler type among"),
        ({"type": "LinearScaler", "format": "keras"}, "format"),
        ({"type": "LinearScaler", "version": 99}, "newer gradwell"),
        ({"type": "LinearScaler", "fitted": True}, "no 'state'"),
        ({"type": "LinearScaler", "params": {"feature_range": None}}, "feature_range to be a pair"),
        ({"type": "RobustScaler", "params": {"quantiles": 5}}, "quantiles to be a pair"),
    ],
)
def test_bad_configs(cfg, match):
    with pytest.raises(ValueError, match=match):
        from_config(cfg)


finite = st.floats(-1e5, 1e5, allow_nan=False, allow_infinity=False, width=32)


@settings(max_examples=40, deadline=None)
@given(
    X=arrays(np.float32, st.tuples(st.integers(1, 20), st.integers(1, 3)), elements=finite),
    Y=arrays(np.float32, st.tuples(st.integers(0, 5), st.just(3)), elements=finite),
)
def test_round_trip_property(X, Y):
    Y = Y[:, : X.shape[1]]
    for scaler in (LinearScaler(), ZScoreScaler(), RobustScaler(), Clip(quantiles=(0.2, 0.8))):
        scaler.fit(X)
        np.testing.assert_array_equal(json_round_trip(scaler).transform(Y), scaler.transform(Y))


def test_importing_preprocessing_does_not_import_sklearn():
    code = (
        "import sys, gradwell.preprocessing as pp, numpy as np\n"
        "pp.AutoScaler().fit(np.random.default_rng(0).lognormal(size=(50, 3)))\n"
        "mods = [m for m in sys.modules if m.startswith(('gradwell.preprocessing', 'sklearn'))]\n"
        "print(any(m.startswith('sklearn') for m in mods))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
