"""The Keras NaN trap in the backward: a first non-finite value that only the gradient holds
(a masked sqrt in a layer, a sqrt in a hand-written loss) is named by op, Keras layer (or
the loss) and the user's line, as gradwell.torch names it (tests/torch_doctor); an
activation inside a Dense layer is a place of its own."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import torch
from keras_doctor.kit import dataset, fit, kinds, optimizer

import gradwell as gw
from gradwell.keras.replay import _what, replay_nonfinite

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


class MaskedSqrt(keras.layers.Layer):
    """The where-gradient trap: the forward is finite, the sqrt's backward is not (unless
    its input is clamped, as the remedy says)."""

    def __init__(self, n: int, clamped: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.inner = keras.layers.Dense(n)
        self.clamped = clamped

    def call(self, x):
        h = self.inner(x)
        root = keras.ops.sqrt(keras.ops.maximum(h, 1e-6) if self.clamped else h)  # the sqrt
        return keras.ops.where(h > 0, root, 0.0)


def sqrt_hinge_loss(y_true, y_pred, clamped=False):
    """The square root of the true class's hinge margin where it is positive: finite, but
    the sqrt's gradient at the negative margins is 0 / NaN (unless its input is clamped, as
    the remedy says)."""
    labels = keras.ops.reshape(keras.ops.cast(y_true, "int32"), (-1, 1))
    margin = 1.0 - keras.ops.take_along_axis(y_pred, labels, axis=1)
    root = keras.ops.sqrt(keras.ops.maximum(margin, 1e-6) if clamped else margin)  # the root
    return keras.ops.mean(keras.ops.where(margin > 0, root, 0.0))


def clamped_sqrt_hinge_loss(y_true, y_pred):
    return sqrt_hinge_loss(y_true, y_pred, clamped=True)


def model_with(middle, n_in: int, n_out: int, seed: int) -> keras.Sequential:
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((n_in,)), keras.layers.Dense(16, activation="relu"),
                             *middle, keras.layers.Dense(n_out)])  # fmt: skip


@pytest.mark.parametrize("seed", (0, 1, 2))
def test_nan_made_in_a_layers_backward_names_the_op_the_layer_and_the_line(seed):
    X, y, C = dataset("blobs", seed)
    model = model_with([MaskedSqrt(16, name="masked_sqrt")], X.shape[1], C, seed)
    doctor = fit(model, X, y, optimizer("adam", 0.01), epochs=1)
    f = next(f for f in doctor.findings if f.kind == "nan_trap")
    assert f.severity == "critical" and f.step == 0 and f.evidence["source"] == "gradient"
    assert f.where == "masked_sqrt"
    a = f.evidence["anomaly"]
    assert a["phase"] == "backward" and a["op"] == "sqrt" and a["module"] == "masked_sqrt"
    assert a["input_ranges"][0][0] < 0  # what the sqrt received in the forward
    assert "# the sqrt" in a["code"] and __file__ in a["code"]
    assert "the sqrt at masked_sqrt received" in f.remedies[0]
    assert "keras.ops.maximum" in f.remedies[0]
    # the remedy applied (the sqrt's input clamped): the same run is free of NaN
    model = model_with([MaskedSqrt(16, clamped=True, name="masked_sqrt")], X.shape[1], C, seed)
    healed = fit(model, X, y, optimizer("adam", 0.01), epochs=1)
    assert healed.doctor.trace.nonfinite is None and "nan_trap" not in kinds(healed)


@pytest.mark.parametrize("seed", (0, 1, 2))
def test_nan_made_in_a_hand_written_loss_backward_names_the_loss_and_the_line(seed):
    X, y, C = dataset("blobs", seed)
    model = model_with([], X.shape[1], C, seed)
    # (every step sampled: the NaN comes after a few updates, on a step default sampling
    # may skip, and this loss stays finite once the weights are not)
    doctor = fit(model, X, y, optimizer("sgd", 0.1), loss=sqrt_hinge_loss, epochs=1,
                 sample_every=1)  # fmt: skip
    f = next(f for f in doctor.findings if f.kind == "nan_trap")
    assert f.evidence["source"] == "gradient" and f.severity == "critical"
    a = f.evidence["anomaly"]
    assert a["phase"] == "backward" and a["op"] == "sqrt" and a["module"] is None
    assert "# the root" in a["code"] and __file__ in a["code"]
    assert f.where == "sqrt_hinge_loss" and "in the loss (sqrt_hinge_loss)" in f.explanation
    assert f.remedies[0].startswith("the sqrt at sqrt_hinge_loss received -")
    assert "keep the model's output positive before the sqrt" in f.remedies[0]
    assert "keras.ops.maximum" in f.remedies[0]
    # the remedy applied (the sqrt's input clamped): the same run is free of NaN
    model = model_with([], X.shape[1], C, seed)
    healed = fit(model, X, y, optimizer("sgd", 0.1), loss=clamped_sqrt_hinge_loss, epochs=1,
                 sample_every=1)  # fmt: skip
    assert healed.doctor.trace.nonfinite is None


@pytest.mark.parametrize("sick", [False, True], ids=["clean_batch", "nan_in_backward"])
def test_the_replay_leaves_the_model_and_the_random_state_as_they_were(sick):
    keras.utils.set_random_seed(0)
    middle = MaskedSqrt(8) if sick else keras.layers.Dense(8)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8),
                              keras.layers.BatchNormalization(), keras.layers.Dropout(0.5),
                              middle, keras.layers.Dense(3)])  # fmt: skip
    before = [v.numpy().copy() for v in model.variables]  # the seed's state among them
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    rng = torch.random.get_rng_state()
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    anomaly, note = replay_nonfinite(model, x, y, lambda out, t: loss(t, out))
    assert (anomaly is not None) == sick, note
    if sick:
        assert anomaly["op"] == "sqrt" and anomaly["phase"] == "backward"
    assert all(np.array_equal(b, v.numpy()) for b, v in zip(before, model.variables))
    assert all(v.value.grad is None for v in model.trainable_variables)  # nothing accumulated
    assert torch.random.get_rng_state().equal(rng)


@pytest.mark.parametrize("seed", (0, 1, 2))
def test_an_activation_inside_a_dense_layer_is_a_place_of_its_own(seed):
    """``Dense(16, activation="exponential")`` on unscaled inputs: the exp overflows; the op
    is placed at ``expand/activation``, where the profile has the Exp, so the exp's own
    remedy applies; the top remedy (scaling the inputs) repairs the run."""
    ds = gw.data.datasets.plane(n=512, noise=0.1, seed=seed)
    X, y = (ds.X / 6.0).astype(np.float32), ds.y.reshape(-1, 1).astype(np.float32)

    def exp_model():
        keras.utils.set_random_seed(seed)
        expand = keras.layers.Dense(16, activation="exponential", name="expand")
        return keras.Sequential([keras.Input((2,)), expand, keras.layers.Dense(1)])

    doctor = fit(exp_model(), X * 1000, y, optimizer("sgd", 0.01), loss="mse", epochs=1)
    f = next(f for f in doctor.findings if f.kind == "nan_trap")
    a = f.evidence["anomaly"]
    assert f.where == "expand/activation" and f.step == 0
    assert a["op"] == "exp" and a["phase"] == "forward" and a["module"] == "expand/activation"
    assert f.remedies[0].startswith("scale the input features first")
    assert any("replace Exp at expand/activation with ReLU" in r for r in f.remedies)
    healed = fit(exp_model(), X, y, optimizer("sgd", 0.01), loss="mse", epochs=1)
    assert healed.doctor.trace.nonfinite is None


def test_a_layer_named_without_its_op_is_named_by_its_class_or_activation():
    # (what the finding names when the rerun of the culprit finds no op, as one drawing
    # other random numbers may)
    layers = {"dense": keras.layers.Dense(4, activation="relu"), "drop": keras.layers.Dropout(0.5)}
    assert _what(layers, "drop") == "Dropout" and _what(layers, "dense/activation") == "relu"
