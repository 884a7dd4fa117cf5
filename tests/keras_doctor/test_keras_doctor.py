"""The doctor issue's sick and healthy recipes rebuilt in Keras 3 (torch backend), watched
through ``model.fit(..., callbacks=[DoctorCallback()])``: each gives the same kind at the
same place as in gradwell (tests/doctor/test_acceptance.py) and PyTorch
(tests/torch_doctor), in Keras' words; healthy runs stay quiet."""

from __future__ import annotations

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from keras_doctor.kit import dataset, dense_names, fit, kinds, mlp, optimizer, relu_places, serious

import gradwell as gw
from gradwell.keras import DoctorCallback

SEEDS = (0, 1)
# (Keras' own np.array calls on numpy 2)
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def test_import_gradwell_never_imports_keras_nor_torch():
    code = (
        "import sys, gradwell, gradwell.doctor; "
        "print('keras' in sys.modules, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_another_backend_is_refused_with_what_to_set():
    env = {**os.environ, "KERAS_BACKEND": "numpy"}
    out = subprocess.run([sys.executable, "-c", "import gradwell.keras"], capture_output=True,
                         text=True, env=env)  # fmt: skip
    assert out.returncode != 0
    assert "needs Keras 3 on its torch backend (KERAS_BACKEND=torch" in out.stderr
    assert "on 'numpy'" in out.stderr  # (Keras' numpy backend needs jax: either message)


def remedies(doctor: DoctorCallback) -> str:
    return " ".join(r for f in doctor.findings for r in f.remedies)


# --------------------------------------------------------------------------- healthy

HEALTHY = [
    # data, activation, optimizer, lr, widths
    ("circle", "relu", "adam", 0.01, [32, 32]),
    ("circle", "tanh", "sgd", 0.1, [16, 16]),
    ("xor", "relu", "momentum", 0.05, [32, 32, 32]),
    ("blobs", "sigmoid", "adam", 0.01, [16, 16]),
    ("blobs", "gelu", "adam", 0.003, [32, 32]),
    ("spiral", "tanh", "adam", 0.01, [32, 32, 32]),
]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("data,act,opt,lr,widths", HEALTHY)
def test_healthy_runs_raise_no_warning(data, act, opt, lr, widths, seed):
    X, y, C = dataset(data, seed)
    model = mlp(X.shape[1], widths, C, act, seed=seed, separate=seed == 1)
    doctor = fit(model, X, y, optimizer(opt, lr), epochs=4)
    assert serious(doctor) == [], [f.headline() for f in serious(doctor)]
    trace = doctor.doctor.trace
    assert trace.n_samples >= 16 and len(trace.loss) == 64  # it looked: 4 samples an epoch
    assert set(trace.grad_norm) == {
        f"{d}/{w}" for d in dense_names(model) for w in ("kernel", "bias")
    }


# --------------------------------------------------------------------------- vanishing


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("data,depth,opt,separate", [("circle", 6, "sgd", False),
                                                      ("blobs", 8, "adam", True)])  # fmt: skip
def test_deep_sigmoid_stack_vanishes_at_the_first_layers(data, depth, opt, separate, seed):
    X, y, C = dataset(data, seed)
    model = mlp(X.shape[1], [16] * depth, C, "sigmoid", seed=seed, separate=separate)
    lr = {"sgd": 0.5, "adam": 0.01}[opt]
    doctor = fit(model, X, y, optimizer(opt, lr), epochs=3)
    found = [f for f in serious(doctor) if f.kind == "vanishing_gradients"]
    assert len(found) == 1, [f.headline() for f in doctor.findings]
    f = found[0]
    hidden = dense_names(model)[:-1]
    assert hidden[0] in f.locations and set(f.locations) <= set(hidden[:-1])
    assert f.evidence["ratio_to_strongest_later_layer"][f.locations[0]] < 0.01
    assert "replace Sigmoid at" in f.remedies[0] and "with ReLU" in f.remedies[0]
    # Keras' words, not gradwell's nor PyTorch's
    assert "kernel_initializer='he_normal'" in f.remedies[0]
    assert "gw." not in remedies(doctor) and "nn.init" not in remedies(doctor)


# --------------------------------------------------------------------------- dead ReLU


RELU_RECIPES = [("circle", [32, 32], "sgd", False), ("blobs", [64, 32, 16], "adam", True)]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("data,widths,opt,separate", RELU_RECIPES)
def test_relu_network_killed_by_a_high_learning_rate(data, widths, opt, separate, seed):
    X, y, C = dataset(data, seed)
    model = mlp(X.shape[1], widths, C, "relu", seed=seed, separate=separate)
    lr = {"sgd": 3.0, "adam": 1.0}[opt]
    doctor = fit(model, X, y, optimizer(opt, lr), epochs=4)
    dead = [f for f in serious(doctor) if f.kind == "dead_relu"]
    assert len(dead) == 1, [f.headline() for f in doctor.findings]
    f = dead[0]
    assert set(f.locations) <= set(relu_places(model))
    assert f.evidence["dead_fraction"] >= 0.3
    lower = [(r, a) for r, a in zip(f.remedies, f.actions) if a["action"] == "scale_lr"]
    assert lower and lower[0][1]["lr"][0] <= lr / 10
    name = {"sgd": "SGD", "adam": "Adam"}[opt]
    assert lower[0][0].endswith(
        f": keras.optimizers.{name}(learning_rate={lower[0][1]['lr'][0]:g})"
    )
    assert any(f"replace ReLU at {f.where} with LeakyReLU" in r for r in f.remedies)


# --------------------------------------------------------------------------- exploding / NaN


def regression(name: str, seed: int):
    ds = getattr(gw.data.datasets, name)(n=512, noise=0.1, seed=seed)
    return (ds.X / 6.0).astype(np.float32), ds.y.reshape(-1, 1).astype(np.float32)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("data,widths,act", [("plane", [16, 16], "relu"),
                                             ("multi_gaussian", [32], "tanh")])  # fmt: skip
def test_learning_rate_far_too_high_explodes_then_nan_with_the_layer_named(data, widths, act, seed):
    X, y = regression(data, seed)
    model = mlp(2, widths, 1, act, seed=seed)
    doctor = fit(model, X, y, optimizer("sgd", 3.0), loss="mse", epochs=4)
    found = kinds(doctor)
    assert "exploding_gradients" in found, [f.headline() for f in doctor.findings]
    assert set(found["exploding_gradients"][0].split(", ")) <= set(dense_names(model))
    assert found.get("learning_rate_too_high") == ["optimizer"]
    nan = [f for f in doctor.findings if f.kind == "nan_trap"]
    assert len(nan) == 1 and nan[0].severity == "critical"
    places = set(dense_names(model)) | {f"{d}/activation" for d in dense_names(model)}
    assert nan[0].where in places | {"MeanSquaredError"} or nan[0].evidence["names"], nan[0]
    assert doctor.findings[0].kind in ("learning_rate_too_high", "exploding_gradients")
    assert nan[0].caused_by
    words = remedies(doctor)
    assert "clipnorm=" in words and "keras.callbacks.TerminateOnNaN()" in words
    assert "torch." not in words and "gw." not in words


class LogOfRelu(keras.layers.Layer):
    """A custom layer with a bug: log of a ReLU output is -inf wherever the ReLU is 0."""

    def __init__(self, n: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.inner = keras.layers.Dense(n)

    def call(self, x):
        return keras.ops.log(keras.ops.relu(self.inner(x)))  # the buggy line


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_nan_trap_names_the_layer_the_op_and_the_user_code_line(opt, seed):
    X, y, C = dataset("blobs", seed)
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((X.shape[1],)), keras.layers.Dense(16),
                              LogOfRelu(16, name="log_of_relu"),
                              keras.layers.Dense(C)])  # fmt: skip
    doctor = fit(model, X, y, optimizer(opt, 0.01), epochs=1)
    f = next(f for f in doctor.findings if f.kind == "nan_trap")
    assert f.severity == "critical" and f.where == "log_of_relu" and f.step == 0
    a = f.evidence["anomaly"]
    assert a["op"] == "log" and a["phase"] == "forward" and a["module"] == "log_of_relu"
    assert a["input_ranges"][0][0] == 0.0  # log received exact zeros from the ReLU
    assert "the buggy line" in a["code"] and __file__ in a["code"]
    assert "the log at log_of_relu received 0" in f.remedies[0]
    assert "keras.ops.maximum" in f.remedies[0]


