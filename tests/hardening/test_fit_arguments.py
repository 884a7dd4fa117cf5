"""fit refuses nonsense before the first step, naming the argument."""

from __future__ import annotations

import numpy as np
import pytest

import gradwell as gw

rng = np.random.default_rng(0)
X = rng.normal(size=(24, 2)).astype(np.float32)
Y_REG = rng.normal(size=(24, 1)).astype(np.float32)
Y_CLS = (X[:, 0] > 0).astype(np.int64)


def model_and_opt():
    model = gw.nn.Sequential(gw.nn.Linear(2, 4, rng=0), gw.nn.ReLU(), gw.nn.Linear(4, 2, rng=1))
    return model, gw.optim.SGD(model.parameters(), lr=0.1)


def run(**changes):
    model, opt = model_and_opt()
    args = dict(
        train=(X, Y_CLS), loss="cross_entropy", optimizer=opt, epochs=1, verbose=0, doctor=False
    )
    model = changes.pop("model", model)
    args.update(changes)
    return gw.fit(model, **args)


CASES = {
    "epochs=True": (dict(epochs=True), ValueError, "epochs to be an int >= 0; got True"),
    "epochs=1.5": (dict(epochs=1.5), ValueError, "epochs to be an int"),
    "initial_epoch=False": (dict(initial_epoch=False), ValueError, "initial_epoch"),
    "no rows": (dict(train=(X[:0], Y_CLS[:0])), ValueError, "train data has no rows"),
    "no validation rows": (
        dict(validation=(X[:0], Y_CLS[:0])),
        ValueError,
        "validation data has no rows",
    ),
    "an empty loader": (
        dict(train=gw.data.DataLoader((X[:0], Y_CLS[:0]))),
        ValueError,
        "train data has no rows",
    ),
    "rows differ": (dict(train=(X, Y_CLS[:5])), ValueError, "same number of rows; got 24 and 5"),
    "accuracy on regression": (
        dict(train=(X, Y_REG), loss="mse", metrics=["accuracy"]),
        ValueError,
        "metric 'accuracy' compares class labels",
    ),
    "top-k on regression": (
        dict(train=(X, Y_REG[:, 0]), loss="mse", metrics=["top_2_accuracy"]),
        ValueError,
        "top_2_accuracy",
    ),
    "optimizer=None": (dict(optimizer=None), TypeError, "optimizer to be an optimizer .* got None"),
    # a known name ("adam") builds that optimizer (issue 17); an unknown one lists the names
    "optimizer='adamm'": (
        dict(optimizer="adamm"),
        ValueError,
        "unknown optimizer 'adamm'; expected one of adam",
    ),
    "a function as the model": (
        dict(model=lambda x: x),
        TypeError,
        "model to be a gw.nn.Module .* got a function",
    ),
    "ragged X": (
        dict(train=([[1.0, 2.0], [3.0]], [0, 1])),
        ValueError,
        "train X: expected a rectangular array",
    ),
    "object X": (
        dict(train=(np.array([[1.0, None]] * 24), Y_CLS)),
        TypeError,
        "train X: expected numbers; got Python objects",
    ),
    "string X": (
        dict(train=(np.array([["1", "2"]] * 24), Y_CLS)),
        TypeError,
        "train X: expected numbers; got text",
    ),
    "string y": (
        dict(train=(X, np.array(["a", "b"] * 12))),
        TypeError,
        "train y: expected numbers",
    ),
    "string validation X": (
        dict(validation=(np.array([["1", "2"]] * 3), Y_CLS[:3])),
        TypeError,
        "validation X",
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_nonsense_is_refused_naming_the_argument(case):
    changes, error, message = case
    with pytest.raises(error, match=message):
        run(**changes)


def test_class_metrics_still_accept_labels_one_hot_rows_and_float_labels():
    run(metrics=["accuracy"])
    binary = gw.nn.Linear(2, 1, rng=0)
    run(
        model=binary,
        optimizer=gw.optim.SGD(binary.parameters(), lr=0.1),
        loss="bce_with_logits",
        train=(X, Y_CLS.astype(np.float32)[:, None]),
        metrics=["accuracy"],
    )  # 0.0 / 1.0 labels
    one_hot = np.eye(2, dtype=np.float32)[Y_CLS]
    run(train=(X, one_hot), metrics=["accuracy"])


def test_validation_is_once_per_fit_not_per_step():
    # the loss's per-call check is off inside fit (its targets were checked whole) and on
    # again afterwards
    loss = gw.nn.BCEWithLogitsLoss()
    model = gw.nn.Linear(2, 1, rng=0)
    y = (X[:, :1] > 0).astype(np.float32)
    calls = []
    original = type(loss).check_target

    def counting(self, target, where=""):
        calls.append(np.shape(target))
        return original(self, target, where)

    type(loss).check_target = counting
    try:
        gw.fit(
            model,
            (X, y),
            loss=loss,
            optimizer=gw.optim.SGD(model.parameters(), lr=0.1),
            epochs=3,
            batch_size=4,
            verbose=0,
            doctor=False,
        )
        assert calls == [(24, 1)]  # once, on the whole training targets
        with pytest.raises(
            ValueError, match=r"expected targets in \[0, 1\] .*; got 2 at row 0, column 0"
        ):
            loss(model(gw.tensor(X[:2])), gw.tensor([[2.0], [0.0]]))
    finally:
        type(loss).check_target = original
