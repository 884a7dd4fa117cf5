"""The doctor on convolutional networks, tested like a medical test: conv + ReLU runs killed
by a high learning rate and deep sigmoid CNNs, in several variants and seeds, are caught
with the right kind at the right modules; healthy CNNs stay silent; the top remedy repairs
the run. A unit after a convolution is a channel: dead when it is 0 at every position of
every example."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from doctor.kit import cnn, images, kinds, optimizer, serious, train

import gradwell as gw
from gradwell.doctor import Doctor, repair
from gradwell.doctor.probes import probe_setup
from gradwell.doctor.thresholds import Thresholds
from gradwell.doctor.trace import ActivationStats

TH = Thresholds()


@pytest.fixture(autouse=True, scope="module")
def one_blas_thread():
    """The conv GEMMs are small: on a loaded machine BLAS threads only contend (a run took
    15x longer with them). Numbers do not change, only the time."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with threadpoolctl.threadpool_limits(1):
        yield


def paths_of(model, cls):
    return [p for p, m in model.named_modules() if type(m).__name__ == cls]


# --------------------------------------------------------------------------- measuring


def test_a_channel_is_dead_only_when_zero_at_every_position_of_every_example():
    stats = ActivationStats("1", "relu", 0, per_channel=True)
    out = np.zeros((16, 3, 4, 4), np.float32)
    out[:, 0] = 1.0  # channel 0 always on
    out[5, 1, 3, 2] = 0.5  # channel 1 on at one position of one example; channel 2 never
    stats.observe(0, out, TH.sigmoid_margin, TH.tanh_limit)
    assert stats.units == 3
    assert stats.active_fraction[0] == pytest.approx(np.count_nonzero(out) / out.size)
    assert stats.silent_fraction[0] == pytest.approx(1 / 3)
    w = stats.close_window(0, 0, TH.pinned_unit)
    assert w["dead_unit_indices"] == [2] and w["per_channel"] and w["examples"] == 16
    # the same outputs read position by position: 47 of the 48 (channel, position) units die
    flat = ActivationStats("1", "relu", 0)
    flat.observe(0, out, TH.sigmoid_margin, TH.tanh_limit)
    assert flat.units == 48 and flat.close_window(0, 0, TH.pinned_unit)["dead_units"] == 31


def test_a_channel_is_pinned_when_nearly_all_its_outputs_saturate():
    stats = ActivationStats("1", "sigmoid", 0, per_channel=True)
    rng = np.random.default_rng(0)
    out = rng.uniform(0.2, 0.8, size=(32, 4, 3, 3)).astype(np.float32)
    out[:, 0] = 0.999  # pinned everywhere
    out[:, 1, 0, 0] = 0.999  # saturated at one position of nine: not pinned
    stats.observe(0, out, TH.sigmoid_margin, TH.tanh_limit)
    w = stats.close_window(0, 0, TH.pinned_unit)
    assert w["pinned_units"] == 1 and w["pinned_fraction"] == pytest.approx(0.25)
    assert w["saturated_fraction"] == pytest.approx((9 + 1) / 36)


def test_activation_and_batchnorm2d_statistics_of_a_conv_net_per_channel():
    X, y, C = images("bars", 0, n=128)
    model = cnn(X.shape[1], C, depth=1, batchnorm=True)
    assert paths_of(model, "BatchNorm2d") == ["1"] and paths_of(model, "ReLU") == ["2"]
    opt = gw.optim.Adam(model.parameters(), lr=0.01)
    doctor = Doctor(model, opt, sample_every=1, verbose=False, raise_errors=True)
    seen = []
    model[2].register_forward_hook(lambda m, i, out: seen.append(out.numpy().copy()))
    loss_fn = gw.nn.CrossEntropyLoss()
    for xb, yb in gw.data.DataLoader((X, y), batch_size=32):
        opt.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        doctor.step(loss, xb, yb)
        opt.step()
    doctor.finish()
    relu = doctor.trace.activations["2"]
    assert relu.per_channel and relu.units == 8  # channels, not 8 x 64 positions
    for i, out in enumerate(seen):
        on = (out > 0).any(axis=(0, 2, 3))
        assert relu.active_fraction[i] == pytest.approx(float((out > 0).mean()))
        assert relu.silent_fraction[i] == pytest.approx(1 - float(on.mean()))
    bn = doctor.trace.batchnorm["1"]
    rm, rv = (b.numpy().astype(np.float64) for b in (model[1].running_mean, model[1].running_var))
    assert rm.shape == (8,)  # one running mean and variance per channel
    assert bn["rms_running_mean"][-1] == pytest.approx(float(np.sqrt(np.mean(rm**2))))
    assert bn["mean_running_var"][-1] == pytest.approx(float(rv.mean()))
    assert bn["min_running_var"][-1] == pytest.approx(float(rv.min()))
    report = doctor.report()
    assert "BatchNorm running statistics" in report and f"{float(rv.min()):.3g}" in report


