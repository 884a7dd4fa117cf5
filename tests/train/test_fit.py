"""The fit loop: training progress, History, validation, metrics, output, errors."""

import io
import sys

import numpy as np
import pytest
from train.fitting import quick_fit

import gradwell as gw
from gradwell.train.callbacks import Callback


def _fit(model, data, epochs=5, **kw):
    return quick_fit(model, data, epochs=epochs, **kw)


def test_loss_decreases_and_history_has_one_value_per_epoch_and_step(blobs, make_model):
    X, y = blobs
    model = make_model()
    h = _fit(model, (X, y), epochs=8, validation=(X[:32], y[:32]), metrics=["accuracy"])
    assert h.epoch == list(range(8))
    assert set(h.history) == {"loss", "accuracy", "val_loss", "val_accuracy", "lr", "time"}
    assert all(len(v) == 8 for v in h.history.values())
    assert h["loss"][-1] < 0.5 * h["loss"][0]
    assert h["accuracy"][-1] > 0.9
    steps_per_epoch = -(-len(X) // 16)
    assert len(h.steps["loss"]) == len(h.steps["lr"]) == 8 * steps_per_epoch
    assert h.steps["lr"] == [0.05] * (8 * steps_per_epoch)
    assert all(t > 0 for t in h["time"])
    assert h.params["steps"] == steps_per_epoch


def test_epoch_loss_is_the_example_weighted_mean_of_step_losses(blobs, make_model):
    X, y = blobs
    X, y = X[:40], y[:40]  # batches of 16, 16, 8
    h = _fit(make_model(), (X, y), epochs=2)
    sizes = np.array([16, 16, 8])
    for e in range(2):
        step_losses = np.array(h.steps["loss"][3 * e : 3 * e + 3])
        assert h["loss"][e] == pytest.approx(np.sum(step_losses * sizes) / 40, rel=1e-12)


def test_validation_metrics_equal_evaluating_the_final_model(blobs, make_model):
    X, y = blobs
    model = make_model(batchnorm=True, dropout=0.3)
    h = _fit(
        model, (X, y), epochs=3, validation=(X[:50], y[:50]), metrics=["accuracy", "top_1_accuracy"]
    )
    logits = gw.predict(model, X[:50])
    z = logits - logits.max(axis=1, keepdims=True)
    nll = -(z[np.arange(50), y[:50]] - np.log(np.exp(z).sum(axis=1)))
    assert h["val_loss"][-1] == pytest.approx(nll.mean(), rel=1e-5)
    assert h["val_accuracy"][-1] == np.mean(logits.argmax(axis=1) == y[:50])
    assert h["val_top_1_accuracy"][-1] == h["val_accuracy"][-1]
    assert model.training  # back in training mode after validation


def test_same_seed_same_run_and_loader_input(blobs, make_model):
    X, y = blobs
    a = _fit(make_model(dropout=0.2), (X, y), epochs=3)
    b = _fit(make_model(dropout=0.2), (X, y), epochs=3)
    assert a.steps["loss"] == b.steps["loss"]
    loader = gw.data.DataLoader((X, y), batch_size=16, shuffle=True, seed=0)
    c = _fit(make_model(dropout=0.2), loader, epochs=3)
    assert c.steps["loss"] == a.steps["loss"]


def test_regression_with_loss_by_name_and_regression_metrics(make_model):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(64, 3))
    y = (X @ np.array([1.0, -2.0, 0.5]))[:, None]
    model = gw.nn.Linear(3, 1, rng=0)
    h = gw.fit(
        model,
        (X, y),
        loss="mse",
        optimizer=gw.optim.Adam(model.parameters(), lr=0.1),
        epochs=30,
        metrics=["mse", "rmse", "mae", "r2"],
        seed=0,
        verbose=0,
    )
    assert h["r2"][-1] > 0.99
    assert h["rmse"][-1] == pytest.approx(np.sqrt(h["mse"][-1]))


