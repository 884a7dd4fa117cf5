"""fit(sample_weight=, class_weight=): Keras's weighted loss, checked against its formula.

The step's loss is ``sum_i w_i * loss_i / batch size`` with ``w_i = sample_weight[i] *
class_weight[y_i]``; one batch of all rows makes the first step's loss that formula on the
untrained model.
"""

import copy

import numpy as np
import pytest

import gradwell as gw
from gradwell import nn


def data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3)).astype(np.float32)
    return X, rng.integers(0, 3, n), rng.uniform(0, 2, n)


def first_step_loss(model, X, y, **weights):
    history = gw.fit(model, (X, y), loss=weights.pop("loss", "cross_entropy"), optimizer="sgd",
                     epochs=1, batch_size=len(X), shuffle=False, verbose=0, doctor=False,
                     **weights)  # fmt: skip
    return history.steps["loss"][0]


def cross_entropy_rows(logits, y):
    z = logits.astype(np.float64)
    log_p = z - z.max(axis=1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(axis=1, keepdims=True))
    return -log_p[np.arange(len(y)), y]


@pytest.mark.parametrize(
    "given",
    [
        {"sample_weight": "w"},
        {"class_weight": {0: 1.0, 1: 4.0}},  # class 2 not named: weight 1
        {"sample_weight": "w", "class_weight": {0: 0.5, 1: 3.0, 2: 2.0}},
    ],
    ids=["sample", "class", "both"],
)
def test_cross_entropy_rows_are_weighted_as_keras_does(given):
    X, y, w = data()
    model = nn.Linear(3, 3, rng=0)
    rows = cross_entropy_rows(gw.predict(copy.deepcopy(model), X), y)
    expected = np.ones(len(y))
    if "sample_weight" in given:
        expected *= w
        given = {**given, "sample_weight": w}
    if "class_weight" in given:
        expected *= np.array([given["class_weight"].get(int(c), 1.0) for c in y])
    got = first_step_loss(model, X, y, **given)
    np.testing.assert_allclose(got, np.sum(expected * rows) / len(y), rtol=1e-5)


def test_a_row_of_several_outputs_weighs_the_mean_of_its_errors():
    X, _, w = data()
    targets = np.random.default_rng(1).normal(size=(len(X), 2)).astype(np.float32)
    model = nn.Linear(3, 2, rng=0)
    errors = (gw.predict(copy.deepcopy(model), X).astype(np.float64) - targets) ** 2
    got = first_step_loss(model, X, targets, loss="mse", sample_weight=w)
    np.testing.assert_allclose(got, np.sum(w * errors.mean(axis=1)) / len(X), rtol=1e-5)


def test_each_batch_divides_by_its_own_size_and_weights_follow_their_rows():
    X, y, w = data(n=20)
    model = nn.Linear(3, 3, rng=0)
    rows = cross_entropy_rows(gw.predict(copy.deepcopy(model), X), y)
    # validation_split holds out the last quarter of each class; the weights split with them
    kept = np.ones(len(y), bool)
    for c in np.unique(y):
        where = np.flatnonzero(y == c)
        kept[where[len(where) - int(round(0.25 * len(where))) :]] = False
    history = gw.fit(model, (X, y), loss="cross_entropy", optimizer="sgd", epochs=1,
                     batch_size=4, shuffle=False, verbose=0, doctor=False,
                     sample_weight=w, validation_split=0.25)  # fmt: skip
    first = np.flatnonzero(kept)[:4]
    np.testing.assert_allclose(
        history.steps["loss"][0], np.sum(w[first] * rows[first]) / 4, rtol=1e-5
    )
    unweighted = cross_entropy_rows(gw.predict(model, X[~kept]), y[~kept]).mean()
    np.testing.assert_allclose(history["val_loss"][0], unweighted, rtol=1e-5)  # not weighted


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"sample_weight": np.ones(5)}, ValueError,
         r"sample_weight of shape \(24,\), one number per training row; got float64 of shape \(5"),
        ({"sample_weight": np.ones((24, 2))}, ValueError, r"sample_weight of shape \(24,\)"),
        ({"sample_weight": ["heavy"] * 24}, TypeError, "fit: sample_weight: expected numbers"),
        ({"sample_weight": np.where(np.arange(24) == 3, -1.0, 1.0)}, ValueError,
         "sample_weight to be finite and >= 0; row 3 has -1.0"),
        ({"class_weight": [1.0, 2.0]}, TypeError, "class_weight as"),
        ({"class_weight": {0: -2.0}}, ValueError, "class_weight to be finite and >= 0"),
        ({"sample_weight": np.ones(24), "loss": lambda out, y: (out * 0).sum()}, TypeError,
         "one value per row"),
        ({"sample_weight": np.ones(24), "compile": True}, ValueError, "compile=True"),
    ],
    ids=["length", "2-d", "text", "negative", "class-list", "class-negative", "callable-loss",
         "compile"],
)  # fmt: skip
def test_bad_weights_are_refused_before_training(kwargs, error, message):
    X, y, _ = data()
    model = nn.Linear(3, 3, rng=0)
    before = model.weight.data.copy()
    kwargs = {"loss": "cross_entropy", **kwargs}
    with pytest.raises(error, match=message):
        gw.fit(model, (X, y), optimizer="sgd", epochs=1, verbose=0, doctor=False, **kwargs)
    np.testing.assert_array_equal(model.weight.data, before)


def test_class_weight_needs_class_labels():
    X, _, _ = data()
    with pytest.raises(ValueError, match="class_weight needs class labels"):
        gw.fit(nn.Linear(3, 1), (X, np.linspace(0, 1, 24)[:, None]), loss="mse",
               optimizer="sgd", epochs=1, verbose=0, class_weight={0: 2.0})  # fmt: skip
