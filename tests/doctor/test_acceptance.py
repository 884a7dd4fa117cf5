"""Each pathology built on purpose, in several variants and seeds: the right kind fires at the
right place. Healthy runs over several architectures and data sets raise nothing serious."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from doctor.kit import dataset, kinds, mlp, optimizer, serious, train

import gradwell as gw

SEEDS = (0, 1, 2)


def linear_paths(model):
    return [p for p, m in model.named_modules() if type(m).__name__ == "Linear"]


def paths_of(model, cls):
    return [p for p, m in model.named_modules() if type(m).__name__ == cls]


def regression(name, seed, n=512):
    ds = getattr(gw.data.datasets, name)(n=n, noise=0.1, seed=seed)
    return ds.X / 6.0, ds.y.reshape(-1, 1).astype(np.float32)


def fit_regression(model, X, y, lr, seed, epochs=4):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # overflow is the point here
        return gw.fit(
            model, (X, y), loss="mse", optimizer=gw.optim.SGD(model.parameters(), lr=lr),
            epochs=epochs, batch_size=32, seed=seed, verbose=0,
            doctor=gw.doctor.Doctor(verbose=False, raise_errors=True),
        )  # fmt: skip


# --------------------------------------------------------------------------- healthy

HEALTHY = [
    # data, activation, optimizer, lr, widths, batchnorm, dropout
    ("circle", "ReLU", "adam", 0.01, [32, 32], False, None),
    ("circle", "Tanh", "sgd", 0.1, [16, 16], False, None),
    ("xor", "ReLU", "momentum", 0.05, [32, 32, 32], False, None),
    ("spiral", "ReLU", "adam", 0.01, [32, 32, 32], True, None),
    ("digits", "ReLU", "adam", 0.003, [64, 64], True, 0.2),
    ("breast_cancer", "ReLU", "adam", 0.003, [32, 16], False, 0.1),
    ("wine", "Tanh", "adam", 0.01, [16], False, None),
    ("blobs", "GELU", "rmsprop", 0.003, [32, 32], False, None),
    ("blobs", "Sigmoid", "adam", 0.01, [16, 16], False, None),
    ("gaussians", "ReLU", "sgd", 0.1, [32, 32, 32], False, None),
    ("digits", "Sigmoid", "adam", 0.003, [64, 32], False, None),
    ("circle", "LeakyReLU", "sgd", 0.2, [16, 16, 16], False, None),
    ("spiral", "Tanh", "adam", 0.01, [32, 32, 32, 32, 32], False, None),
    ("xor", "ELU", "adam", 0.01, [16, 16], True, 0.1),
]


@pytest.mark.parametrize("seed", (0, 1))
@pytest.mark.parametrize(
    "data,act,opt,lr,widths,bn,drop", HEALTHY, ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in HEALTHY]
)
def test_healthy_runs_raise_no_warning(data, act, opt, lr, widths, bn, drop, seed):
    X, y, C = dataset(data, seed)
    model = mlp(X.shape[1], widths, C, act, seed=seed, batchnorm=bn, dropout=drop)
    history = train(model, X, y, optimizer(opt, model, lr), epochs=8, seed=seed)
    assert serious(history) == [], [f.headline() for f in serious(history)]
    assert history["loss"][-1] < history["loss"][0]  # and it did learn


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("data", ["plane", "multi_gaussian"])
def test_healthy_regression_with_validation_raises_no_warning(data, seed):
    X, y = regression(data, seed)
    model = mlp(2, [32, 32], 1, "ReLU", seed=seed)
    history = gw.fit(
        model, (X[:400], y[:400]), loss="mse", epochs=10, batch_size=32, seed=seed, verbose=0,
        optimizer=gw.optim.Adam(model.parameters(), lr=0.003), validation=(X[400:], y[400:]),
        doctor=gw.doctor.Doctor(verbose=False, raise_errors=True),
    )  # fmt: skip
    assert serious(history) == [], [f.headline() for f in serious(history)]


# --------------------------------------------------------------------------- vanishing

VANISHING = list(itertools.product(["circle", "blobs"], [6, 8], [16, 32], ["sgd", "adam"]))


@pytest.mark.parametrize("seed", (0, 1))
@pytest.mark.parametrize("data,depth,width,opt", VANISHING)
def test_deep_sigmoid_stack_has_vanishing_gradients_at_the_first_layers(
    data, depth, width, opt, seed
):
    X, y, C = dataset(data, seed)
    model = mlp(X.shape[1], [width] * depth, C, "Sigmoid", seed=seed)
    lr = {"sgd": 0.5, "adam": 0.01}[opt]
    history = train(model, X, y, optimizer(opt, model, lr), epochs=3, seed=seed)
    found = [f for f in serious(history) if f.kind == "vanishing_gradients"]
    assert len(found) == 1
    f = found[0]
    hidden = linear_paths(model)[:-1]
    assert hidden[0] in f.locations  # the layer next to the input is starved
    assert set(f.locations) <= set(hidden[:-1])  # never the last hidden or output layer
    # the evidence holds the numbers behind it: the starved layer's ratio is tiny
    assert f.evidence["ratio_to_strongest_later_layer"][f.locations[0]] < 0.01
    texts = " ".join(f.remedies)
    assert "replace Sigmoid at" in f.remedies[0] and "with ReLU" in f.remedies[0]
    assert "BatchNorm1d" in texts


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("depth", [2, 3])
def test_shallow_sigmoid_networks_do_not_vanish(depth, seed):
    X, y, C = dataset("blobs", seed)
    model = mlp(X.shape[1], [16] * depth, C, "Sigmoid", seed=seed)
    history = train(model, X, y, optimizer("adam", model, 0.01), epochs=4, seed=seed)
    assert "vanishing_gradients" not in kinds(history)


# --------------------------------------------------------------------------- dead ReLU

DEAD = list(itertools.product(["circle", "blobs"], [[32, 32], [64, 32, 16]], ["sgd", "adam"]))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("data,widths,opt", DEAD)
def test_relu_network_killed_by_a_high_learning_rate(data, widths, opt, seed):
    X, y, C = dataset(data, seed)
    model = mlp(X.shape[1], widths, C, "ReLU", seed=seed)
    lr = {"sgd": 3.0, "adam": 1.0}[opt]
    history = train(model, X, y, optimizer(opt, model, lr), epochs=4, seed=seed)
    dead = [f for f in serious(history) if f.kind == "dead_relu"]
    relus = paths_of(model, "ReLU")
    assert len(dead) == 1, [f.headline() for f in history.findings]  # one finding, every layer
    f = dead[0]
    assert set(f.locations) <= set(relus)
    assert f.evidence["dead_fraction"] >= 0.3
    assert f.evidence["dead_units"] == round(f.evidence["dead_fraction"] * f.evidence["units"])
    assert set(f.evidence["by_layer"]) >= set(f.locations)
    assert f.step is not None and f.epoch is not None
    lower = [a for a in f.actions if a["action"] == "scale_lr"]
    assert lower and lower[0]["lr"][0] <= lr / 10  # sized from the run: at least ten-fold
    assert any(r.startswith(f"lower the learning rate from {lr:g} to") for r in f.remedies)
    # the remedy names every affected layer, so that following it literally fixes them all
    assert any(f"replace ReLU at {f.where} with LeakyReLU" in r for r in f.remedies)


# --------------------------------------------------------------------------- exploding / NaN

EXPLODING = list(
    itertools.product(["plane", "multi_gaussian"], [([16, 16], "ReLU"), ([32], "Tanh")])
)


@pytest.mark.parametrize("seed", (0, 1))
@pytest.mark.parametrize("data,arch", EXPLODING)
def test_learning_rate_far_too_high_explodes_then_nan(data, arch, seed):
    widths, act = arch
    X, y = regression(data, seed)
    model = mlp(2, widths, 1, act, seed=seed)
    history = fit_regression(model, X, y, lr=3.0, seed=seed)
    found = kinds(history)
    assert "exploding_gradients" in found
    assert set(found["exploding_gradients"][0].split(", ")) <= set(linear_paths(model))
    assert "learning_rate_too_high" in found and found["learning_rate_too_high"] == ["optimizer"]
    nan = [f for f in history.findings if f.kind == "nan_trap"]
    assert len(nan) == 1 and nan[0].severity == "critical"
    ev = nan[0].evidence
    # the op that first made inf/NaN from finite inputs was found by the replay
    assert ev["anomaly"] is not None, ev["note"]
    assert ev["anomaly"]["op"] in nan[0].explanation
    module_names = set(linear_paths(model)) | {"MSELoss"} | set(paths_of(model, act))
    assert nan[0].where in module_names
    top = next(f for f in history.findings)  # most severe, root cause first
    assert top.severity == "critical"
    # the explosion's cause comes first, and the rate is lowered at least ten-fold
    assert top.kind in ("learning_rate_too_high", "exploding_gradients")
    assert nan[0].caused_by
    lower = [a for a in nan[0].actions if a["action"] == "scale_lr"]
    assert lower and lower[0]["lr"][0] <= 0.3


@pytest.mark.parametrize("seed", SEEDS)
def test_exploding_gradients_without_nan(seed):
    # lr 1 on a deeper ReLU regression: norms grow a hundredfold before (or without) NaN
    X, y = regression("plane", seed)
    model = mlp(2, [16, 16, 16], 1, "ReLU", seed=seed)
    history = fit_regression(model, X, y, lr=1.0, seed=seed)
    f = next(f for f in serious(history) if f.kind == "exploding_gradients")
    assert f.evidence["growth"] >= 100
    assert set(f.locations) <= set(linear_paths(model))
    # sized from the update ratio of the first steps, not a fixed ten-fold
    assert f.remedies[0].startswith("lower the learning rate from 1 to ")
    assert f.actions[0]["action"] == "scale_lr" and f.actions[0]["lr"][0] <= 0.1
    assert any(r.startswith("clip the gradient norm at") for r in f.remedies)


# --------------------------------------------------------------------------- NaN trap, named


class LogOfRelu(gw.nn.Module):
    """A custom layer with a bug: log of a ReLU output is -inf wherever the ReLU is 0."""

    def __init__(self, n, seed):
        super().__init__()
        self.inner = gw.nn.Linear(n, n, rng=seed)

    def forward(self, x):
        return gw.log(gw.relu(self.inner(x)))  # the buggy line


class SqrtOfSquare(gw.nn.Module):
    """sqrt(x**2) is finite forward, but its gradient is inf at 0."""

    def forward(self, x):
        return gw.sqrt(x * x)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_nan_trap_names_the_producing_op_its_module_and_the_user_code_line(opt, seed):
    X, y, C = dataset("blobs", seed)
    model = gw.nn.Sequential(
        gw.nn.Linear(X.shape[1], 16, rng=seed), LogOfRelu(16, seed), gw.nn.Linear(16, C, rng=seed)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        history = train(model, X, y, optimizer(opt, model, 0.01), epochs=1, seed=seed)
    f = next(f for f in history.findings if f.kind == "nan_trap")
    assert f.severity == "critical"
    assert f.where == "1"  # the path of the LogOfRelu module
    a = f.evidence["anomaly"]
    assert a["op"] == "log" and a["phase"] == "forward" and a["module"] == "1"
    assert a["input_ranges"][0][0] == 0.0  # log received exact zeros from the ReLU
    assert "the buggy line" in a["code"] and __file__ in a["code"]
    assert f.step == 0
    assert "the log at 1 received 0" in f.remedies[0]


@pytest.mark.parametrize("seed", (0, 1))
def test_nan_trap_in_backward_names_the_op_and_module(seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(64, 3)).astype(np.float32)
    X[:, 0] = 0.0  # sqrt(x*x) at exactly 0: inf gradient in backward, finite forward
    y = rng.integers(0, 2, size=64)
    model = gw.nn.Sequential(SqrtOfSquare(), gw.nn.Linear(3, 2, rng=seed))
    X_t = gw.tensor(X)
    model_in = gw.nn.Sequential(gw.nn.Linear(3, 3, rng=seed), SqrtOfSquare(),
                                gw.nn.Linear(3, 2, rng=seed))  # fmt: skip
    with gw.no_grad():
        model_in[0].weight.data[...] = np.eye(3, dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        history = train(model_in, X, y, optimizer("sgd", model_in, 0.1), epochs=1, seed=seed)
    del model, X_t
    f = next(f for f in history.findings if f.kind == "nan_trap")
    a = f.evidence["anomaly"]
    assert a["phase"] == "backward" and a["op"] in ("sqrt", "div")
    assert f.where == "1"
    assert f.evidence["source"] == "gradient"


# --------------------------------------------------------------------------- unscaled features


def _raw(name):
    ds = getattr(gw.data.datasets, f"load_{name}")()
    return ds.X.astype(np.float32), ds.y.astype(np.int64), list(ds.feature_names)


@pytest.mark.parametrize(
    "name,expected", [("wine", {"proline", "magnesium"}), ("breast_cancer", {"worst area"})]
)
@pytest.mark.parametrize("act", ["ReLU", "Tanh"])
def test_unscaled_real_data_is_flagged_with_column_names(name, expected, act):
    X, y, names = _raw(name)
    model = mlp(X.shape[1], [16], int(y.max()) + 1, act, seed=0)
    doctor = gw.doctor.Doctor(verbose=False, feature_names=names, raise_errors=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        history = train(model, X, y, optimizer("sgd", model, 0.01), epochs=2, doctor=doctor)
    f = next(f for f in serious(history) if f.kind == "unscaled_features")
    assert expected <= set(f.locations)
    assert f.locations[0] == max(names, key=lambda n: np.abs(X[:, names.index(n)]).max())
    assert "column " + f.locations[0] in f.remedies[0]
    assert f.step is None  # a property of the setup, found before the first step
    # a short summary, the per-column details under one key
    assert set(f.evidence) == {"summary", "worst", "columns_flagged", "rows_audited",
                               "columns_audited", "columns"}  # fmt: skip
    assert f.evidence["worst"] == f.locations[0] and f.locations[0] in f.evidence["summary"]
    col = f.evidence["columns"][f.locations[0]]
    j = names.index(f.locations[0])
    assert col["max"] == pytest.approx(float(X[:, j].max()))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("factor", [50.0, 1e4])
def test_one_column_far_off_scale_is_named(factor, seed):
    X, y, C = dataset("blobs", seed)
    X = X.copy()
    X[:, 2] *= factor
    model = mlp(X.shape[1], [16], C, seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        history = train(model, X, y, optimizer("adam", model, 0.001), epochs=1, seed=seed)
    f = next(f for f in serious(history) if f.kind == "unscaled_features")
    assert f.locations == ["x2"]


@pytest.mark.parametrize("data", ["digits", "breast_cancer"])
def test_z_scored_data_with_outliers_is_only_an_info(data):
    X, y, C = dataset(data, 0)  # z-scored: the bulk is within [-3, 3], a few values beyond 10
    assert np.abs(X).max() > 10
    model = mlp(X.shape[1], [16], C, seed=0)
    history = train(model, X, y, optimizer("adam", model, 0.003), epochs=1)
    found = [f for f in history.findings if f.kind == "unscaled_features"]
    assert [f.severity for f in found] == ["info"]


@pytest.mark.parametrize("seed", (0, 1))
@pytest.mark.parametrize(
    "data,act", list(itertools.product(["blobs", "wine"], ["Sigmoid", "Tanh"]))
)
def test_unscaled_inputs_saturate_the_first_sigmoid_or_tanh_layer(data, act, seed):
    if data == "wine":
        X, y, _ = _raw("wine")
        X = (X - X.mean(0)) / X.std(0) * 60
        C = 3
    else:
        X, y, C = dataset(data, seed)
        X = X * 60
    model = mlp(X.shape[1], [32, 32], C, act, seed=seed)
    history = train(model, X, y, optimizer("adam", model, 0.01), epochs=4, seed=seed)
    sat = [f for f in serious(history) if f.kind == "saturated_activations"]
    first_act = paths_of(model, act)[0]
    assert [f.where for f in sat] == [first_act]
    assert sat[0].evidence["saturated_output_fraction"] >= 0.7
    # the root cause comes first: scaling the inputs is the first remedy
    assert sat[0].remedies[0].startswith("scale the input features first")
    assert "unscaled_features" in kinds(history)


# --------------------------------------------------------------------------- dropout


@pytest.mark.parametrize("seed", (0, 1))
@pytest.mark.parametrize("widths,bn,opt", [([32, 32], False, "sgd"), ([16], True, "adam")])
def test_dropout_rate_one_is_critical_at_each_dropout(widths, bn, opt, seed):
    X, y, C = dataset("circle", seed)
    model = mlp(X.shape[1], widths, C, "ReLU", seed=seed, dropout=1.0, batchnorm=bn)
    history = train(model, X, y, optimizer(opt, model, 0.05), epochs=3, seed=seed)
    drops = paths_of(model, "Dropout")
    found = [f for f in serious(history) if f.kind == "dropout_misconfigured"]
    assert len(found) == 1 and found[0].locations == drops  # one finding for every Dropout
    assert found[0].severity == "critical"
    assert found[0].remedies[0] == f"set the Dropout rate at {', '.join(drops)} from 1 to 0"
    assert history.findings[0] is not None and history.findings[0].kind == "dropout_misconfigured"
    # the units after a Dropout(1.0) are silent because of it: not reported as a problem
    assert "dead_relu" not in kinds(history)
    assert "learning_rate_too_low" not in kinds(history)


def test_dropout_active_during_evaluation_is_flagged():
    X, y, C = dataset("blobs", 0)
    model = mlp(X.shape[1], [16], C, dropout=0.5)
    opt = gw.optim.Adam(model.parameters(), lr=0.01)
    doctor = gw.doctor.Doctor(model, opt, verbose=False, raise_errors=True)
    loss_fn = gw.nn.CrossEntropyLoss()
    for xb, yb in gw.data.DataLoader((X, y), batch_size=64):
        opt.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        doctor.step(loss, xb, yb)
        opt.step()
    with gw.no_grad():  # evaluation, but model.eval() was forgotten
        model(gw.tensor(X[:64]))
    findings = doctor.finish()
    f = next(f for f in findings if f.kind == "dropout_misconfigured")
    assert f.where == paths_of(model, "Dropout")[0] and f.severity == "warning"
    assert "model.eval()" in f.remedies[0]


# --------------------------------------------------------------------------- learning rate too low


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    "data,opt,lr", [("circle", "adam", 1e-6), ("circle", "sgd", 1e-5), ("blobs", "momentum", 1e-6)]
)
def test_learning_rate_far_too_low(data, opt, lr, seed):
    X, y, C = dataset(data, seed)
    model = mlp(X.shape[1], [16, 16], C, seed=seed)
    history = train(model, X, y, optimizer(opt, model, lr), epochs=4, seed=seed)
    f = next(f for f in serious(history) if f.kind == "learning_rate_too_low")
    assert f.where == "optimizer"
    assert f.evidence["median_update_ratio"] < 1e-4
    assert f.remedies[0].startswith(f"raise the learning rate from {lr:g} to")


# --------------------------------------------------------------------------- overfitting


@pytest.mark.parametrize("seed", (0, 1))
@pytest.mark.parametrize("data", ["blobs", "spiral"])
def test_overfitting_small_noisy_training_set(data, seed):
    X, y, C = dataset(data, seed, n=600)
    rng = np.random.default_rng(seed)
    Xt, yt = X[:60], y[:60].copy()
    flip = rng.random(60) < 0.25  # label noise to memorise
    yt[flip] = rng.integers(0, C, flip.sum())
    model = mlp(X.shape[1], [128, 128], C, seed=seed)
    history = train(model, Xt, yt, optimizer("adam", model, 0.01), epochs=60, batch_size=16,
                    seed=seed, validation=(X[300:], y[300:]))  # fmt: skip
    f = next(f for f in serious(history) if f.kind == "overfitting")
    assert f.where == "model"
    best = int(np.argmin(history["val_loss"]))
    assert f.evidence["best_epoch"] == best
    assert f.evidence["best_val_loss"] == pytest.approx(history["val_loss"][best])
    assert history["val_loss"][-1] > 1.1 * history["val_loss"][best]
    assert history["loss"][-1] < history["loss"][best]
    assert "EarlyStopping" in f.remedies[0] and f"epoch {best + 1}" in f.remedies[0]


@pytest.mark.parametrize("seed", SEEDS)
def test_noisy_validation_plateau_is_not_overfitting(seed):
    # validation loss that only wanders around its floor must not be called overfitting
    X, y = regression("plane", seed)
    model = mlp(2, [32, 32], 1, "ReLU", seed=seed)
    history = gw.fit(
        model, (X[:400], y[:400]), loss="mse", epochs=16, batch_size=32, seed=seed, verbose=0,
        optimizer=gw.optim.Adam(model.parameters(), lr=0.01), validation=(X[400:], y[400:]),
        doctor=gw.doctor.Doctor(verbose=False, raise_errors=True),
    )  # fmt: skip
    assert "overfitting" not in kinds(history)


@pytest.mark.parametrize("column", [0, 3])
def test_nan_in_the_data_is_blamed_on_the_data_not_an_op(column):
    X, y, C = dataset("blobs", 0)
    X = X.copy()
    X[100, column] = np.nan
    model = mlp(X.shape[1], [16], C, seed=0)
    names = [f"f{j}" for j in range(X.shape[1])]
    doctor = gw.doctor.Doctor(verbose=False, raise_errors=True, feature_names=names)
    history = train(model, X, y, optimizer("adam", model, 0.01), epochs=1, doctor=doctor)
    f = next(f for f in history.findings if f.kind == "nan_trap")
    assert f.where == names[column] and f.evidence["source"] == "inputs"
    loader = gw.data.DataLoader((X, y), batch_size=32, shuffle=True, seed=0)  # fit's batches
    first_bad = next(i for i, (xb, _) in enumerate(loader) if np.isnan(xb.numpy()).any())
    assert f.step == first_bad
    assert f.remedies[0].startswith(
        f"remove or impute the inf/NaN values of column {names[column]}"
    )
