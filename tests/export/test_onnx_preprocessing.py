"""The preprocessing inside the ONNX graph: raw features in, the model's outputs out.

Tolerance: ``kit.RTOL`` and ``kit.ATOL`` (1e-5 each), as for the layers.
"""

import numpy as np
import pytest
from export.kit import ATOL, RTOL, run_onnx

import gradwell as gw
from gradwell.preprocessing import (
    AutoScaler,
    Clip,
    ColumnScaler,
    LinearScaler,
    LogScaler,
    RobustScaler,
    TablePreprocessor,
    TargetScaler,
    ZScoreScaler,
)

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
nn = gw.nn


def table(n, seed):
    rng = np.random.default_rng(seed)
    income = rng.lognormal(10, 1, n)  # a heavy tail: the audit log-scales it
    income[rng.random(n) < 0.2] = np.nan
    age = rng.uniform(18, 90, n).round()
    city = rng.choice(["paris", "rome", "oslo", "lima"], n, p=[0.5, 0.3, 0.18, 0.02])
    city = np.where(rng.random(n) < 0.1, None, city).astype(object)
    pet = rng.choice(["cat", "dog"], n).astype(object)
    return {"income": income, "age": age, "city": city, "pet": pet}


def feeds_of(frame):
    """One (N, 1) input per column: float32 numbers, text (missing as "")."""
    out = {}
    for name, column in frame.items():
        if column.dtype == object:
            out[name] = np.array(["" if v is None else v for v in column], dtype=object)[:, None]
        else:
            out[name] = column.astype(np.float32)[:, None]
    return out


def mlp(width, outputs):
    return nn.Sequential(nn.Linear(width, 8, rng=0), nn.Tanh(), nn.Linear(8, outputs, rng=1))


def test_a_table_goes_in_raw(tmp_path):
    pre = TablePreprocessor(min_frequency=0.05).fit(table(400, seed=0))
    assert pre.imputer_.indicators_ == ["income"] and "log" in pre.scaler_.chains_["income"]
    assert pre.encoder_.levels_["city"] == ["oslo", "paris", "rome"]  # lima is rare: other
    names = pre.get_feature_names_out().tolist()
    model = mlp(len(names), 3)
    path = tmp_path / "table.onnx"
    proto = gw.export_onnx(
        model, path, np.zeros((1, len(names)), np.float32), preprocessing=pre, probabilities=True
    )
    assert [i.name for i in proto.graph.input] == ["income", "age", "city", "pet"]
    later = table(50, seed=1)
    later["city"][:3] = ["lima", "atlantis", None]  # rare, unseen, missing
    later["age"] = later["age"].astype(np.float32).astype(np.float64)  # what float32 can hold
    later["income"] = later["income"].astype(np.float32).astype(np.float64)
    got = run_onnx(path, feeds_of(later))
    for name, value in run_onnx(path, gw.export.table_feeds(later, pre)).items():
        np.testing.assert_array_equal(value, got[name])  # the helper feeds the same
    features = pre.transform(later)
    assert features[:3, names.index("city=other")].tolist() == [1.0, 1.0, 1.0]
    np.testing.assert_allclose(got["output"], gw.predict(model, features), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(
        got["probabilities"], gw.predict_proba(model, features), rtol=RTOL, atol=ATOL
    )


def test_a_column_whose_levels_are_all_rare_is_all_other(tmp_path):
    frame = {"x": np.arange(20.0), "tag": np.array([f"t{i}" for i in range(20)], dtype=object)}
    pre = TablePreprocessor(min_frequency=0.2).fit(frame)
    assert pre.encoder_.levels_["tag"] == []
    model = mlp(2, 1)
    gw.export_onnx(model, tmp_path / "m.onnx", np.zeros((1, 2), np.float32), preprocessing=pre)
    got = run_onnx(tmp_path / "m.onnx", feeds_of(frame))["output"]
    np.testing.assert_allclose(got, gw.predict(model, pre.transform(frame)), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize(
    "scaler",
    [
        AutoScaler(),
        LinearScaler(),
        ZScoreScaler(),
        RobustScaler(quantiles=(0.1, 0.9)),
        ColumnScaler(
            {0: [Clip(quantiles=(0.05, 0.95)), LinearScaler()], (2, 3): "log -> zscore"},
            default=[Clip(min=-1.0), RobustScaler()],
        ),
        ColumnScaler({1: [LogScaler(shift="auto"), LinearScaler((0, 1))]}),
    ],
    ids=repr,
)
def test_a_matrix_scaler_goes_in_front(tmp_path, scaler):
    rng = np.random.default_rng(0)
    X = np.stack(
        [rng.normal(5, 30, 300), rng.normal(0, 1, 300), rng.lognormal(3, 2, 300),
         rng.exponential(100, 300), rng.uniform(-1, 1, 300)], axis=1
    ).astype(np.float32)  # fmt: skip
    scaler.fit(X)
    model = mlp(5, 2)
    path = tmp_path / "scaled.onnx"
    gw.export_onnx(model, path, np.zeros((1, 5), np.float32), preprocessing=scaler)
    X_new = X[::7]
    got = run_onnx(path, {"input": X_new})["output"]
    want = gw.predict(model, scaler.transform(X_new.astype(np.float64)))
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("method", ["standardize", "robust", "log", "log1p"])
def test_regression_outputs_come_back_in_the_target_units(tmp_path, method):
    rng = np.random.default_rng(0)
    prices = rng.lognormal(12, 0.5, (200, 1))
    model = mlp(3, 1)
    model.target_scaler = TargetScaler(method).fit(prices)
    x = rng.normal(size=(30, 3)).astype(np.float32)
    gw.export_onnx(model, tmp_path / "r.onnx", x[:1])
    got = run_onnx(tmp_path / "r.onnx", {"input": x})["output"]
    want = gw.predict(model, x)
    assert np.abs(want).max() > 1000  # dollars, not standard units
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


def test_unsupported_preprocessing_is_named(tmp_path):
    with pytest.raises(gw.export.ExportError, match="TargetScaler has no ONNX conversion"):
        gw.export_onnx(
            mlp(1, 1), tmp_path / "m.onnx", np.zeros((1, 1), np.float32),
            preprocessing=TargetScaler().fit(np.arange(5.0)),
        )  # fmt: skip
    with pytest.raises(ValueError, match=r"gives 2 features per row, so the example should have"):
        scaler = LinearScaler().fit(np.ones((3, 2)))
        gw.export_onnx(mlp(3, 1), tmp_path / "m.onnx", np.zeros((1, 3)), preprocessing=scaler)
    with pytest.raises(TypeError, match="fitted gradwell scaler"):
        gw.export_onnx(mlp(1, 1), tmp_path / "m.onnx", np.zeros((1, 1)), preprocessing="zscore")
    assert list(tmp_path.iterdir()) == []