def test_the_preflight_check_counts_dead_channels():
    X, y, C = images("digits", 0, n=64)
    model = cnn(1, C)
    with gw.no_grad():
        model[0].bias.data[:4] = -100.0  # four of the eight channels can never fire
    probe = probe_setup(model, gw.nn.CrossEntropyLoss(), X, y, TH)
    assert probe["rows"] == 64
    with gw.no_grad():
        on = (model[0](gw.tensor(X)).numpy() > 0).any(axis=(0, 2, 3))  # per channel
    assert not on[:4].any() and probe["dead"]["1"] == pytest.approx(1 - on.mean())


# --------------------------------------------------------------------------- sick


def seeded(variants):
    """Each variant with a seed of its own (0, 1, 2 in turn): every seed meets several
    variants, and the suite stays short."""
    return [(*v, i % 3) for i, v in enumerate(variants)]


DEAD = seeded(itertools.product(["digits", "bars"], ["sgd", "adam"], [False, True]))


@pytest.mark.parametrize("data,opt,pool,seed", DEAD)
def test_conv_relu_channels_killed_by_a_high_learning_rate(data, opt, pool, seed):
    X, y, C = images(data, seed)
    model = cnn(X.shape[1], C, seed=seed, pool=pool)
    lr = {"sgd": 3.0, "adam": 1.0}[opt]
    history = train(model, X, y, optimizer(opt, model, lr), epochs=4, seed=seed)
    dead = [f for f in serious(history) if f.kind == "dead_relu"]
    assert len(dead) == 1, [f.headline() for f in history.findings]
    f = dead[0]
    assert set(f.locations) <= set(paths_of(model, "ReLU"))
    assert f.evidence["per_channel"] and f.evidence["units"] == 8  # channels
    assert f.evidence["dead_fraction"] >= 0.3
    assert "channels" in f.explanation and "at every position" in f.explanation
    lower = [a for a in f.actions if a["action"] == "scale_lr"]
    assert lower and lower[0]["lr"][0] <= lr / 10
    texts = " ".join(f.remedies)
    assert "add BatchNorm2d after" in texts and "BatchNorm1d" not in texts  # conv layers: 2d


VANISHING = seeded(itertools.product(["digits", "bars"], [6, 8], ["sgd", "adam"]))


@pytest.mark.parametrize("data,depth,opt,seed", VANISHING)
def test_deep_sigmoid_cnn_has_vanishing_gradients_at_the_first_convolutions(data, depth, opt, seed):
    X, y, C = images(data, seed)
    model = cnn(X.shape[1], C, "Sigmoid", depth=depth, seed=seed)
    lr = {"sgd": 0.5, "adam": 0.01}[opt]
    history = train(model, X, y, optimizer(opt, model, lr), epochs=3, seed=seed)
    found = [f for f in serious(history) if f.kind == "vanishing_gradients"]
    assert len(found) == 1, [f.headline() for f in history.findings]
    f = found[0]
    convs = paths_of(model, "Conv2d")
    assert convs[0] in f.locations  # the convolution next to the input is starved
    assert set(f.locations) <= set(convs[:-1])  # never the last conv or the classifier
    assert f.evidence["ratio_to_strongest_later_layer"][convs[0]] < 0.01
    # every sigmoid of the stack is replaced: the change that treats the whole stack
    sigmoids = ", ".join(paths_of(model, "Sigmoid"))
    top = serious(history)[0]
    assert top.actions[0]["action"] == "replace_activation"
    assert f"replace Sigmoid at {sigmoids} with ReLU" in top.remedies[0]
    assert "BatchNorm2d after" in " ".join(f.remedies)


