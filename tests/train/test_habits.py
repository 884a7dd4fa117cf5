"""Keras habits in fit: optimizer and loss names, validation_split, class_weight."""

import numpy as np
import pytest

import gradwell as gw
from gradwell import nn
from gradwell.train.habits import split_validation


def blobs(n=120, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1, 2], n // 3)
    X = rng.normal(size=(n, 2)) + 4 * np.stack([y == 1, y == 2], axis=1)
    return X.astype(np.float32), y


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_names_and_a_validation_split(seed):
    X, y = blobs()
    gw.manual_seed(seed)  # the weights too, not only fit's shuffling (it failed 1 run in 7)
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 3))
    history = gw.fit(model, (X, y), loss="sparse_categorical_crossentropy", optimizer="adam",
                     epochs=30, batch_size=8, validation_split=0.25, metrics=["accuracy"],
                     verbose=0, doctor=False, seed=seed)  # fmt: skip
    assert history["val_loss"][-1] < 0.5 * history["val_loss"][0]
    assert history["val_accuracy"][-1] > 0.6 and history.params["steps"] == 12  # 90 rows / 8


def test_the_validation_split_is_stratified_for_labels_and_from_the_end_otherwise():
    X, y = blobs()
    (_, y_train), (_, y_val) = split_validation((X, y), 0.25, None)
    assert np.bincount(y_val).tolist() == [10, 10, 10] and len(y_train) == 90
    values = np.arange(10, dtype=np.float32)[:, None]
    (_, _), (_, held) = split_validation((values, values), 0.2, None)
    assert held.ravel().tolist() == [8.0, 9.0]
    with pytest.raises(ValueError, match="not both"):
        split_validation((X, y), 0.2, (X, y))


def test_unknown_names_list_the_known_ones():
    model = nn.Linear(2, 3)
    X, y = blobs()
    with pytest.raises(ValueError, match="unknown optimizer 'adamm'; expected one of adam, adamw"):
        gw.fit(model, (X, y), loss="cross_entropy", optimizer="adamm", epochs=1, verbose=0)
    with pytest.raises(ValueError, match="unknown loss 'xent'.*sparse_categorical_crossentropy"):
        gw.fit(model, (X, y), loss="xent", optimizer="sgd", epochs=1, verbose=0)


def test_class_weight_shifts_predictions_toward_the_weighted_class():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 2)).astype(np.float32)
    y = (X[:, 0] + rng.normal(0, 1.0, 300) > 0).astype(np.int64)
    share = []
    for weights in (None, {0: 1.0, 1: 8.0}):
        model = nn.Linear(2, 2, rng=np.random.default_rng(1))
        gw.fit(model, (X, y), loss="cross_entropy", optimizer="rmsprop", epochs=40, verbose=0,
               class_weight=weights, doctor=False, seed=0)  # fmt: skip
        share.append(float(np.mean(gw.predict(model, X).argmax(axis=1) == 1)))
    assert share[1] > share[0] + 0.15