# --------------------------------------------------------------------------- setup problems


@pytest.mark.parametrize("seed", SEEDS)
def test_unscaled_features_are_named(seed):
    X, y, C = dataset("blobs", seed)
    X = X.copy()
    X[:, 2] *= 1e4
    model = mlp(X.shape[1], [16], C, seed=seed)
    doctor = fit(model, X, y, optimizer("sgd", 0.01), epochs=1)
    f = next(f for f in serious(doctor) if f.kind == "unscaled_features")
    assert f.locations[0] == "x2" and f.step is None
    assert "column x2" in f.remedies[0]


@pytest.mark.filterwarnings("ignore:Gradients do not exist:UserWarning")  # (Keras: rate 1)
def test_dropout_rate_one_and_a_missing_nonlinearity_are_named():
    X, y, C = dataset("circle", 0)
    model = mlp(X.shape[1], [32, 32], C, "relu", seed=0, dropout=1.0)
    doctor = fit(model, X, y, optimizer("sgd", 0.05), epochs=3)
    drops = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    f = doctor.findings[0]
    assert f.kind == "dropout_misconfigured" and f.severity == "critical"
    assert (
        f.locations == drops and f.remedies[0] == f"set the Dropout rate at {f.where} from 1 to 0"
    )
    assert "dead_relu" not in kinds(doctor)
    keras.utils.set_random_seed(0)
    linear = keras.Sequential([keras.Input((2,)), keras.layers.Dense(16, name="a"),
                               keras.layers.Dense(C, name="b")])  # fmt: skip
    assert kinds(fit(linear, X, y, optimizer("sgd", 0.1), epochs=1)) == {
        "missing_nonlinearity": ["a"]
    }