@pytest.mark.parametrize("data,seed", [("digits", 0), ("digits", 2), ("bars", 0), ("bars", 1)])
def test_a_cnn_regression_at_a_far_too_high_rate_explodes_through_its_convolutions(data, seed):
    X, _, _ = images(data, seed)
    y = X.reshape(len(X), -1).mean(axis=1, keepdims=True) * 4  # the image's brightness
    model = cnn(X.shape[1], 1, depth=3, seed=seed, pool=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the overflow is the point
        history = gw.fit(model, (X, y), loss="mse", optimizer=gw.optim.SGD(model.parameters(),
                         lr=1.0), epochs=4, seed=seed, verbose=0,
                         doctor=Doctor(verbose=False, raise_errors=True))  # fmt: skip
    f = next(f for f in serious(history) if f.kind == "exploding_gradients")
    layers = paths_of(model, "Conv2d") + paths_of(model, "Linear")
    assert set(f.locations) <= set(layers) and f.evidence["growth"] >= 100
    top = serious(history)[0]
    assert top.kind == "learning_rate_too_high" and top.actions[0]["action"] == "scale_lr"


@pytest.mark.parametrize("seed", (0, 1))
def test_shallow_relu_and_tanh_cnns_do_not_vanish(seed):
    X, y, C = images("bars", seed)
    for act in ("ReLU", "Tanh"):
        model = cnn(X.shape[1], C, act, depth=3, seed=seed, pool=True)
        history = train(model, X, y, optimizer("adam", model, 0.003), epochs=3, seed=seed)
        assert "vanishing_gradients" not in kinds(history)


# --------------------------------------------------------------------------- healthy

HEALTHY = seeded(
    (data, *arch)
    for arch in [
        # act, optimizer, lr, batchnorm, pool, depth
        ("ReLU", "adam", 0.003, False, False, 2),
        ("ReLU", "sgd", 0.05, True, True, 2),
        ("Tanh", "adam", 0.003, False, True, 2),
        ("ReLU", "momentum", 0.02, False, True, 3),
        ("ReLU", "adam", 0.003, True, False, 4),
    ]
    for data in ("digits", "bars")
)


@pytest.mark.parametrize("data,act,opt,lr,bn,pool,depth,seed", HEALTHY, ids=str)
def test_healthy_cnns_raise_no_warning(data, act, opt, lr, bn, pool, depth, seed):
    X, y, C = images(data, seed)
    model = cnn(X.shape[1], C, act, depth=depth, seed=seed, batchnorm=bn, pool=pool)
    history = train(model, X, y, optimizer(opt, model, lr), epochs=6, seed=seed)
    assert serious(history) == [], [f.headline() for f in serious(history)]
    assert history["loss"][-1] < 0.6 * history["loss"][0]  # and it did learn


# --------------------------------------------------------------------------- repair


def _repair(data, seed, config):
    X, y, C = images(data, seed, n=640)

    def build(cfg):
        model = cnn(X.shape[1], C, cfg["act"], depth=cfg["depth"], seed=seed, pool=cfg["pool"])
        return model, optimizer(cfg["opt"], model, cfg["lr"])

    def fit(model, opt, cfg):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return gw.fit(model, (X[:512], y[:512]), loss="cross_entropy", optimizer=opt,
                          epochs=4, validation=(X[512:], y[512:]), metrics=["accuracy"],
                          batch_size=32, seed=seed, verbose=0,
                          doctor=Doctor(verbose=False))  # fmt: skip

    return repair(build, fit, config, rounds=1, print_fn=None)


@pytest.mark.parametrize("data,seed", [("digits", 0), ("bars", 1)])
def test_the_top_remedy_repairs_a_deep_sigmoid_cnn(data, seed):
    config = {"act": "Sigmoid", "depth": 6, "pool": False, "opt": "adam", "lr": 0.01}
    result = _repair(data, seed, config)
    assert result.first.findings and result.rounds[0].action["action"] == "replace_activation"
    assert result.rounds[0].action["modules"] == ["1", "3", "5", "7", "9", "11"]
    assert result.outcome == "healthy" and result.final.score > result.first.score + 0.4


@pytest.mark.parametrize("data,seed", [("digits", 0), ("bars", 1)])
def test_the_top_remedy_repairs_a_cnn_whose_channels_died(data, seed):
    config = {"act": "ReLU", "depth": 2, "pool": True, "opt": "sgd", "lr": 3.0}
    result = _repair(data, seed, config)
    assert result.first.findings[0].kind == "dead_relu"
    assert result.rounds[0].action["action"] == "scale_lr"
    assert result.outcome == "healthy" and result.final.score > result.first.score


def test_add_batchnorm_puts_batchnorm2d_after_a_conv_and_1d_after_a_linear():
    model = cnn(1, 10)
    opt = gw.optim.SGD(model.parameters(), lr=0.1)
    model, opt = gw.doctor.apply_edits(model, opt, [{"action": "add_batchnorm",
                                                      "after": ["0", "5"]}])  # fmt: skip
    assert type(model[0][1]).__name__ == "BatchNorm2d" and model[0][1].num_features == 8
    assert type(model[5][1]).__name__ == "BatchNorm1d" and model[5][1].num_features == 10
    assert model(gw.tensor(images("digits", 0, n=4)[0])).shape == (4, 10)
    assert len(opt.param_groups[0]["params"]) == len(list(model.parameters()))
