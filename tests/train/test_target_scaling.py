"""fit(..., target_scaler=...): trains on scaled targets, reports and predicts in original units."""

from __future__ import annotations

import numpy as np
import pytest

import gradwell as gw
from gradwell.preprocessing import TargetScaler


def _problem(seed=0, n=200):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3)).astype(np.float32)
    y = 180_000 + 40_000 * X @ np.array([1.0, -0.5, 0.25]) + 2_000 * rng.normal(size=n)
    return X, y.astype(np.float32)[:, None]


def _model(seed=0):
    return gw.nn.Sequential(
        gw.nn.Linear(3, 16, rng=seed), gw.nn.ReLU(), gw.nn.Linear(16, 1, rng=seed + 1)
    )


def _fit(model, X, y, scaler, **kw):
    opt = gw.optim.Adam(model.parameters(), lr=0.01)
    return gw.fit(model, (X[:150], y[:150]), loss="mse", validation=(X[150:], y[150:]),
                  optimizer=opt, epochs=30, seed=0, verbose=0, doctor=False,
                  metrics=["mse", "r2"], target_scaler=scaler, **kw)  # fmt: skip


def test_the_loss_is_on_scaled_targets_and_metrics_in_original_units():
    X, y = _problem()
    scaler = TargetScaler("standardize")
    model = _model()
    h = _fit(model, X, y, scaler)
    mean, std = y[:150].mean(), y[:150].std()
    assert scaler.center_[0] == pytest.approx(mean, rel=1e-6)  # fitted on the training part only
    assert scaler.spread_[0] == pytest.approx(std, rel=1e-5)
    assert h["loss"][0] < 10 and h["loss"][-1] < 0.05  # unit scale: an MSE about 1 at the start
    pred = gw.predict(model, X[150:])  # original units
    assert abs(float(np.mean(pred)) - 180_000) < 20_000
    expected_mse = float(np.mean((pred.astype(np.float64) - y[150:]) ** 2))
    assert h["val_mse"][-1] == pytest.approx(expected_mse, rel=1e-3)
    raw = model(gw.tensor(X[150:])).data.astype(np.float64)
    scaled_val_loss = float(np.mean((raw - (y[150:] - mean) / std) ** 2))
    assert h["val_loss"][-1] == pytest.approx(scaled_val_loss, rel=1e-3)
    assert h["val_r2"][-1] > 0.95
    ev = gw.evaluate(model, (X[150:], y[150:]), loss="mse", metrics=["mse"])
    assert ev["mse"] == pytest.approx(expected_mse, rel=1e-3)
    assert ev["loss"] == pytest.approx(scaled_val_loss, rel=1e-3)


def test_without_it_the_same_run_fails_in_dollars():
    X, y = _problem()
    h = _fit(_model(), X, y, None)
    assert h["val_r2"][-1] < 0.5  # the lr that suits unit-scale targets gets nowhere


def test_log_targets_and_dataloaders():
    X, y = _problem()
    y = np.abs(y) + 1.0
    loader = gw.data.DataLoader((X[:150], y[:150]), batch_size=32, shuffle=True, seed=0)
    model = _model()
    h = gw.fit(model, loader, loss="mse", optimizer=gw.optim.Adam(model.parameters(), lr=0.01),
               epochs=20, verbose=0, doctor=False, target_scaler=TargetScaler("log"))  # fmt: skip
    assert model.target_scaler.method == "log" and loader.epoch == 20
    logs = np.log(y[:150])
    assert model.target_scaler.center_[0] == pytest.approx(logs.mean(), rel=1e-6)
    assert h["loss"][-1] < 0.1
    assert np.all(gw.predict(model, X) > 0)


def test_saved_and_restored_with_the_model(tmp_path):
    X, y = _problem()
    model = _model()
    _fit(model, X, y, TargetScaler("standardize"),
         callbacks=[gw.callbacks.ModelCheckpoint(tmp_path / "ckpt.safetensors")])  # fmt: skip
    path = gw.save(tmp_path / "m.safetensors", model)
    for p in (path, tmp_path / "ckpt.safetensors"):
        fresh = _model(seed=7)
        out = gw.load(p, fresh)
        assert (
            isinstance(fresh.target_scaler, TargetScaler)
            and out["target_scaler"] is fresh.target_scaler
        )
    fresh = _model(seed=7)
    gw.load(path, fresh)
    np.testing.assert_array_equal(gw.predict(fresh, X), gw.predict(model, X))
    # resuming: a later fit of the loaded model trains on the same scaled targets
    h = gw.fit(fresh, (X[:150], y[:150]), loss="mse", epochs=1, verbose=0, doctor=False,
               optimizer=gw.optim.Adam(fresh.parameters(), lr=1e-4))  # fmt: skip
    assert h["loss"][0] < 0.1  # scaled units (in dollars it would be about 1e8)
    with pytest.raises(TypeError, match="reserved"):
        gw.save(tmp_path / "x.safetensors", model, target_scaler=1)


def test_bad_target_scaler():
    X, y = _problem()
    with pytest.raises(TypeError, match="target_scaler must be a gw.preprocessing.TargetScaler"):
        _fit(_model(), X, y, "standardize")
