"""Keras and PyTorch habits in ``fit``: optimizers by name, a validation split taken
from the training data, and class weights."""

from __future__ import annotations

from typing import Any

import numpy as np

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
    No shuffling, so the split is the same on every run.
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
    X, y = train
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
    return (X[~held], y[~held]), (X[held], y[held])


def weighted_loss(loss: Any, class_weight: Any) -> Any:
    """The loss named ``loss`` with per-class weights (a dict {class index: weight})."""
    if not isinstance(class_weight, dict) or not class_weight:
        raise TypeError(f"fit: expected class_weight as {{class: weight}}; got {class_weight!r}")
    from ..nn import CrossEntropyLoss
    from .predict import LOSS_NAMES

    if not (isinstance(loss, str) and LOSS_NAMES.get(loss) == "CrossEntropyLoss"):
        raise ValueError(
            "fit: class_weight works with a cross-entropy loss given by name (loss="
            f"'cross_entropy'); got {loss!r}; pass gw.nn.CrossEntropyLoss(weight=...) instead"
        )
    classes = max(int(c) for c in class_weight) + 1
    weight = np.ones(classes, dtype=np.float32)
    for c, w in class_weight.items():
        weight[int(c)] = float(w)
    return CrossEntropyLoss(weight=weight)
