"""The batch-norm train/eval gap, tested like a medical test: running statistics that miss the
activations (a momentum far too low for the run, dropout feeding the layer) are caught in
several seeds, with the layer and the numbers; healthy BatchNorm1d MLPs and BatchNorm2d CNNs
stay silent; and the top remedy closes the gap when the run is retrained."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from doctor.kit import dataset, images

import gradwell as gw
from gradwell.doctor.detectors_batchnorm import detect_batchnorm_statistics
from gradwell.doctor.profile import ModelProfile
from gradwell.doctor.thresholds import Thresholds
from gradwell.doctor.trace import Trace

nn = gw.nn
SEEDS = (0, 1, 2)
KIND = "batchnorm_statistics_mismatch"


def bn_mlp(n_in, n_out, seed, momentum=0.1, dropout=None):
    """Linear -> [Dropout] -> BatchNorm1d -> ReLU, twice, then a Linear."""
    layers, d = [], n_in
    for i, w in enumerate((32, 32)):
        layers.append(nn.Linear(d, w, init="kaiming", rng=seed * 100 + i))
        if dropout:
            layers.append(nn.Dropout(dropout, rng=seed * 100 + 50 + i))
        layers += [nn.BatchNorm1d(w, momentum=momentum), nn.ReLU()]
        d = w
    return nn.Sequential(*layers, nn.Linear(d, n_out, init="kaiming", rng=seed * 100 + 99))


def bn_cnn(c_in, n_out, seed, momentum=0.1, dropout=None):
    """Conv2d(3x3) -> [Dropout] -> BatchNorm2d -> ReLU (-> MaxPool2d after the first), twice,
    on 8x8 images, then Flatten and a Linear."""
    layers, c = [], c_in
    for i in range(2):
        layers.append(nn.Conv2d(c, 8, 3, padding=1, init="kaiming", rng=seed * 100 + i))
        if dropout:
            layers.append(nn.Dropout(dropout, rng=seed * 100 + 50 + i))
        layers += [nn.BatchNorm2d(8, momentum=momentum), nn.ReLU()]
        if i == 0:
            layers.append(nn.MaxPool2d(2))
        c = 8
    classifier = nn.Linear(8 * 16, n_out, init="kaiming", rng=seed * 100 + 99)
    return nn.Sequential(*layers, nn.Flatten(), classifier)


def fit(model, X, y, seed, epochs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return gw.fit(
            model, (X[:400], y[:400]), loss=nn.CrossEntropyLoss(), epochs=epochs, batch_size=32,
            optimizer=gw.optim.Adam(model.parameters(), lr=0.01), seed=seed, verbose=0,
            validation=(X[400:], y[400:]), metrics=["accuracy"],
            doctor=gw.doctor.Doctor(verbose=False, raise_errors=True),
        )  # fmt: skip


def data(name, seed):
    return images(name, seed) if name in ("digits", "bars") else dataset(name, seed)


def build(name, seed, **options):
    X, y, C = data(name, seed)
    make = bn_cnn if X.ndim == 4 else bn_mlp
    model = make(X.shape[1], C, seed, **options)
    return model, X, y


def bn_paths(model):
    return [p for p, m in model.named_modules() if type(m).__name__.startswith("BatchNorm")]


def finding(history):
    found = [f for f in history.findings if f.kind == KIND and f.rank >= 1]
    return found[0] if found else None


def given_back(history):
    """The share of what training gained that evaluation mode gives back, at the end."""
    t = history.doctor.trace
    eval_loss, batch_loss = t.batchnorm_loss["eval_loss"][-1], t.batchnorm_loss["batch_loss"][-1]
    return (eval_loss - batch_loss) / (t.setup["probe"]["loss"] - batch_loss)


# --------------------------------------------------------------------------- healthy

HEALTHY = [("circle", 5), ("blobs", 5), ("xor", 5), ("gaussians", 5), ("digits", 3), ("bars", 3)]


@pytest.mark.parametrize("seed", (0, 1))
@pytest.mark.parametrize("name,epochs", HEALTHY, ids=[h[0] for h in HEALTHY])
def test_healthy_batchnorm_runs_stay_silent(name, epochs, seed):
    model, X, y = build(name, seed)
    history = fit(model, X, y, seed, epochs)
    serious = [f.headline() for f in history.findings if f.rank >= 1]
    assert serious == []
    # the check ran (at the first epoch's end and at the end; between, on its time budget),
    # and found the running statistics close to the batch statistics
    t = history.doctor.trace
    ran = t.batchnorm_loss["step"]
    assert ran[0] == t.epochs[0]["end_step"] + 1 and ran[-1] == len(t.loss)
    assert given_back(history) < 0.1


# --------------------------------------------------------------------------- sick

SICK = [
    # data, options, epochs, expected cause (the top remedy's action)
    ("circle", {"momentum": 0.001}, 8, "set_batchnorm_momentum"),
    ("digits", {"momentum": 0.001}, 2, "set_batchnorm_momentum"),
    ("bars", {"momentum": 0.001}, 2, "set_batchnorm_momentum"),
    ("circle", {"dropout": 0.5}, 8, "remove_module"),
    ("digits", {"dropout": 0.5}, 2, "remove_module"),
]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    "name,options,epochs,action", SICK, ids=[f"{s[0]}-{next(iter(s[1]))}" for s in SICK]
)
def test_running_statistics_that_miss_the_activations_are_caught(name, options, epochs, action,
                                                                 seed):  # fmt: skip
    model, X, y = build(name, seed, **options)
    history = fit(model, X, y, seed, epochs)
    f = finding(history)
    assert f is not None, [g.headline() for g in history.findings]
    assert set(f.locations) <= set(bn_paths(model)) and f.locations
    ev = f.evidence
    assert ev["eval_loss"] > ev["batch_loss"] and ev["share_given_back"] >= 0.1
    assert f.actions[0]["action"] == action
    if action == "set_batchnorm_momentum":  # every layer whose running statistics lag
        assert f.actions[0]["momentum"] == 0.1 and set(f.actions[0]["modules"]) == set(f.locations)
        assert "0.001" in f.remedies[0] and "initial values" in f.remedies[0]
    else:  # the dropout feeding the layer whose running variance it inflated
        drops = [p for p, m in model.named_modules() if type(m).__name__ == "Dropout"]
        assert set(f.actions[0]["modules"]) <= set(drops)
        fed = bn_paths(model)[drops.index(f.actions[0]["modules"][-1])]
        assert fed in f.locations and ev["layers"][fed]["var_ratio"] >= 1.5
    assert f.locations[0] in f.explanation and "evaluation" in f.explanation


@pytest.mark.parametrize("seed", (0, 1))
@pytest.mark.parametrize("name,options,epochs", [("circle", {"momentum": 0.001}, 8),
                                                 ("digits", {"dropout": 0.5}, 2)])  # fmt: skip
def test_the_top_remedy_closes_the_gap(name, options, epochs, seed):
    model, X, y = build(name, seed, **options)
    before = fit(model, X, y, seed, epochs)
    action = finding(before).actions[0]
    model, X, y = build(name, seed, **options)
    model, _ = gw.doctor.apply_edits(model, gw.optim.Adam(model.parameters()), [action])
    after = fit(model, X, y, seed, epochs)
    assert finding(after) is None, [g.headline() for g in after.findings]
    assert given_back(after) < 0.1 <= given_back(before)
    assert after["val_accuracy"][-1] > before["val_accuracy"][-1]


def test_repair_applies_the_momentum_edit_and_the_run_is_healthy():
    def build_run(config):
        model, _, _ = build("circle", 0, momentum=config["momentum"])
        return model, gw.optim.Adam(model.parameters(), lr=0.01)

    def train_run(model, optimizer, config):
        X, y, _ = dataset("circle", 0)
        return fit(model, X, y, 0, 8)

    result = gw.doctor.repair(build_run, train_run, {"momentum": 0.001}, print_fn=None)
    assert result.outcome == "healthy"
    assert result.rounds[0].action["action"] == "set_batchnorm_momentum"
    assert result.final.score > result.first.score


# --------------------------------------------------------------------------- the rule itself


def trace_with(eval_loss, batch_loss, shift, ratio, momentum=0.1, batches=100):
    t = Trace()
    t.loss.extend([1.0] * batches)
    t.setup = {"probe": {"loss": 1.0}}
    t.batchnorm["1"] = {"step": [batches], "mean_shift": [shift], "var_ratio": [ratio],
                        "worst_var_ratio": [ratio], "momentum": [momentum],
                        "batches_tracked": [batches], "rms_running_mean": [0.0],
                        "mean_running_var": [1.0]}  # fmt: skip
    if eval_loss is not None:
        t.batchnorm_loss = {"step": [batches], "eval_loss": [eval_loss],
                            "batch_loss": [batch_loss], "rows": [128]}  # fmt: skip
    return t


PROFILE = ModelProfile(order=["0", "1", "2"], types={"0": "Linear", "1": "BatchNorm1d",
                       "2": "Linear"}, layers=["0", "2"], batchnorm=["1"])  # fmt: skip


@pytest.mark.parametrize(
    "eval_loss,shift,ratio,fires",
    [
        (0.5, 1.0, 1.0, True),  # gives back 44%, running mean 1 std off
        (0.5, 0.05, 2.0, True),  # the variance off by 2x
        (0.5, 0.05, 1.1, False),  # a loss gap the statistics do not explain
        (0.12, 1.0, 1.0, False),  # statistics off, evaluation gives back only 2%
        (None, 0.4, 1.0, False),  # no loss: a mild miss does not count...
        (None, 0.8, 1.0, True),  # ...a clear one does
    ],
)
def test_both_the_loss_gap_and_the_statistics_must_be_off(eval_loss, shift, ratio, fires):
    t = trace_with(eval_loss, 0.1, shift, ratio, momentum=0.001)
    f = detect_batchnorm_statistics(t, PROFILE, Thresholds())
    assert (f is not None) == fires
    if fires:
        assert f.where == "1" and f.rank >= 1
        assert not math.isnan(f.evidence["layers"]["1"]["mean_shift"])


def test_too_few_batches_for_an_ordinary_momentum_is_only_info_while_the_gap_is_small():
    # 13 batches at momentum 0.1: a quarter of the initial values left; it catches up
    young = detect_batchnorm_statistics(trace_with(0.3, 0.1, 0.5, 1.0, batches=13), PROFILE,
                                        Thresholds())  # fmt: skip
    assert young is not None and young.severity == "info"
    assert young.actions[0] == {"action": "set_batchnorm_momentum", "modules": ["1"],
                                "momentum": None}  # fmt: skip
    # the same miss with a gap that undoes most of the training is serious
    big = detect_batchnorm_statistics(trace_with(0.9, 0.1, 0.5, 1.0, batches=13), PROFILE,
                                      Thresholds())  # fmt: skip
    assert big is not None and big.severity == "critical"


def test_the_check_changes_nothing_in_the_model():
    model, X, y = build("circle", 0)
    history = fit(model, X, y, 0, 2)
    state = {k: np.array(v.data, copy=True) for k, v in model.state_dict().items()}
    modes = [m.training for m in model.modules()]
    calls = []
    model[2].register_forward_hook(lambda m, i, out: calls.append(1))  # a user's hook
    assert history.doctor._probes.check_batchnorm(len(history.steps["loss"]))  # it measured
    assert calls == []  # no hook sees the check
    assert all(np.array_equal(state[k], v.data) for k, v in model.state_dict().items())
    assert [m.training for m in model.modules()] == modes