def test_the_doctor_never_changes_training():
    X, y, C = dataset("circle", 0)
    weights = []
    for callbacks in ([], [DoctorCallback(verbose=False, raise_errors=True)]):
        model = mlp(X.shape[1], [16, 16], C, seed=0, dropout=0.2)
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        model.compile(optimizer=optimizer("adam", 0.01), loss=loss)
        model.fit(X, y, epochs=2, batch_size=32, verbose=0, callbacks=callbacks)
        weights.append([v.numpy() for v in model.variables])
    assert all(np.array_equal(a, b) for a, b in zip(*weights))
    assert model.compute_loss.__func__ is type(model).compute_loss  # the seams are gone
    assert "apply" not in vars(model.optimizer)


def test_batch_norm_statistics_validation_and_reports(tmp_path):
    X, y, C = dataset("circle", 0)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(16, name="hidden"),
                              keras.layers.BatchNormalization(name="bn"),
                              keras.layers.Activation("relu", name="act"),
                              keras.layers.Dense(C, name="out")])  # fmt: skip
    model.compile(optimizer=optimizer("adam", 0.01), metrics=["accuracy"],
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))  # fmt: skip
    path = tmp_path / "report.html"
    doctor = DoctorCallback(verbose=False, raise_errors=True, save_html=path)
    model.fit(X, y, epochs=3, batch_size=32, verbose=0, validation_split=0.25, callbacks=[doctor])
    trace = doctor.doctor.trace
    bn = trace.batchnorm["bn"]
    # recorded at the first epoch's end and at the end (between: on the check's time budget)
    assert len(bn["step"]) >= 2 and bn["mean_running_var"][-1] != bn["mean_running_var"][0]
    assert [e["val_loss"] is not None for e in trace.epochs] == [True] * 3
    assert "val_accuracy" in trace.epochs[-1]["metrics"]
    assert set(trace.activations) == {"act"} and set(trace.signal) == {"hidden", "out"}
    assert "<html" in path.read_text()[:200].lower()
    assert "hidden/kernel" in doctor.report()
    # the pre-flight probe ran one forward and backward (on copies of the variables)
    probe = trace.setup["probe"]
    assert "error" not in probe and 0.3 < probe["loss"] < 3 and probe["output_module"] == "out"
    assert set(probe["layers"]) == {"hidden", "out"}
    assert all(v["grad_rms"] > 0 and v["gain"] > 0 for v in probe["layers"].values())