def test_clip_grad_norm_bounds_every_update(blobs, make_model):
    X, y = blobs
    model = make_model()
    norms = []

    class GradNorm(Callback):
        def on_after_backward(self, step, logs):
            total = sum(
                float(np.sum(p.grad.data.astype(np.float64) ** 2)) for p in self.model.parameters()
            )
            norms.append(np.sqrt(total))

    _fit(model, (X, y), epochs=2, clip_grad_norm=1e-3, callbacks=[GradNorm()])
    assert len(norms) == 2 * 6
    assert max(norms) <= 1e-3 * (1 + 1e-5)


def test_verbose_prints_one_line_per_epoch_when_not_a_terminal(blobs, make_model, monkeypatch):
    X, y = blobs
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    _fit(make_model(), (X, y), epochs=3, verbose=1, metrics=["accuracy"])
    lines = out.getvalue().splitlines()
    assert len(lines) == 4  # one per epoch, then the training doctor's summary
    assert lines[3].startswith("doctor: no problems found")
    assert lines[0].startswith("Epoch 1/3 - ") and "loss: " in lines[0]
    assert "accuracy: " in lines[0] and "lr: 0.05" in lines[0]


def test_verbose_zero_prints_nothing(blobs, make_model, capsys):
    X, y = blobs
    _fit(make_model(), (X, y), epochs=2, verbose=0)
    assert capsys.readouterr().out == ""


def test_progress_bar_on_a_terminal(blobs, make_model, monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    X, y = blobs
    out = Tty()
    monkeypatch.setattr(sys, "stdout", out)
    _fit(make_model(), (X, y), epochs=2, verbose=1)
    text = out.getvalue()
    assert "Epoch 1/2" in text and "Epoch 2/2" in text and "6/6" in text and "loss: " in text


def test_bad_arguments_are_clear_errors(blobs, make_model):
    X, y = blobs
    model = make_model()
    with pytest.raises(ValueError, match="unknown loss 'crossentropy'"):
        _fit(model, (X, y), loss="crossentropy")
    with pytest.raises(ValueError, match="initial_epoch"):
        _fit(model, (X, y), initial_epoch=9, epochs=3)
    with pytest.raises(ValueError, match="unknown metric 'f1'"):
        _fit(model, (X, y), metrics=["f1"])
    with pytest.raises(TypeError, match=r"pair of arrays \(X, y\) or a DataLoader"):
        _fit(model, X)
    with pytest.raises(TypeError, match="Callback instances"):
        _fit(model, (X, y), callbacks=[print])


def test_predict_runs_in_eval_mode_and_restores_each_modules_mode(make_model):
    model = make_model(dropout=0.5, batchnorm=True)
    X = np.random.default_rng(0).normal(size=(20, 2))
    model.train()
    first = gw.predict(model, X, batch_size=7)
    assert model.training and all(m.training for m in model.modules())
    assert np.array_equal(first, gw.predict(model, X))  # dropout off: deterministic
    model.eval()
    with gw.no_grad():
        expected = model(gw.tensor(X)).data
    assert np.allclose(first, expected, rtol=1e-6, atol=1e-6)
    assert not model.training
    model.train()
    model[1].eval()  # mixed modes come back as they were
    gw.predict(model, X)
    assert [m.training for m in model] == [True, False, True, True, True]
    assert first.dtype == np.float32 and first.shape == (20, 2)


def test_evaluate_returns_loss_and_metrics(blobs, make_model):
    X, y = blobs
    model = make_model()
    logs = gw.evaluate(
        model, (X, y), loss=gw.nn.CrossEntropyLoss(), metrics=["accuracy"], batch_size=10
    )
    assert set(logs) == {"loss", "accuracy"}
    assert logs["accuracy"] == np.mean(gw.predict(model, X).argmax(axis=1) == y)


def test_evaluate_accepts_a_loss_name_like_fit():
    import numpy as np

    import gradwell as gw

    model = gw.nn.Sequential(gw.nn.Linear(4, 3, rng=0))
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 4)).astype("float32")
    y = rng.integers(0, 3, 20)
    by_name = gw.evaluate(model, (X, y), loss="cross_entropy")["loss"]
    by_module = gw.evaluate(model, (X, y), loss=gw.nn.CrossEntropyLoss())["loss"]
    assert by_name == by_module
