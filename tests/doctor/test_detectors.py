"""Each detector on hand-made statistics: the rule, its threshold and its evidence."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gradwell.doctor import Thresholds, Trace
from gradwell.doctor.detectors import (
    detect_dead_relu,
    detect_dropout,
    detect_exploding,
    detect_learning_rate,
    detect_nan,
    detect_oscillating,
    detect_overfitting,
    detect_saturation,
    detect_unscaled,
    detect_vanishing,
)
from gradwell.doctor.diagnosis import diagnose, relate
from gradwell.doctor.findings import Finding
from gradwell.doctor.profile import ModelProfile
from gradwell.doctor.trace import ActivationStats
from gradwell.preprocessing import audit

TH = Thresholds()


def stack_profile(depth: int, act: str = "Sigmoid", lr: float = 0.5) -> ModelProfile:
    """Linear, act, Linear, act, ..., Linear with Sequential-style paths "0", "1", ..."""
    order, types, layers, acts = [], {}, [], {}
    for i in range(depth):
        lin, a = str(2 * i), str(2 * i + 1)
        order += [lin, a]
        types[lin], types[a] = "Linear", act
        layers.append(lin)
        acts[a] = {"Sigmoid": "sigmoid", "Tanh": "tanh", "ReLU": "relu"}[act]
    out = str(2 * depth)
    order.append(out)
    types[out] = "Linear"
    layers.append(out)
    param_module = {f"{p}.{n}": p for p in layers for n in ("weight", "bias")}
    return ModelProfile(order=order, types=types, layers=layers, activations=acts,
                        param_module=param_module, lrs=[lr], optimizer="SGD")  # fmt: skip


def trace_with_signal(prof: ModelProfile, per_layer: np.ndarray, steps: int = 10) -> Trace:
    """Every sample records ``per_layer`` (one RMS per layer, input side first)."""
    tr = Trace(epoch_starts=[0])
    for s in range(steps):
        tr.add_sample(s, {}, dict(zip(prof.layers, map(float, per_layer))))
    tr.loss = [1.0] * steps
    return tr


# --------------------------------------------------------------------------- vanishing


def test_vanishing_names_the_layers_below_one_percent_of_a_later_layer():
    prof = stack_profile(6)
    # a sigmoid stack: each layer gets a quarter of the next one's gradient
    signal = 0.25 ** np.arange(6, -1, -1)  # layers 0..6 (6 is the output layer)
    f = detect_vanishing(trace_with_signal(prof, signal), prof, TH)
    assert f is not None and f.kind == "vanishing_gradients" and f.severity == "warning"
    hidden = prof.layers[:-1]
    # ratio of layer i to the strongest later hidden layer (the last hidden, index 5)
    expected = {p: 0.25 ** (5 - i) for i, p in enumerate(hidden[:-1]) if 0.25 ** (5 - i) < 0.01}
    assert f.locations == list(expected)  # layers 0, 2 (hidden 0 and 1): 1/1024 and 1/256
    for p, r in expected.items():
        assert f.evidence["ratio_to_strongest_later_layer"][p] == pytest.approx(r)
    assert f.step == 0
    assert f.remedies[0].startswith("replace Sigmoid at 1, 3, 5, 7, 9, 11 with ReLU")
    # the Linear layers that feed them are re-initialised for ReLU (He)
    assert f.remedies[0].startswith("replace Sigmoid at 1, 3, 5, 7, 9, 11 with ReLU and use He")
    assert f.actions[0] == {"action": "replace_activation", "modules": list(prof.activations),
                            "from": "Sigmoid", "to": "ReLU", "init": "he",
                            "layers": prof.layers[:-1]}  # fmt: skip
    assert any(r.startswith("add BatchNorm1d after 0, 2, 4, 6, 8, 10") for r in f.remedies)


def test_vanishing_is_critical_below_five_decades():
    prof = stack_profile(4)
    signal = np.array([1e-7, 1e-4, 1e-2, 1.0, 1.0])
    f = detect_vanishing(trace_with_signal(prof, signal), prof, TH)
    assert f.severity == "critical" and f.locations == ["0", "2"]


@pytest.mark.parametrize(
    "signal",
    [
        np.ones(5),  # flat: ReLU with He initialisation
        np.array([0.05, 0.1, 0.2, 0.5, 1.0]),  # shrinks, but not by two decades
        np.array([0.0, 0.0, 1.0, 1.0, 1.0]),  # exactly zero: blocked (dead units), not vanishing
    ],
)
def test_vanishing_does_not_fire_on_healthy_or_blocked_profiles(signal):
    prof = stack_profile(4)
    assert detect_vanishing(trace_with_signal(prof, signal), prof, TH) is None


def test_vanishing_needs_persistence_and_enough_samples():
    prof = stack_profile(4)
    starved = np.array([1e-4, 1e-2, 1.0, 1.0, 1.0])
    healthy = np.ones(5)
    tr = Trace(epoch_starts=[0])
    for s in range(10):  # starved in only half of the samples: not persistent
        tr.add_sample(s, {}, dict(zip(prof.layers, starved if s % 2 else healthy)))
    assert detect_vanishing(tr, prof, TH) is None
    few = trace_with_signal(prof, starved, steps=TH.min_samples - 1)
    assert detect_vanishing(few, prof, TH) is None
    assert detect_vanishing(trace_with_signal(prof, starved, TH.min_samples), prof, TH)


def test_vanishing_needs_two_hidden_layers():
    prof = stack_profile(1)
    assert detect_vanishing(trace_with_signal(prof, np.array([1e-9, 1.0])), prof, TH) is None


# --------------------------------------------------------------------------- exploding


def trace_with_norms(prof: ModelProfile, per_step: list[dict[str, float]]) -> Trace:
    tr = Trace(epoch_starts=[0])
    for s, norms in enumerate(per_step):
        tr.add_sample(s, norms, {})
    tr.loss = [1.0] * len(per_step)
    return tr


def test_exploding_measures_growth_from_the_first_sample_and_names_the_layer():
    prof = stack_profile(2, "ReLU")
    steps = [{"0.weight": 1.0, "2.weight": 1.0, "4.weight": 1.0}]
    steps += [{"0.weight": 1.0, "2.weight": 300.0 * k, "4.weight": 2.0} for k in (1, 2, 3)]
    f = detect_exploding(trace_with_norms(prof, steps), prof, TH)
    assert f is not None and f.locations == ["2"]
    total0 = math.sqrt(3.0)
    assert f.evidence["initial_grad_norm"] == pytest.approx(total0)
    peak = math.sqrt(1 + 900**2 + 4)
    assert f.evidence["peak_grad_norm"] == pytest.approx(peak)
    assert f.evidence["growth"] == pytest.approx(peak / total0)
    assert f.evidence["growth_by_layer"]["2"] == pytest.approx(900.0)
    assert f.step == 1 and f.severity == "warning"
    assert f.remedies[0] == "lower the learning rate from 0.5 to 0.05"
    assert f.remedies[1].startswith("clip the gradient norm at 2 ")  # nice(1.73) = 2


def test_exploding_ignores_one_spike_and_modest_growth():
    prof = stack_profile(2, "ReLU")
    spike = [{"0.weight": 1.0}, {"0.weight": 500.0}, {"0.weight": 1.0}, {"0.weight": 1.2}]
    assert detect_exploding(trace_with_norms(prof, spike), prof, TH) is None
    modest = [{"0.weight": 1.0}] + [{"0.weight": 30.0}] * 5
    assert detect_exploding(trace_with_norms(prof, modest), prof, TH) is None


def test_exploding_growth_then_nan_counts_and_overflow_is_critical():
    prof = stack_profile(2, "ReLU")
    then_nan = [{"0.weight": 1.0}, {"0.weight": 200.0}, {"0.weight": math.nan}]
    assert detect_exploding(trace_with_norms(prof, then_nan), prof, TH).severity == "warning"
    overflow = [{"0.weight": 1.0}, {"0.weight": 50.0}, {"0.weight": math.inf}]
    assert detect_exploding(trace_with_norms(prof, overflow), prof, TH).severity == "critical"


# --------------------------------------------------------------------------- activations


def relu_stats(outputs: list[np.ndarray], first_step: int = 0) -> ActivationStats:
    a = ActivationStats("1", "relu", 0)
    for i, out in enumerate(outputs):
        a.observe(first_step + i, out, TH.sigmoid_margin, TH.tanh_limit)
    a.close_window(first_step + len(outputs) - 1, 0, TH.pinned_unit)
    return a


def test_dead_units_are_those_never_positive_for_any_example_of_the_window():
    rng = np.random.default_rng(0)
    batches = []
    for _ in range(10):  # 10 x 32 = 320 examples
        b = np.abs(rng.normal(size=(32, 10))).astype(np.float32)
        b[:, :4] = 0.0  # units 0-3: never positive
        batches.append(b)
    batches[7][5, 3] = 0.5  # unit 3 fires for one example: alive
    stats = relu_stats(batches)
    w = stats.windows[-1]
    assert w["dead_unit_indices"] == [0, 1, 2]
    assert w["dead_fraction"] == pytest.approx(0.3)
    assert w["examples"] == 320
    assert stats.silent_fraction[0] == pytest.approx(0.4)  # 4 of 10 silent on batch 0
    tr = Trace(activations={"1": stats}, epoch_starts=[0])
    prof = stack_profile(1, "ReLU")
    (f,) = detect_dead_relu(tr, prof, TH)
    assert f.where == "1" and f.evidence["dead_units"] == 3
    assert f.severity == "info"  # dead since initialisation: 30% is under the 50% warning
    assert f.evidence["dead_from_start"] == 3


def test_units_killed_during_training_warn_and_say_when():
    rng = np.random.default_rng(1)
    stats = ActivationStats("1", "relu", 0)
    for s in range(12):
        b = np.abs(rng.normal(size=(32, 10))).astype(np.float32)
        if s >= 4:
            b[:, :5] = 0.0  # half the units die at step 4
        stats.observe(s, b, TH.sigmoid_margin, TH.tanh_limit)
        if s == 3:
            stats.close_window(3, 0, TH.pinned_unit)  # steps 0-3: all alive
    stats.close_window(11, 0, TH.pinned_unit)  # steps 4-11: 256 examples
    assert stats.windows[0]["dead_units"] == 0
    w = stats.windows[-1]
    assert w["dead_unit_indices"] == [0, 1, 2, 3, 4] and w["died_at_step"] == 4
    assert w["never_alive"] == 0
    prof = stack_profile(1, "ReLU")
    (f,) = detect_dead_relu(Trace(activations={"1": stats}, epoch_starts=[0]), prof, TH)
    assert f.severity == "warning" and f.step == 4
    assert f.remedies[0] == "lower the learning rate from 0.5 to 0.05"
    assert "replace ReLU at 1 with LeakyReLU(0.01)" in f.remedies[1]


def test_dead_relu_needs_enough_examples():
    batches = [np.zeros((32, 4), np.float32)] * 4  # 128 examples < 256
    stats = relu_stats(batches)
    prof = stack_profile(1, "ReLU")
    assert detect_dead_relu(Trace(activations={"1": stats}, epoch_starts=[0]), prof, TH) == []


def test_saturation_counts_outputs_near_the_asymptotes_and_pinned_units():
    rng = np.random.default_rng(0)
    a = ActivationStats("1", "sigmoid", 0)
    for s in range(10):
        out = rng.uniform(0.2, 0.8, size=(32, 10)).astype(np.float32)
        out[:, :8] = 0.999  # 8 units pinned at 1
        a.observe(s, out, TH.sigmoid_margin, TH.tanh_limit)
    a.close_window(9, 0, TH.pinned_unit)
    w = a.windows[-1]
    assert w["pinned_fraction"] == pytest.approx(0.8)
    assert w["saturated_fraction"] == pytest.approx(0.8)
    prof = stack_profile(1, "Sigmoid")
    (f,) = detect_saturation(Trace(activations={"1": a}, epoch_starts=[0]), prof, TH)
    assert f.severity == "warning" and f.where == "1"
    assert f.remedies[0].startswith("replace Sigmoid at 1 with ReLU and use He (Kaiming) init")
    assert f.actions[0]["init"] == "he" and f.actions[0]["layers"] == ["0"]


def test_tanh_saturation_threshold_and_output_activation_is_exempt():
    a = ActivationStats("1", "tanh", 0)
    out = np.full((64, 4), 0.995, np.float32)  # |tanh| > 0.99 everywhere
    for s in range(5):
        a.observe(s, out, TH.sigmoid_margin, TH.tanh_limit)
    a.close_window(4, 0, TH.pinned_unit)
    assert a.windows[-1]["saturated_fraction"] == 1.0
    prof = stack_profile(1, "Tanh")
    tr = Trace(activations={"1": a}, epoch_starts=[0])
    assert detect_saturation(tr, prof, TH)[0].severity == "critical"
    a.is_output = True  # a final sigmoid/tanh of a confident model is supposed to saturate
    assert detect_saturation(tr, prof, TH) == []


# --------------------------------------------------------------------------- learning rate


def lr_trace(loss: list[float], ratio: float | None = None) -> Trace:
    tr = Trace(loss=list(loss), epoch_starts=[0])
    for s in range(0, len(loss), 5):
        tr.add_sample(s, {"0.weight": 1.0}, {})
        if ratio is not None:
            tr.set_update_ratio({"0.weight": ratio})
    return tr


def test_loss_rising_above_its_start_is_a_learning_rate_too_high():
    prof = stack_profile(1, "ReLU")
    loss = list(np.linspace(1.0, 0.8, 20)) + list(np.linspace(1.5, 3.0, 40))
    (f,) = detect_learning_rate(lr_trace(loss), prof, TH)
    assert f.kind == "learning_rate_too_high" and f.where == "optimizer"
    assert f.severity == "warning"
    assert f.remedies[0] == "lower the learning rate from 0.5 to 0.05"


def test_spikes_of_a_hundred_times_are_too_high_but_minibatch_noise_is_not():
    prof = stack_profile(1, "ReLU")
    rng = np.random.default_rng(0)
    noisy = list(np.exp(-np.arange(100) / 30) * (1 + 0.5 * rng.random(100)))
    assert detect_learning_rate(lr_trace(noisy), prof, TH) == []
    spiky = list(noisy)
    spiky[10], spiky[11] = 500.0, 2000.0
    (f,) = detect_learning_rate(lr_trace(spiky), prof, TH)
    assert f.kind == "learning_rate_too_high" and f.evidence["loss_spikes"] == 2


def test_loss_growing_into_nan_is_critical():
    prof = stack_profile(1, "ReLU")
    loss = [1.0, 1.1, 3.0, 30.0, 3e3, 3e6, math.inf, math.nan, math.nan]
    (f,) = detect_learning_rate(lr_trace(loss), prof, TH)
    assert f.severity == "critical" and f.evidence["went_nonfinite"]


def test_nan_without_growth_is_not_blamed_on_the_learning_rate():
    prof = stack_profile(1, "ReLU")
    loss = [1.0, 0.9, 0.85, 0.8, math.nan, math.nan, math.nan, math.nan]
    assert detect_learning_rate(lr_trace(loss), prof, TH) == []


def test_flat_loss_with_tiny_updates_is_too_low_and_normal_updates_are_not():
    prof = stack_profile(1, "ReLU", lr=1e-5)
    rng = np.random.default_rng(0)
    flat = list(0.7 + 0.02 * rng.standard_normal(60))
    (f,) = detect_learning_rate(lr_trace(flat, ratio=1e-6), prof, TH)
    assert f.kind == "learning_rate_too_low" and f.severity == "warning"
    assert f.evidence["median_update_ratio"] == pytest.approx(1e-6)
    # sized from the update ratio: x1000 brings 1e-6 to the typical 1e-3
    assert f.remedies[0].startswith("raise the learning rate from 1e-05 to 0.01 (")
    assert f.actions[0] == {"action": "scale_lr", "factor": 1000.0, "lr": [0.01]}
    # a flat loss with healthy updates (already converged) is fine
    assert detect_learning_rate(lr_trace(flat, ratio=1e-3), prof, TH) == []
    # tiny updates but a falling loss: fine too
    falling = list(np.linspace(1.0, 0.5, 60))
    assert detect_learning_rate(lr_trace(falling, ratio=1e-6), prof, TH) == []
    # too few steps to judge
    assert detect_learning_rate(lr_trace(flat[:20], ratio=1e-6), prof, TH) == []


def spiky_trace(n_spikes, end_high=False, seed=0, steps=400, epochs=8):
    """A batch-1 momentum run in outline: a noisy loss near 1 with ``n_spikes`` separate
    jumps to 1e3-1e5 that fall back within a few steps (or stay up at the end)."""
    rng = np.random.default_rng(seed)
    loss = 1.0 + 0.3 * rng.random(steps)
    for k in np.linspace(40, steps - 40, n_spikes).astype(int) if n_spikes else []:
        loss[k : k + 4] = 10 ** rng.uniform(3, 5, 4)
    if end_high:
        loss[-30:] = 1e4
    tr = lr_trace(list(loss))
    tr.setup["batch_size"] = 1
    per = steps // epochs
    for e in range(epochs):
        chunk = loss[e * per : (e + 1) * per]
        tr.epochs.append({"epoch": e, "loss": float(chunk.mean()), "end_step": (e + 1) * per - 1})
    return tr


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n_spikes", [3, 6, 12])
def test_a_step_loss_that_spikes_and_recovers_again_and_again_oscillates(n_spikes, seed):
    prof = stack_profile(1, "ReLU", lr=0.1)
    (f,) = detect_oscillating(spiky_trace(n_spikes, seed=seed), prof, TH)
    assert f.kind == "oscillating_loss" and f.evidence["spike_swings"] == n_spikes
    # orders of magnitude: a sized lower rate first, then a larger batch, then Adam
    assert [a["action"] for a in f.actions] == ["scale_lr", "set_batch_size", "set_optimizer"]
    assert f.actions[0]["factor"] < 1 and f.actions[1]["batch_size"] == 32


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_blow_up_and_recovery_or_a_loss_that_ends_high_is_not_oscillation(seed):
    prof = stack_profile(1, "ReLU", lr=0.1)
    for tr in (spiky_trace(0, seed=seed), spiky_trace(1, seed=seed),
               spiky_trace(2, end_high=True, seed=seed)):  # fmt: skip
        assert detect_oscillating(tr, prof, TH) == []


# --------------------------------------------------------------------------- NaN


def test_nan_finding_from_a_located_anomaly_suggests_the_op_specific_fix():
    prof = stack_profile(1, "ReLU")
    tr = Trace(epoch_starts=[0], loss=[1.0, math.nan])
    tr.nonfinite = {
        "step": 1, "source": "loss", "names": [], "value": "nan", "note": "located",
        "anomaly": {"op": "log", "phase": "forward", "module": "1",
                    "input_ranges": [[0.0, 3.0]], "code": "model.py:12: y = gw.log(x)"},
    }  # fmt: skip
    f = detect_nan(tr, prof, TH)
    assert f.kind == "nan_trap" and f.severity == "critical" and f.where == "1" and f.step == 1
    assert "'log' (forward) in module 1" in f.explanation
    assert "model.py:12" in f.explanation
    assert f.remedies[0].startswith("the log at 1 received 0")


def test_nan_finding_says_honestly_when_the_op_was_not_located():
    prof = stack_profile(1, "ReLU")
    tr = Trace(epoch_starts=[0], loss=[1.0])
    tr.nonfinite = {"step": 3, "source": "parameter", "names": ["0.weight"], "value": "nan",
                    "anomaly": None, "note": "The replay could not reproduce it."}  # fmt: skip
    f = detect_nan(tr, prof, TH)
    assert f.where == "0.weight"
    assert "The replay could not reproduce it." in f.explanation


# --------------------------------------------------------------------------- features


def test_unscaled_columns_are_named_worst_first_with_their_recommended_chain():
    rng = np.random.default_rng(0)
    X = np.column_stack([
        rng.uniform(-1, 1, 1000),  # fine
        rng.lognormal(7, 1, 1000),  # population-like: heavy right tail, thousands
        rng.uniform(32, 42, 1000),  # latitude: far from [-1, 1]
    ])  # fmt: skip
    report = audit(X, feature_names=["ok", "population", "latitude"])
    f = detect_unscaled(report, TH)
    assert f.severity == "warning"
    assert f.locations == ["population", "latitude"]
    assert f.remedies[0].startswith(
        "log-scale column population, then linear-scale it; linear-scale column latitude"
    )
    assert f.evidence["columns"]["population"]["recommended"] == "log -> linear"


def test_scaled_features_raise_nothing_and_a_tiny_column_is_found():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(500, 3))
    assert detect_unscaled(audit(X), TH) is None
    X[:, 1] *= 1e-4  # one column squeezed to nothing: far from the others' scale
    f = detect_unscaled(audit(X), TH)
    assert f.locations == ["x1"]


def off_scale(f):
    """The columns a finding calls off scale (a warning; an info is about outliers only)."""
    return f.locations if f is not None and f.severity == "warning" else []


def skewed_zscored(rng, n, k):
    """``k`` lognormal columns, z-scored: the bulk reaches +3 to +5, the tail further."""
    Z = rng.lognormal(0, rng.uniform(0.5, 1.0, k), size=(n, k))
    return (Z - Z.mean(0)) / Z.std(0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_standardised_skewed_columns_are_never_flagged_and_squeezed_ones_all_at_once(seed):
    rng = np.random.default_rng(seed)
    Z = skewed_zscored(rng, 600, 6)
    assert np.abs(np.percentile(Z, [1, 99], axis=0)).max() > 2.5  # skewed, as meant
    assert off_scale(detect_unscaled(audit(Z), TH)) == []  # (far outliers: an info at most)
    # raw columns of very different small spans beside them (breast cancer's smoothness,
    # symmetry, fractal dimension): every squeezed one in one finding, no standardised one
    tiny = rng.uniform(0, 1, size=(600, 3)) * np.array([2e-3, 1e-2, 3e-2]) + 0.05
    X = np.column_stack([Z, tiny])
    assert sorted(off_scale(detect_unscaled(audit(X), TH))) == ["x6", "x7", "x8"]
    # once they are scaled too, the audit is quiet: nothing is flagged a second time
    tiny_z = (tiny - tiny.mean(0)) / tiny.std(0)
    assert off_scale(detect_unscaled(audit(np.column_stack([Z, tiny_z])), TH)) == []
    # a column in the hundreds beside the standardised ones is still found
    X[:, 0] = rng.uniform(200, 900, 600)
    assert "x0" in off_scale(detect_unscaled(audit(X), TH))


# --------------------------------------------------------------------------- dropout


@pytest.mark.parametrize(
    "rate,severity",
    [(1.0, "critical"), (0.95, "warning"), (0.85, "warning"), (0.8, "warning"), (0.5, None),
     (0.3, None)],
)  # fmt: skip
def test_dropout_rate(rate, severity):
    prof = ModelProfile(order=["0", "1"], dropouts={"1": rate})
    found = detect_dropout(Trace(), prof, TH)
    assert [f.severity for f in found] == ([severity] if severity else [])
    if found:
        assert found[0].where == "1"


# --------------------------------------------------------------------------- overfitting


def epochs_trace(train: list[float], val: list[float]) -> Trace:
    tr = Trace(epoch_starts=list(range(0, 10 * len(train), 10)))
    for i, (t, v) in enumerate(zip(train, val)):
        tr.epochs.append({"epoch": i, "loss": t, "val_loss": v, "end_step": 10 * i + 9})
    return tr


def test_overfitting_rising_validation_with_falling_training_loss():
    prof = stack_profile(2, "ReLU")
    train = [1.0, 0.6, 0.4, 0.3, 0.2, 0.12, 0.08, 0.05]
    val = [1.0, 0.7, 0.55, 0.5, 0.56, 0.62, 0.7, 0.8]
    f = detect_overfitting(epochs_trace(train, val), prof, TH)
    assert f.kind == "overfitting" and f.severity == "warning" and f.where == "model"
    assert f.evidence["best_epoch"] == 3
    # against the best level of the median-of-3 smoothed curve (0.55: one good epoch at 0.5 is
    # not a level), the smallest of the last three epochs (0.62) rose by 0.07 / 0.55
    assert f.evidence["rise"] == pytest.approx((0.62 - 0.55) / 0.55)
    assert f.remedies[0].startswith("stop at the best epoch: callbacks=[gw.callbacks.EarlyStop")
    assert any("Dropout(0.2)" in r for r in f.remedies)
    assert any("weight_decay" in r for r in f.remedies)


def memorised(n_epochs, best, peak_at, fall_back, floor=0.03, top=0.12):
    """A training set memorised (training loss to ~0): validation falls to ``floor`` at epoch
    ``best``, climbs smoothly to ``top`` by ``peak_at``, then drifts down by ``fall_back``."""
    e = np.arange(n_epochs, dtype=np.float64)
    down = floor + (0.5 - floor) * np.exp(-3 * e / best)
    up = floor + (top - floor) * (1 - np.exp(-4 * (e - best) / (peak_at - best)))
    drift = fall_back * np.clip((e - peak_at) / (n_epochs - peak_at), 0, None)
    val = np.where(e <= best, down, up - drift)
    train = 0.8 * np.exp(-e / 2) + 1e-8
    return list(train), list(val)


@pytest.mark.parametrize(
    "n_epochs,best,peak_at,fall_back",
    [(100, 9, 40, 0.004), (60, 5, 20, 0.01), (40, 8, 25, 0.0), (100, 20, 60, 0.02)],
)
def test_a_memorised_training_set_plateaus_high_above_its_best_and_is_overfitting(
    n_epochs, best, peak_at, fall_back
):
    # the validation loss rises to 4x its best and stays there, drifting slightly down as
    # the updates die out: the trend after the best is weak, the rise is not
    train, val = memorised(n_epochs, best, peak_at, fall_back)
    f = detect_overfitting(epochs_trace(train, val), stack_profile(2, "ReLU"), TH)
    assert f is not None and f.severity == "warning"
    assert f.evidence["best_epoch"] == int(np.argmin(val))
    # the same validation curve beside a training loss that stays near it (a model near
    # chance growing confident, not one that memorised its training set) is no clear rise
    near = list(np.linspace(0.95, 0.6, n_epochs) * max(val))
    f = detect_overfitting(epochs_trace(near, val), stack_profile(2, "ReLU"), TH)
    assert f is None or f.evidence["trend_after_best"] >= TH.overfit_trend


@pytest.mark.parametrize("seed", range(12))
def test_noise_around_a_floor_is_not_a_clear_rise(seed):
    rng = np.random.default_rng(seed)
    train = list(np.geomspace(1.0, 1e-4, 40))
    val = list(np.r_[np.linspace(1.0, 0.5, 5), 0.5 + 0.05 * rng.standard_normal(35)])
    f = detect_overfitting(epochs_trace(train, val), stack_profile(2, "ReLU"), TH)
    # a draw whose noise happens to trend upwards after its lucky best may still be called
    # overfitting by the trend, never by the size of its rise
    assert f is None or f.evidence["trend_after_best"] >= TH.overfit_trend
    if f is not None:
        rise = f.evidence["rise"] * f.evidence["best_val_loss"]
        assert rise < TH.overfit_noise_multiple * f.evidence["noise_after_best"]


@pytest.mark.parametrize(
    "train,val",
    [
        ([1.0, 0.6, 0.4, 0.3, 0.2, 0.12, 0.08, 0.05], [1.0, 0.7, 0.5, 0.45, 0.4, 0.38, 0.37, 0.36]),
        # noise around a plateau after one lucky epoch
        ([1.0, 0.6, 0.4, 0.3, 0.2, 0.12, 0.08, 0.05], [1.0, 0.5, 0.52, 0.4, 0.51, 0.5, 0.49, 0.5]),
        # validation rises but the training loss does not fall either
        ([1.0, 0.5, 0.4, 0.4, 0.41, 0.4, 0.4, 0.41], [1.0, 0.6, 0.5, 0.5, 0.56, 0.62, 0.7, 0.8]),
    ],
)
def test_not_overfitting(train, val):
    assert detect_overfitting(epochs_trace(train, val), stack_profile(2, "ReLU"), TH) is None


# --------------------------------------------------------------------------- relations


def _f(kind, severity="warning", where="x", **ev):
    return Finding(kind, severity, where, 0, 0, ev, "Something.", [f"fix {kind}"],
                   [{"action": kind}])  # fmt: skip


def test_learning_rate_too_low_is_demoted_when_units_are_dead():
    found = relate([_f("learning_rate_too_low", where="optimizer"), _f("dead_relu", where="3")])
    assert [f.kind for f in found] == ["dead_relu", "learning_rate_too_low"]
    low = found[1]
    assert low.severity == "info" and "dead_relu" in low.explanation
    assert low.caused_by == ["dead_relu"] and found[0].consequences == ["learning_rate_too_low"]
    assert low.actions[0] == {"action": "dead_relu"}  # the cause's fix comes first


def test_unscaled_features_become_the_first_remedy_and_take_the_worst_severity():
    found = [_f("unscaled_features", where="population"),
             _f("nan_trap", "critical", where="2"),
             _f("saturated_activations", where="3", first_layer=False)]  # fmt: skip
    found = relate(found)
    unscaled, nan, sat = (next(f for f in found if f.kind == k) for k in
                          ("unscaled_features", "nan_trap", "saturated_activations"))  # fmt: skip
    assert found[0] is unscaled  # the root cause first
    assert nan.remedies[0].startswith("scale the input features first")
    assert nan.actions[0] == {"action": "unscaled_features"}
    assert nan.caused_by == ["unscaled_features"] and unscaled.consequences == ["nan_trap"]
    assert sat.remedies == ["fix saturated_activations"]  # not the first layer
    assert sat.caused_by == []
    assert unscaled.severity == "critical"
    relate(found)  # idempotent
    assert len(nan.remedies) == 2


def test_diagnose_orders_root_causes_first_by_mechanism():
    prof = stack_profile(2, "ReLU")
    tr = Trace(epoch_starts=[0], loss=[1.0, math.nan])
    tr.nonfinite = {"step": 1, "source": "loss", "names": [], "value": "nan", "anomaly": None,
                    "note": "n/a"}  # fmt: skip
    prof.dropouts = {"9": 1.0}
    kinds = [f.kind for f in diagnose(tr, prof, TH)]
    # two unrelated critical roots: the setup's problem (dropout 1.0) comes first
    assert kinds[:2] == ["dropout_misconfigured", "nan_trap"]


def _at(kind, step, severity="warning"):
    return Finding(kind, severity, "x", step, 0, {}, "Something.", [f"fix {kind}"],
                   [{"action": kind}])  # fmt: skip


@pytest.mark.parametrize(
    "chain",
    [
        # the orders: scaling or init at step 0 before the explosion it causes...
        [_at("bad_initialization", None), _at("exploding_gradients", 3, "critical")],
        [_at("unscaled_features", None), _at("exploding_gradients", 3, "critical")],
        # ...the explosion before the dead units and the stall it leaves behind...
        [_at("exploding_gradients", 2), _at("dead_relu", 5, "critical"),
         _at("stalled_training", 40)],
        # ...vanishing gradients before the dead units at the top of a starved stack
        [_at("vanishing_gradients", 0), _at("dead_relu", 11, "critical")],
    ],
)  # fmt: skip
def test_root_causes_come_first_whatever_the_severity(chain):
    for order in (chain, chain[::-1]):
        found = relate([Finding.from_dict(f.to_dict()) for f in order])
        assert [f.kind for f in found] == [f.kind for f in chain]
        root = found[0]
        assert root.caused_by == [] and root.severity == "critical"  # as serious as its effects
        for f in found[1:]:
            assert root.id in f.caused_by and f.id in root.consequences
            assert f.actions[0] == root.actions[0]  # the cause's fix comes first


def test_a_consequence_that_began_before_its_supposed_cause_is_not_linked():
    found = relate([_at("vanishing_gradients", 30), _at("dead_relu", 4)])
    assert all(f.caused_by == [] for f in found)
