"""fit's arguments and data, checked once before the first step.

Each check says what was expected, what was received, and which argument it was;
none runs inside the training loop.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._numeric import numeric_array
from ..data.loader import DataLoader, TensorDataset
from .metrics import Metric, _Ratio


def check_arguments(model: Any, optimizer: Any, epochs: Any, initial_epoch: Any) -> None:
    """The model, the optimizer and the epoch numbers are what fit needs."""
    if not (callable(model) and hasattr(model, "train") and hasattr(model, "parameters")):
        raise TypeError(
            "fit: expected model to be a gw.nn.Module (with parameters to train); got "
            f"{_kind(model)}"
        )
    if not (hasattr(optimizer, "step") and hasattr(optimizer, "param_groups")):
        raise TypeError(
            "fit: expected optimizer to be an optimizer built on the model's parameters, e.g. "
            f"optimizer=gw.optim.Adam(model.parameters(), lr=1e-3); got {_kind(optimizer)}"
        )
    if not _is_int(epochs) or epochs < 0:
        raise ValueError(f"fit: expected epochs to be an int >= 0; got {epochs!r}")
    if not _is_int(initial_epoch) or not 0 <= initial_epoch <= epochs:
        raise ValueError(
            f"fit: expected 0 <= initial_epoch <= epochs ({epochs}); got {initial_epoch!r}"
        )


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _kind(value: Any) -> str:
    if value is None or isinstance(value, (str, int, float)):
        return repr(value)
    return f"a {type(value).__name__}"


def arrays(data: Any, what: str) -> Any:
    """``(X, y)`` given as arrays, as numeric numpy arrays with as many rows, at least one;
    other data (a DataLoader, any iterable of batches) as it is."""
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        return data
    x = numeric_array(data[0], f"fit: {what} X")
    y = numeric_array(data[1], f"fit: {what} y")
    for name, a in (("X", x), ("y", y)):
        if a.ndim == 0:
            raise ValueError(f"fit: {what} {name} must have one row per example; got a scalar")
    if len(x) != len(y):
        raise ValueError(
            f"fit: {what} X and y must have the same number of rows; got {len(x)} and {len(y)}"
        )
    if len(x) == 0:
        raise ValueError(f"fit: {what} data has no rows (X has shape {x.shape})")
    return x, y


def check_batches(loader: Any, what: str) -> None:
    """A training or validation set with at least one batch."""
    if len(loader) == 0:
        raise ValueError(f"fit: {what} data has no rows, so there is nothing to train on")


def check_targets(
    loss_fn: Any, metrics: list[Metric], train_loader: Any, val_loader: Any = None
) -> None:
    """Check every target once, when the data is held in arrays: the loss's range
    (``check_target``) and whether class metrics fit them. A loss whose targets are all
    checked skips its check on each call (``trust_targets``)."""
    loaders = {"train": train_loader}
    if val_loader is not None:
        loaders["validation"] = val_loader
    targets = {}
    for what, loader in loaders.items():
        dataset = getattr(loader, "dataset", None) if isinstance(loader, DataLoader) else None
        if isinstance(dataset, TensorDataset) and len(dataset.arrays) >= 2:
            targets[what] = dataset.arrays[1]
    check = getattr(loss_fn, "check_target", None)
    for what, y in targets.items():
        if check is not None:
            check(y, f"fit: {what} y ({type(loss_fn).__name__})")
        for metric in metrics:
            if isinstance(metric, _Ratio):
                _check_class_labels(y, metric.name, what)
    trust = getattr(loss_fn, "trust_targets", None)
    if trust is not None:
        trust(check is not None and len(targets) == len(loaders))


def _check_class_labels(y: np.ndarray, metric: str, what: str) -> None:
    """Class metrics compare labels: a column of targets must hold whole numbers."""
    if y.dtype.kind != "f" or (y.ndim == 2 and y.shape[1] > 1) or not y.size:
        return  # integer labels, or one-hot / probability rows
    fractional = np.flatnonzero(y.reshape(-1) != np.round(y.reshape(-1)))
    if fractional.size:
        i = int(fractional[0])
        raise ValueError(
            f"fit: metric {metric!r} compares class labels, but {what} y holds "
            f"{float(y.reshape(-1)[i]):g} at row {i}, which is not a class (a regression "
            "target?); use 'mse', 'mae' or 'r2' for continuous targets"
        )


def release(loss_fn: Any) -> None:
    """After fit: the loss checks its targets on every call again."""
    trust = getattr(loss_fn, "trust_targets", None)
    if trust is not None:
        trust(False)
