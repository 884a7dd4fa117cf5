"""Callbacks: hook order, early stopping, NaN termination, checkpoints, CSV logs, lr schedules."""

import csv
import math

import numpy as np
import pytest
from train.fitting import quick_fit

import gradwell as gw
from gradwell.train.callbacks import (
    Callback,
    CSVLogger,
    EarlyStopping,
    LearningRateScheduler,
    ModelCheckpoint,
    TerminateOnNaN,
)


def _fit(model, data, epochs=3, **kw):
    return quick_fit(model, data, epochs=epochs, **kw)


class Scripted(Callback):
    """Puts a scripted value under ``key`` into each epoch's logs (runs before the others)."""

    order = -1

    def __init__(self, values, key="score"):
        super().__init__()
        self.values, self.key = values, key

    def on_epoch_end(self, epoch, logs):
        logs[self.key] = self.values[epoch]


class WeightRecorder(Callback):
    """Copies of the model's state after every epoch."""

    def __init__(self):
        super().__init__()
        self.states = []

    def on_epoch_end(self, epoch, logs):
        self.states.append(self.model.state_dict())


def _same_state(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_hooks_run_in_order_with_epoch_and_batch_indices(blobs, make_model):
    X, y = blobs
    calls = []

    class Recorder(Callback):
        def on_train_begin(self, logs=None):
            calls.append("train_begin")

        def on_epoch_begin(self, epoch, logs=None):
            calls.append(f"epoch_begin {epoch}")

        def on_batch_begin(self, step, logs=None):
            calls.append(f"batch_begin {step}")

        def on_after_backward(self, step, logs=None):
            calls.append(f"after_backward {step}")

        def on_batch_end(self, step, logs=None):
            assert set(logs) == {"loss", "lr", "size"} and logs["size"] == 16
            calls.append(f"batch_end {step}")

        def on_epoch_end(self, epoch, logs=None):
            assert {"loss", "lr", "time"} <= set(logs)
            calls.append(f"epoch_end {epoch}")

        def on_train_end(self, logs=None):
            calls.append("train_end")

    _fit(make_model(), (X[:32], y[:32]), epochs=2, callbacks=[Recorder()])
    batch = ["batch_begin {0}", "after_backward {0}", "batch_end {0}"]
    expected = ["train_begin"]
    for e in range(2):
        expected.append(f"epoch_begin {e}")
        for s in range(2):
            expected += [b.format(s) for b in batch]
        expected.append(f"epoch_end {e}")
    expected.append("train_end")
    assert calls == expected


def test_callbacks_see_model_optimizer_and_can_stop_training(blobs, make_model):
    X, y = blobs
    model = make_model()

    class StopAfterThreeSteps(Callback):
        def on_batch_end(self, step, logs):
            assert self.model is model and self.optimizer is self.state.optimizer
            if self.state.global_step == 3:
                self.state.stop_training = True

    h = _fit(model, (X, y), epochs=5, callbacks=[StopAfterThreeSteps()])
    assert len(h.steps["loss"]) == 3 and h.epoch == [0]


def test_early_stopping_stops_after_patience_and_restores_best_weights(blobs, make_model):
    X, y = blobs
    model = make_model(batchnorm=True)
    recorder = WeightRecorder()
    stop = EarlyStopping(monitor="score", patience=2, restore_best_weights=True, mode="min")
    scores = [5.0, 3.0, 2.0, 2.5, 4.0, 1.0, 0.5]
    h = _fit(model, (X, y), epochs=7, callbacks=[Scripted(scores), recorder, stop])
    # best at epoch 2; epochs 3 and 4 do not improve -> stop after epoch 4
    assert h.epoch == [0, 1, 2, 3, 4]
    assert stop.stopped_epoch == 4 and stop.best_epoch == 2 and stop.best == 2.0
    assert _same_state(model.state_dict(), recorder.states[2])  # includes BatchNorm buffers
    assert not _same_state(recorder.states[4], recorder.states[2])


def test_early_stopping_min_delta_and_max_mode(blobs, make_model):
    X, y = blobs
    # mode auto for an accuracy: higher is better; +0.005 is not more than min_delta 0.01
    stop = EarlyStopping(monitor="val_accuracy", patience=1, min_delta=0.01)
    scores = [0.5, 0.505, 0.9, 0.9]
    h = _fit(make_model(), (X, y), epochs=4, callbacks=[Scripted(scores, "val_accuracy"), stop])
    assert h.epoch == [0, 1] and stop.best == 0.5
    assert not stop.restore_best_weights


def test_early_stopping_names_missing_monitor(blobs, make_model):
    X, y = blobs
    with pytest.raises(KeyError, match="monitors 'val_loss'.*pass validation= to fit"):
        _fit(make_model(), (X, y), callbacks=[EarlyStopping()])


def test_terminate_on_nan_stops_at_the_first_non_finite_loss(blobs, make_model):
    X, y = blobs
    ce = gw.nn.CrossEntropyLoss()
    calls = []

    def loss_going_nan(outputs, targets):
        calls.append(1)
        value = ce(outputs, targets)
        return value * float("nan") if len(calls) == 5 else value

    stop = TerminateOnNaN()
    with pytest.warns(RuntimeWarning, match="TerminateOnNaN: loss is nan at epoch 0, batch 4"):
        h = _fit(make_model(), (X, y), loss=loss_going_nan, epochs=3, callbacks=[stop])
    assert len(h.steps["loss"]) == 5 and math.isnan(h.steps["loss"][-1])
    assert stop.stopped_step == 4 and h.epoch == [0]


def test_model_checkpoint_every_epoch_and_best_only(blobs, make_model, tmp_path):
    X, y = blobs
    model = make_model()
    every = ModelCheckpoint(tmp_path / "every-{epoch:02d}.safetensors", note="run A")
    best = ModelCheckpoint(tmp_path / "best.safetensors", monitor="score", save_best_only=True)
    recorder = WeightRecorder()
    _fit(model, (X, y), epochs=4, callbacks=[Scripted([3.0, 1.0, 2.0, 0.5]), recorder, every, best])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "best.safetensors",
        "every-01.safetensors",
        "every-02.safetensors",
        "every-03.safetensors",
        "every-04.safetensors",
    ]
    assert [p.name for p in best.saved] == ["best.safetensors"] * 3  # epochs 0, 1, 3 improved
    fresh = make_model(seed=99)
    meta = gw.load(tmp_path / "every-02.safetensors", fresh)
    assert meta["epoch"] == 2 and meta["note"] == "run A" and meta["logs"]["score"] == 1.0
    assert _same_state(fresh.state_dict(), recorder.states[1])
    meta = gw.load(tmp_path / "best.safetensors", fresh)
    assert meta["epoch"] == 4 and _same_state(fresh.state_dict(), recorder.states[3])


