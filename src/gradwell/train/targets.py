"""Training on scaled targets (``fit(..., target_scaler=...)``), reporting in the user's units.

The loss is computed on the scaled targets (that is the point: a unit-scale
problem), so ``loss`` and ``val_loss`` are in scaled units and comparable with
each other. Metrics (``"mse"``, ``"mae"``, ``"r2"``, ...) and their ``val_``
twins are computed on predictions mapped back to the original units, against
the original targets, as scikit-learn's ``TransformedTargetRegressor`` scores.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ..autograd.tensor import Tensor
from ..data.loader import DataLoader, TensorDataset
from .metrics import Metric


def _array(t: Any) -> np.ndarray:
    return t.data if isinstance(t, Tensor) else np.asarray(t)


def training_targets(train: Any) -> np.ndarray:
    """All training targets of ``(X, y)`` arrays or a loader (one pass, its order restored)."""
    if isinstance(train, (tuple, list)) and len(train) == 2:
        return _array(train[1])
    if isinstance(train, DataLoader) and isinstance(train.dataset, TensorDataset):
        return train.dataset.arrays[1]
    epoch = getattr(train, "epoch", None)
    targets = [_array(batch[1]) for batch in train]
    if epoch is not None:
        train.epoch = epoch  # the pass taken here is not one of training's
    if not targets:
        raise ValueError("fit: target_scaler cannot be fitted: the training data has no batches")
    return np.concatenate(targets)


class ScaledTargets:
    """A loader whose batches carry scaled targets (the inputs and anything else unchanged)."""

    def __init__(self, loader: Any, scaler: Any) -> None:
        self.loader = loader
        self.scaler = scaler

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        for batch in self.loader:
            y = self.scaler.transform(_array(batch[1]))
            yield (batch[0], Tensor(y), *batch[2:])

    def __len__(self) -> int:
        return len(self.loader)

    def __getattr__(self, name: str) -> Any:  # set_epoch, state_dict, ... of the loader
        if name in ("loader", "scaler"):
            raise AttributeError(name)
        return getattr(self.loader, name)


class InOriginalUnits(Metric):
    """A metric fed scaled targets and outputs that scores them in the original units."""

    def __init__(self, metric: Metric, scaler: Any) -> None:
        self.metric = metric
        self.scaler = scaler
        self.name = metric.name

    def reset(self) -> None:
        self.metric.reset()

    def update(self, y_true: Any, y_pred: Any) -> None:
        inverse = self.scaler.inverse_transform
        with np.errstate(over="ignore", invalid="ignore"):
            self.metric.update(inverse(_array(y_true)), inverse(_array(y_pred)))

    def result(self) -> float:
        return self.metric.result()


def scale_data(data: Any, scaler: Any) -> Any:
    """``data`` ((X, y) arrays or a loader) with its targets scaled; None stays None."""
    if data is None:
        return None
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return (data[0], scaler.transform(_array(data[1])))
    return ScaledTargets(data, scaler)


def prepare(target_scaler: Any, train: Any, where: str) -> Any:
    """The target scaler, checked and fitted on the training targets unless already fitted."""
    from ..preprocessing import TargetScaler

    if not isinstance(target_scaler, TargetScaler):
        raise TypeError(
            f"{where}: target_scaler must be a gw.preprocessing.TargetScaler (e.g. "
            f"TargetScaler('standardize')) or None; got {target_scaler!r}"
        )
    if not target_scaler.is_fitted:
        target_scaler.fit(training_targets(train))
    return target_scaler
