"""The doctor measures the gates inside LSTM and GRU layers: saturated gates are caught
(huge initial weights, unscaled inputs) in every seed, the top remedy repairs the huge-init
run, and healthy recurrent runs stay silent while their gates are measured."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import gradwell as gw

SEEDS = (0, 1, 2)


class SequenceClassifier(gw.nn.Module):
    def __init__(self, cell: str, seed: int, weight_scale: float = 1.0):
        super().__init__()
        self.rnn = getattr(gw.nn, cell)(4, 16, batch_first=True, rng=seed)
        self.head = gw.nn.Linear(16, 2, rng=seed)
        for p in self.rnn.parameters():
            p.data *= weight_scale

    def forward(self, x):
        _, state = self.rnn(x)
        h_n = state[0] if isinstance(state, tuple) else state
        return self.head(h_n[-1])


def sequences(seed: int, n: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Is the sum of the first feature over 8 steps positive?"""
    x = np.random.default_rng(seed).standard_normal((n, 8, 4)).astype(np.float32)
    return x, (x[:, :, 0].sum(axis=1) > 0).astype(np.int64)


def train(model, x, y, seed):
    doctor = gw.doctor.Doctor(verbose=False, raise_errors=True)
    with warnings.catch_warnings():  # saturated runs overflow on purpose
        warnings.simplefilter("ignore", RuntimeWarning)
        history = gw.fit(
            model, (x, y), loss=gw.nn.CrossEntropyLoss(),
            optimizer=gw.optim.Adam(model.parameters(), lr=0.01), epochs=4, batch_size=32,
            seed=seed, verbose=0, doctor=doctor,
        )  # fmt: skip
    serious = [f for f in history.findings if f.severity in ("warning", "critical")]
    return history, serious, doctor.trace


def saturation(findings):
    return next((f for f in findings if f.kind == "saturated_activations"), None)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_huge_initial_weights_saturate_the_gates_and_the_default_init_repairs_it(cell, seed):
    x, y = sequences(seed)
    history, serious, _ = train(SequenceClassifier(cell, seed, weight_scale=50), x, y, seed)
    f = saturation(serious)
    assert f is not None, [(g.kind, g.where) for g in serious]
    assert "rnn.gates" in f.locations
    assert f"{cell} gate" in f.explanation
    assert f.actions[0] == {"action": "reinitialise", "modules": ["rnn"], "init": "default"}
    assert f.remedies[0].startswith("re-initialise rnn with its default init")
    # applied to the same sick model, the top remedy makes a healthy run
    sick = SequenceClassifier(cell, seed, weight_scale=50)
    opt = gw.optim.Adam(sick.parameters(), lr=0.01)
    fixed, _ = gw.doctor.apply_edits(sick, opt, [f.actions[0]])
    after, serious_after, _ = train(fixed, x, y, seed)
    assert saturation(serious_after) is None
    assert after["loss"][-1] < 0.5 * history["loss"][-1]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_unscaled_inputs_saturate_the_gates(cell, seed):
    x, y = sequences(seed)
    _, serious, _ = train(SequenceClassifier(cell, seed), x * 100, y, seed)
    f = saturation(serious)
    assert f is not None and "rnn.gates" in f.locations
    assert f.evidence["by_layer"]["rnn.gates"]["saturated_output_fraction"] >= 0.7
    assert any(g.kind == "unscaled_features" for g in serious)  # the cause is named too


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("cell", ["LSTM", "GRU", "RNN"])
def test_healthy_recurrent_runs_stay_silent_while_their_gates_are_measured(cell, seed):
    x, y = sequences(seed)
    history, serious, trace = train(SequenceClassifier(cell, seed), x, y, seed)
    assert serious == [], [(f.kind, f.where) for f in serious]
    measured = {"LSTM": ("rnn.gates", "rnn.tanh"), "GRU": ("rnn.gates", "rnn.tanh"),
                "RNN": ("rnn.tanh",)}[cell]  # fmt: skip
    for path in measured:
        stats = trace.activations[path]
        assert stats.inside == "rnn" and stats.windows
        assert stats.windows[-1]["saturated_fraction"] < 0.1
    assert history["loss"][-1] < 0.3


def test_watching_the_gates_never_changes_training():
    """Doctor off, on, and sampling every step: the same losses and weights, bit for bit."""
    x, y = sequences(0, n=128)
    runs = []
    for doctor in (False, True, gw.doctor.Doctor(sample_every=1, verbose=False)):
        model = SequenceClassifier("LSTM", 0)
        model.rnn = gw.nn.LSTM(4, 16, num_layers=2, dropout=0.2, batch_first=True, rng=0)
        history = gw.fit(
            model, (x, y), loss=gw.nn.CrossEntropyLoss(),
            optimizer=gw.optim.Adam(model.parameters(), lr=0.01), epochs=2, batch_size=32,
            seed=0, verbose=0, doctor=doctor,
        )  # fmt: skip
        runs.append((history.steps["loss"], [p.numpy().copy() for p in model.parameters()]))
    (loss0, w0), *others = runs
    for loss, w in others:
        np.testing.assert_array_equal(loss, loss0)
        for a, b in zip(w, w0):
            np.testing.assert_array_equal(a, b)