def test_csv_logger_writes_header_and_one_exact_row_per_epoch(blobs, make_model, tmp_path):
    X, y = blobs
    path = tmp_path / "logs" / "train.csv"
    h = _fit(make_model(), (X, y), epochs=3, metrics=["accuracy"], callbacks=[CSVLogger(path)])
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["epoch", "loss", "accuracy", "lr", "time"]
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    for key in ("loss", "accuracy", "lr"):
        assert [float(r[key]) for r in rows] == h[key]  # floats round-trip exactly
    assert path.read_text().endswith("\n")
    # append continues the file with the same columns
    _fit(
        make_model(),
        (X, y),
        epochs=1,
        metrics=["accuracy"],
        callbacks=[CSVLogger(path, append=True)],
    )
    assert len(path.read_text().splitlines()) == 1 + 3 + 1


def test_lr_function_per_epoch_and_per_step(blobs, make_model):
    X, y = blobs
    X, y = X[:32], y[:32]  # two steps per epoch
    h = _fit(
        make_model(), (X, y), epochs=3, callbacks=[LearningRateScheduler(lambda e: 0.1 * 0.5**e)]
    )
    assert h["lr"] == [0.1, 0.05, 0.025]
    assert h.steps["lr"] == [0.1, 0.1, 0.05, 0.05, 0.025, 0.025]
    cb = LearningRateScheduler(lambda step, lr: lr * 0.9, interval="step")
    h = _fit(make_model(), (X, y), epochs=2, callbacks=[cb])
    assert h.steps["lr"] == pytest.approx([0.05 * 0.9 ** (k + 1) for k in range(4)], rel=1e-12)


def test_lr_scheduler_object_per_epoch_and_per_step(blobs, make_model):
    X, y = blobs
    X, y = X[:32], y[:32]
    model = make_model()
    opt = gw.optim.SGD(model.parameters(), lr=0.1)
    sched = gw.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.1)
    h = _fit(model, (X, y), optimizer=opt, epochs=5, callbacks=[LearningRateScheduler(sched)])
    assert h["lr"] == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001], rel=1e-12)
    opt = gw.optim.SGD(model.parameters(), lr=0.1)
    sched = gw.optim.lr_scheduler.ExponentialLR(opt, gamma=0.5)
    h = _fit(
        model,
        (X, y),
        optimizer=opt,
        epochs=2,
        callbacks=[LearningRateScheduler(sched, interval="step")],
    )
    assert h.steps["lr"] == pytest.approx([0.1, 0.05, 0.025, 0.0125], rel=1e-12)


def test_reduce_lr_on_plateau_gets_the_monitored_value(blobs, make_model):
    X, y = blobs
    model = make_model()
    opt = gw.optim.SGD(model.parameters(), lr=1.0)
    plateau = gw.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=1)
    cb = LearningRateScheduler(plateau, monitor="score")
    # improvements at epochs 0, 1; bad epochs 2, 3 -> more than patience=1 after epoch 3
    h = _fit(model, (X, y), optimizer=opt, epochs=6, callbacks=[Scripted([3, 2, 2, 2, 1, 1]), cb])
    assert h["lr"] == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5]
    with pytest.raises(ValueError, match="interval='epoch'"):
        LearningRateScheduler(plateau, interval="step")
