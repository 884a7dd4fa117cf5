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


def predict(model: Any, X: Any, batch_size: int = 256, *, mc_dropout: int = 0) -> np.ndarray:
    """The model's outputs for ``X`` as a numpy array, computed in batches.

    Runs in eval mode (Dropout off, BatchNorm on running statistics) under
    ``no_grad``, and leaves every module in the mode it had before. ``X`` is an
    array (float64 becomes float32), a Tensor, or a DataLoader (its first field
    is the input). A model trained with ``fit(..., target_scaler=...)`` carries the
    fitted scaler as ``model.target_scaler``; its predictions are mapped back to the
    original units (``model.target_scaler = None`` turns that off).

    ``mc_dropout=N`` (Monte Carlo dropout) makes ``N`` passes with the Dropout
    layers sampling (everything else in eval mode) and returns them stacked, shape
    ``(N, n, ...)``: their mean is the prediction, their spread the model's
    uncertainty -- an ensemble of thinned networks for the price of one.

    >>> import numpy as np, gradwell as gw
    >>> model = gw.nn.Linear(3, 2)
    >>> gw.predict(model, np.zeros((5, 3))).shape
    (5, 2)
    >>> net = gw.nn.Sequential(gw.nn.Dropout(0.5), gw.nn.Linear(3, 2))
    >>> gw.predict(net, np.ones((5, 3)), mc_dropout=10).shape
    (10, 5, 2)
    """
    if mc_dropout:
        if not isinstance(mc_dropout, (int, np.integer)) or mc_dropout < 1:
            raise ValueError(f"predict: expected mc_dropout to be an int >= 1; got {mc_dropout!r}")
        from ..nn import Dropout

        dropouts = [m for m in model.modules() if isinstance(m, Dropout)]
        if not dropouts:
            raise ValueError("predict: mc_dropout needs a model with Dropout layers; it has none")
        with evaluating(model):
            for m in dropouts:
                m.training = True
            return np.stack([_outputs(model, X, batch_size) for _ in range(mc_dropout)])
    with evaluating(model):
        return _outputs(model, X, batch_size)


def _outputs(model: Any, X: Any, batch_size: int) -> np.ndarray:
    """The model's outputs in the modes its modules are in, in the target's units."""
    outputs = [model(batch[0]).data for batch in _batches(X, batch_size, "predict")]
    if not outputs:
        raise ValueError("predict: got no examples")
    result = np.concatenate(outputs)
    scaler = getattr(model, "target_scaler", None)
    if scaler is not None:
        with np.errstate(over="ignore"):
            result = scaler.inverse_transform(result)
    return result


def predict_proba(model: Any, X: Any, batch_size: int = 256, *, mc_dropout: int = 0) -> np.ndarray:
    """Class probabilities, shape ``(n, k)``: the softmax of the model's logits (a
    single output is a binary logit: ``[1 - p, p]``). With ``mc_dropout=N``, the
    mean of the probabilities over ``N`` Monte Carlo dropout passes.

    >>> import numpy as np, gradwell as gw
    >>> p = gw.predict_proba(gw.nn.Linear(3, 4), np.zeros((2, 3)))
    >>> p.shape, np.allclose(p.sum(axis=1), 1)
    ((2, 4), True)
    """
    logits = predict(model, X, batch_size, mc_dropout=mc_dropout)
    if not mc_dropout:
        logits = logits[None]
    logits = logits.astype(np.float64)
    if logits.shape[-1] == 1:
        p = 1.0 / (1.0 + np.exp(-logits))
        probs = np.concatenate([1.0 - p, p], axis=-1)
    else:
        z = np.exp(logits - logits.max(axis=-1, keepdims=True))
        probs = z / z.sum(axis=-1, keepdims=True)
    return probs.mean(axis=0)


def predictive_entropy(probabilities: np.ndarray) -> np.ndarray:
    """The entropy (in nats) of each row of class probabilities: 0 when certain,
    log(k) when the model cannot tell k classes apart."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-12, 1.0)
    return -(p * np.log(p)).sum(axis=-1)  # type: ignore[no-any-return]


#: Loss names accepted by ``fit`` and ``evaluate`` and the gw.nn loss class each stands for.
LOSS_NAMES = {
    "cross_entropy": "CrossEntropyLoss",
    "nll": "NLLLoss",
    "mse": "MSELoss",
    "l1": "L1Loss",
    "mae": "L1Loss",
    "huber": "HuberLoss",
    "bce_with_logits": "BCEWithLogitsLoss",
    # Keras's names (its binary cross-entropy here takes logits, like from_logits=True)
    "sparse_categorical_crossentropy": "CrossEntropyLoss",
    "binary_crossentropy": "BCEWithLogitsLoss",
    "mean_squared_error": "MSELoss",
    "mean_absolute_error": "L1Loss",
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
