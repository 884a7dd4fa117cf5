"""Inference: predictions and evaluation in eval mode, without recording a graph."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from .._numeric import numeric_array
from ..autograd.engine import no_grad
from ..autograd.tensor import Tensor
from ..data.loader import DataLoader
from . import metrics as _metrics


@contextmanager
def evaluating(model: Any) -> Iterator[None]:
    """Eval mode under ``no_grad`` for the block; every module's previous mode comes back."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with no_grad():
            yield
    finally:
        for m, training in modes:
            m.training = training


def _batches(data: Any, batch_size: int, what: str) -> DataLoader:
    if isinstance(data, DataLoader):
        return data
    if isinstance(data, tuple):
        return DataLoader(data, batch_size=batch_size)
    if isinstance(data, (list, np.ndarray, Tensor)) or hasattr(data, "__array__"):
        return DataLoader((numeric_array(data, f"{what}: X"),), batch_size=batch_size)
    raise TypeError(
        f"{what}: expected an array, a tuple of arrays or a DataLoader; got {type(data).__name__}"
    )


def predict(model: Any, X: Any, batch_size: int = 256) -> np.ndarray:
    """The model's outputs for ``X`` as a numpy array, computed in batches.

    Runs in eval mode (Dropout off, BatchNorm on running statistics) under
    ``no_grad``, and leaves every module in the mode it had before. ``X`` is an
    array (float64 becomes float32), a Tensor, or a DataLoader (its first field
    is the input). A model trained with ``fit(..., target_scaler=...)`` carries the
    fitted scaler as ``model.target_scaler``; its predictions are mapped back to the
    original units (``model.target_scaler = None`` turns that off).

    >>> import numpy as np, gradwell as gw
    >>> model = gw.nn.Linear(3, 2)
    >>> gw.predict(model, np.zeros((5, 3))).shape
    (5, 2)
    """
    outputs = []
    with evaluating(model):
        for batch in _batches(X, batch_size, "predict"):
            outputs.append(model(batch[0]).data)
    if not outputs:
        raise ValueError("predict: got no examples")
    result = np.concatenate(outputs)
    scaler = getattr(model, "target_scaler", None)
    if scaler is not None:
        with np.errstate(over="ignore"):
            result = scaler.inverse_transform(result)
    return result


#: Loss names accepted by ``fit`` and ``evaluate`` and the gw.nn loss class each stands for.
LOSS_NAMES = {
    "cross_entropy": "CrossEntropyLoss",
    "nll": "NLLLoss",
    "mse": "MSELoss",
    "l1": "L1Loss",
    "mae": "L1Loss",
    "huber": "HuberLoss",
    "bce_with_logits": "BCEWithLogitsLoss",
}


def resolve_loss(loss: Any, where: str) -> Any:
    """A loss callable from a callable or a name such as \"cross_entropy\"."""
    if isinstance(loss, str):
        if loss not in LOSS_NAMES:
            raise ValueError(
                f"{where}: unknown loss {loss!r}; expected one of {', '.join(LOSS_NAMES)} or a "
                "callable loss(outputs, targets) such as gw.nn.CrossEntropyLoss()"
            )
        from .. import nn

        return getattr(nn, LOSS_NAMES[loss])()
    if not callable(loss):
        raise TypeError(f"{where}: loss must be callable as loss(outputs, targets); got {loss!r}")
    return loss


def evaluate(
    model: Any,
    data: Any,
    *,
    loss: Any = None,
    metrics: Any = (),
    batch_size: int = 256,
    prefix: str = "",
) -> dict[str, float]:
    """Loss and metrics of ``model`` on ``data`` ((X, y) arrays or a DataLoader), in eval mode.

    The loss is the mean over examples (per-batch means weighted by batch size,
    which is exact for a loss with ``reduction="mean"``); metrics are exact over all
    examples. Keys are ``prefix`` + ``"loss"`` and + each metric's name. For a model
    with a ``target_scaler`` (see :func:`fit`), ``data`` holds targets in the original
    units: the loss is computed on scaled targets, the metrics in the original units.

    >>> import numpy as np, gradwell as gw                            # doctest: +SKIP
    >>> gw.evaluate(model, (X_test, y_test), loss=gw.nn.CrossEntropyLoss(),
    ...             metrics=["accuracy"])                               # doctest: +SKIP
    {'loss': 0.08, 'accuracy': 0.975}
    """
    accumulators = [_metrics.get(m) for m in metrics]
    loss_fn = None if loss is None else resolve_loss(loss, "evaluate")
    loader: Any = _batches(data, batch_size, "evaluate")
    scaler = getattr(model, "target_scaler", None)
    if scaler is not None:  # as in fit: the loss on scaled targets, metrics in original units
        from .targets import InOriginalUnits, ScaledTargets

        loader = ScaledTargets(loader, scaler)
        accumulators = [InOriginalUnits(m, scaler) for m in accumulators]
    return _evaluate(model, loader, loss_fn, accumulators, prefix)


def _evaluate(
    model: Any, loader: Any, loss_fn: Any, accumulators: list[_metrics.Metric], prefix: str
) -> dict[str, float]:
    for m in accumulators:
        m.reset()
    total, seen = 0.0, 0
    with evaluating(model):
        for batch in loader:
            if len(batch) < 2:
                raise ValueError(
                    f"evaluation batches need (inputs, targets); got {len(batch)} field(s)"
                )
            inputs, targets = batch[0], batch[1]
            outputs = model(inputs)
            n = len(inputs)
            if loss_fn is not None:
                total += loss_fn(outputs, targets).item() * n
            seen += n
            for m in accumulators:
                m.update(targets.data, outputs.data)
    if not seen:
        raise ValueError("evaluation data has no examples")
    logs: dict[str, float] = {}
    if loss_fn is not None:
        logs[prefix + "loss"] = total / seen
    for m in accumulators:
        logs[prefix + m.name] = m.result()
    return logs


def fresh_copy(metric: _metrics.Metric) -> _metrics.Metric:
    """An independent accumulator like ``metric`` (training and validation each need one)."""
    return copy.deepcopy(metric)
