"""Keras and PyTorch habits in ``fit``: optimizers by name, a validation split taken
from the training data, and per-row (sample and class) weights."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from .._numeric import numeric_array

#: Optimizer names accepted by ``fit(optimizer=...)``: gw.optim class and default lr.
OPTIMIZER_NAMES = {
    "adam": ("Adam", 1e-3),
    "adamw": ("AdamW", 1e-3),
    "sgd": ("SGD", 1e-2),
    "rmsprop": ("RMSprop", 1e-3),
    "adagrad": ("Adagrad", 1e-2),
    "adamax": ("Adamax", 1e-3),
    "nadam": ("NAdam", 1e-3),
    "radam": ("RAdam", 1e-3),  # (not in Keras: PyTorch's default)
    "adadelta": ("Adadelta", 1.0),  # PyTorch's: Keras's 1e-3 barely moves the weights
}


def resolve_optimizer(optimizer: Any, model: Any) -> Any:
    """An optimizer built on the model's parameters from a name such as ``"adam"``
    (Keras's defaults for the learning rate); anything else as given."""
    if not isinstance(optimizer, str):
        return optimizer
    key = optimizer.lower()
    if key not in OPTIMIZER_NAMES:
        raise ValueError(
            f"fit: unknown optimizer {optimizer!r}; expected one of {', '.join(OPTIMIZER_NAMES)} "
            "or an optimizer such as gw.optim.Adam(model.parameters(), lr=1e-3)"
        )
    from .. import optim

    name, lr = OPTIMIZER_NAMES[key]
    return getattr(optim, name)(model.parameters(), lr=lr)


def split_validation(train: Any, fraction: Any, validation: Any) -> tuple[Any, Any]:
    """``(train, validation)`` with ``fraction`` of the rows held out for validation.

    Class labels (1-D integers) are split stratified: the last ``fraction`` of each
    class's rows; other targets lose the last ``fraction`` of the rows, as in Keras.
    No shuffling, so the split is the same on every run. ``train`` is ``(X, y)`` or
    ``(X, y, row_weights)``: every array loses the held rows; the validation part is
    ``(X, y)``.
    """
    if not isinstance(fraction, (float, int)) or isinstance(fraction, bool):
        raise TypeError(f"fit: expected validation_split to be a float; got {fraction!r}")
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fit: expected 0 < validation_split < 1; got {fraction!r}")
    if validation is not None:
        raise ValueError("fit: pass validation= or validation_split=, not both")
    if not isinstance(train, tuple):
        raise TypeError(
            "fit: validation_split needs the training data as (X, y) arrays; split a "
            "DataLoader's dataset yourself and pass validation="
        )
    X, y = train[:2]
    held = np.zeros(len(X), dtype=bool)
    if y.ndim == 1 and y.dtype.kind in "iu":
        for c in np.unique(y):
            rows = np.flatnonzero(y == c)
            held[rows[len(rows) - int(round(fraction * len(rows))) :]] = True
    else:
        held[len(X) - int(round(fraction * len(X))) :] = True
    if held.all() or not held.any():
        raise ValueError(
            f"fit: validation_split={fraction} of {len(X)} rows leaves {int(held.sum())} for "
            f"validation and {int((~held).sum())} for training; both need at least one"
        )
    return tuple(a[~held] for a in train), (X[held], y[held])


def row_weights(train: Any, sample_weight: Any, class_weight: Any) -> np.ndarray | None:
    """One float32 weight per training row, Keras's: ``sample_weight[i] * class_weight[y[i]]``
    (a class missing from ``class_weight`` weighs 1); None when neither is given."""
    if sample_weight is None and class_weight is None:
        return None
    if not isinstance(train, tuple):
        raise TypeError(
            "fit: sample_weight and class_weight need the training data as (X, y) arrays; got "
            f"a {type(train).__name__}"
        )
    X, y = train
    weights = np.ones(len(X), dtype=np.float64)
    if sample_weight is not None:
        given = numeric_array(sample_weight, "fit: sample_weight")
        if given.shape not in ((len(X),), (len(X), 1)):
            raise ValueError(
                f"fit: expected sample_weight of shape ({len(X)},), one number per training "
                f"row; got {given.dtype} of shape {given.shape}"
            )
        weights *= _non_negative(given.reshape(-1).astype(np.float64), "sample_weight")
    if class_weight is not None:
        weights *= _class_weights(y, class_weight)
    return weights.astype(np.float32)


def _non_negative(w: np.ndarray, name: str) -> np.ndarray:
    bad = np.flatnonzero(~np.isfinite(w) | (w < 0))
    if bad.size:
        raise ValueError(
            f"fit: expected {name} to be finite and >= 0; row {int(bad[0])} has {w[bad[0]]}"
        )
    return w


def _class_weights(y: np.ndarray, class_weight: Any) -> np.ndarray:
    """``class_weight[label]`` for each row of class labels (integers, a 0/1 column or one-hot)."""
    if not isinstance(class_weight, dict) or not class_weight:
        raise TypeError(f"fit: expected class_weight as {{class: weight}}; got {class_weight!r}")
    if y.ndim == 2 and y.shape[1] > 1:
        labels = y.argmax(axis=1)  # one-hot rows
    else:
        flat = y.reshape(-1) if y.ndim == 2 else y
        if y.ndim > 2 or flat.dtype.kind == "f" and np.any(flat != np.round(flat)):
            raise ValueError(
                "fit: class_weight needs class labels as targets (integers, a 0/1 column or "
                f"one-hot rows); got {y.dtype} of shape {y.shape}"
            )
        labels = flat.astype(np.int64)
    table = {int(c): float(w) for c, w in class_weight.items()}
    _non_negative(np.array(list(table.values())), "class_weight")
    return np.array([table.get(int(c), 1.0) for c in labels], dtype=np.float64)


def per_row_loss(loss_fn: Any) -> Any:
    """The same loss with ``reduction="none"``, for weighting each row's loss."""
    if getattr(loss_fn, "reduction", None) is None:
        raise TypeError(
            "fit: sample_weight and class_weight need a loss that gives one value per row: a "
            "name ('cross_entropy', 'mse', ...) or a gw.nn loss (it takes reduction='none'); "
            f"got {loss_fn!r}"
        )
    per_row = copy.deepcopy(loss_fn)
    per_row.reduction = "none"
    return per_row


def weighted_mean(per_row: Any, weights: Any) -> Any:
    """Keras's weighted loss: ``sum_i w_i * loss_i / batch size``, with ``loss_i`` the mean of
    row i's values (a row of several outputs: their mean)."""
    if per_row.ndim > 1:
        per_row = per_row.mean(axis=tuple(range(1, per_row.ndim)))
    return (per_row * weights).sum() / len(weights)
