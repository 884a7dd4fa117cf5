"""The setup checks on Keras losses, by object or by name: the output layer against the loss
(a softmax or sigmoid before a loss ``from_logits=True``, a linear output before one
``from_logits=False``, a regression loss on class labels), caught by
``gradwell.keras.check`` and by the DoctorCallback as gradwell's doctor and gradwell.torch
catch them (``output_loss_mismatch`` at the output), with remedies in Keras' words; the
setups the remedies give are silent."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import torch
from keras_doctor.kit import dataset, fit, optimizer, serious

import gradwell.keras as gk

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
SCCE = keras.losses.SparseCategoricalCrossentropy
BCE = keras.losses.BinaryCrossentropy


def classifier(n_in: int, n_out: int, seed: int, activation=None, after=None):
    """Dense(16, relu) -> Dense(n_out, activation) named "out" [-> Activation(after)]."""
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((n_in,)), keras.layers.Dense(16, activation="relu"),
              keras.layers.Dense(n_out, activation=activation, name="out")]  # fmt: skip
    if after is not None:
        layers.append(keras.layers.Activation(after, name="squash"))
    return keras.Sequential(layers)


# id: (last layer's activation, activation layer after it, outputs ("C": one per class),
#      loss, targets (the labels, whether class 0 or not, or the labels as a column: what
#      Keras' MSE broadcasts against the outputs without a word), place, words of the top
#      remedy, the setup it gives)
SICK = {
    "softmax_inside_before_logits_loss": (
        "softmax", None, "C", lambda: SCCE(from_logits=True), "labels", "out/activation",
        "a linear out, activation=None; or keep the activation and pass from_logits=False",
        dict(activation=None)),
    "softmax_layer_before_logits_loss": (
        None, "softmax", "C", lambda: SCCE(from_logits=True), "labels", "squash",
        "SparseCategoricalCrossentropy(from_logits=True) takes the logits of out",
        dict(after=None)),
    "sigmoid_before_binary_logits_loss": (
        "sigmoid", None, 1, lambda: BCE(from_logits=True), "binary", "out/activation",
        "BinaryCrossentropy(from_logits=True) takes the logits of out", dict(activation=None)),
    "linear_before_probability_loss_by_name": (
        None, None, "C", lambda: "sparse_categorical_crossentropy", "labels", "out",
        "loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)",
        dict(loss=lambda: SCCE(from_logits=True))),
    "linear_before_binary_probability_loss": (
        None, None, 1, lambda: BCE(), "binary", "out",
        "loss=keras.losses.BinaryCrossentropy(from_logits=True)",
        dict(loss=lambda: BCE(from_logits=True))),
    "mse_on_class_labels": (
        None, None, "C", lambda: "mse", "column", "loss",
        "loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), on the 3 logits of "
        "out", dict(loss=lambda: SCCE(from_logits=True))),
}  # fmt: skip


def setup(case: str, seed: int, fixed: bool = False):
    act, after, n_out, loss, targets, *_, fix = SICK[case]
    X, y, C = dataset("blobs", seed)
    y = {"labels": y, "binary": (y == 0).astype(np.float32), "column": y[:, None]}[targets]
    options = {"activation": act, "after": after, "loss": loss, **(fix if fixed else {})}
    loss = options.pop("loss")()
    model = classifier(X.shape[1], C if n_out == "C" else n_out, seed, **options)
    return model, loss, X, y


def mismatch(findings):
    return [f for f in findings if f.kind == "output_loss_mismatch"]


@pytest.mark.parametrize("seed", (0, 1, 2))
@pytest.mark.parametrize("case", list(SICK))
def test_check_names_the_output_loss_mismatch_in_keras_words(case, seed):
    model, loss, X, y = setup(case, seed)
    model.compile(optimizer=optimizer("adam", 0.01), loss=loss)
    before = [v.numpy().copy() for v in model.variables]
    rng = torch.random.get_rng_state()
    found = gk.check(model, X, y)
    assert found[0].kind == "output_loss_mismatch" and found[0].severity == "critical"
    assert found[0].where == SICK[case][5]
    assert SICK[case][6] in found[0].remedies[0]
    words = " ".join(r for f in found for r in f.remedies)
    assert "nn." not in words and "gw." not in words and "torch." not in words
    assert all(np.array_equal(b, v.numpy()) for b, v in zip(before, model.variables))
    assert torch.random.get_rng_state().equal(rng)
    # the remedy applied: the check is silent
    model, loss, X, y = setup(case, seed, fixed=True)
    assert mismatch(gk.check(model, X, y, loss=loss, optimizer=optimizer("adam", 0.01))) == []


@pytest.mark.parametrize("case", list(SICK))
def test_the_doctor_callback_finds_it_and_the_remedied_run_is_healthy(case):
    model, loss, X, y = setup(case, 0)
    doctor = fit(model, X, y, optimizer("adam", 0.01), loss=loss, epochs=2)
    f = doctor.findings[0]
    assert f.kind == "output_loss_mismatch" and f.where == SICK[case][5]
    model, loss, X, y = setup(case, 0, fixed=True)
    healed = fit(model, X, y, optimizer("adam", 0.01), loss=loss, epochs=2)
    assert serious(healed) == [], [f.headline() for f in serious(healed)]


USUAL = [("softmax", "sparse_categorical_crossentropy"), ("softmax", SCCE()),
         (None, SCCE(from_logits=True))]  # fmt: skip


@pytest.mark.parametrize("output,loss", USUAL)
def test_keras_usual_pairs_of_output_and_loss_are_silent(output, loss):
    X, y, C = dataset("blobs", 0)
    model = classifier(X.shape[1], C, 0, activation=output)
    model.compile(optimizer=optimizer("adam", 0.01), loss=loss)
    assert gk.check(model, X, y) == []
    yb = (y == 0).astype(np.float32)
    model = classifier(X.shape[1], 1, 0, activation="sigmoid")
    assert gk.check(model, X, yb, loss="binary_crossentropy", optimizer=optimizer("sgd", 0.1)) == []


def test_check_rejects_what_is_not_a_keras_setup():
    with pytest.raises(TypeError, match="keras.Model"):
        gk.check(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="has no weights yet; give it its input shape"):
        gk.check(keras.Sequential([keras.layers.Dense(3)]), np.zeros((4, 2)), np.zeros(4))
    model = classifier(2, 3, 0)
    with pytest.raises(TypeError, match="y must be an array of numbers"):
        gk.check(model, np.zeros((4, 2)), np.array(["a", "b", "c", "d"]))
    with pytest.raises(ValueError, match="same number of rows; got 4 and 3"):
        gk.check(model, np.zeros((4, 2)), np.zeros(3))
