"""Metrics: functions of (y_true, y_pred), and accumulators for whole epochs.

Each metric is a plain function ``metric(y_true, y_pred) -> float`` and, for
``fit``, an accumulator (:class:`Metric`) that sums per-batch statistics so the
epoch value is exact over every example (not an average of batch averages).
Sums are kept in float64. Arguments may be numpy arrays, Tensors or lists.

Classification predictions are scores with one column per class (logits or
probabilities; the predicted class is the argmax), or one score per example
for binary problems (probabilities, thresholded at 0.5; ``fit`` uses 0 when
the loss takes logits), or integer class labels.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np


def _arr(a: Any) -> np.ndarray:
    return np.asarray(getattr(a, "data", a))


def _pair(y_true: Any, y_pred: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Targets and predictions with the same shape (a column vector meets a vector)."""
    t, p = _arr(y_true), _arr(y_pred)
    if t.shape != p.shape:
        if t.size == p.size and t.shape[:1] == p.shape[:1]:
            t = t.reshape(p.shape)
        else:
            raise ValueError(
                f"{name}: y_true and y_pred must have the same shape; got {t.shape} and {p.shape}"
            )
    if len(t) == 0:
        raise ValueError(f"{name}: got no examples")
    return t, p


def _predicted_labels(y_pred: np.ndarray, threshold: float) -> np.ndarray:
    if y_pred.ndim == 2 and y_pred.shape[1] > 1:
        return y_pred.argmax(axis=1)
    flat = y_pred.reshape(len(y_pred))
    if flat.dtype.kind in "iub":
        return flat
    return flat > threshold


def _true_labels(y_true: np.ndarray, n: int, name: str) -> np.ndarray:
    if y_true.ndim == 2 and y_true.shape[1] > 1:  # one-hot or class probabilities
        return y_true.argmax(axis=1)
    if y_true.size != n:
        raise ValueError(f"{name}: expected {n} labels; got shape {y_true.shape}")
    return y_true.reshape(n)


def _correct(y_true: Any, y_pred: Any, threshold: float) -> tuple[int, int]:
    p = _arr(y_pred)
    if len(p) == 0:
        raise ValueError("accuracy: got no examples")
    t = _true_labels(_arr(y_true), len(p), "accuracy")
    return int(np.count_nonzero(_predicted_labels(p, threshold) == t)), len(p)


def _top_k_correct(y_true: Any, y_pred: Any, k: int) -> tuple[int, int]:
    p = _arr(y_pred)
    if p.ndim != 2:
        raise ValueError(
            f"top_k_accuracy: expected scores of shape (n, classes); got shape {p.shape}"
        )
    t = _true_labels(_arr(y_true), len(p), "top_k_accuracy")
    if k >= p.shape[1]:
        return len(p), len(p)
    # The true class is in the top k exactly when fewer than k classes score higher.
    true_score = np.take_along_axis(p, t.reshape(-1, 1).astype(np.intp), axis=1)
    higher = np.count_nonzero(p > true_score, axis=1)
    return int(np.count_nonzero(higher < k)), len(p)


def accuracy(y_true: Any, y_pred: Any, threshold: float = 0.5) -> float:
    """Fraction of examples whose predicted class is the true class.

    >>> accuracy([0, 1, 2], [[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.5, 0.4, 0.1]])
    0.6666666666666666
    """
    correct, n = _correct(y_true, y_pred, threshold)
    return correct / n


def top_k_accuracy(y_true: Any, y_pred: Any, k: int = 5) -> float:
    """Fraction of examples whose true class is among the ``k`` highest scores.

    Ties count in the true class's favour (it is in the top k unless k classes
    score strictly higher).

    >>> top_k_accuracy([2, 0], [[0.1, 0.5, 0.4], [0.2, 0.3, 0.5]], k=2)
    0.5
    """
    correct, n = _top_k_correct(y_true, y_pred, k)
    return correct / n


def mse(y_true: Any, y_pred: Any) -> float:
    """Mean squared error: mean((y_pred - y_true)^2)."""
    t, p = _pair(y_true, y_pred, "mse")
    return float(np.mean(np.square(p.astype(np.float64) - t)))


def rmse(y_true: Any, y_pred: Any) -> float:
    """Root mean squared error: sqrt(mse)."""
    return float(np.sqrt(mse(y_true, y_pred)))


def mae(y_true: Any, y_pred: Any) -> float:
    """Mean absolute error: mean(|y_pred - y_true|)."""
    t, p = _pair(y_true, y_pred, "mae")
    return float(np.mean(np.abs(p.astype(np.float64) - t)))


def _r2_result(res: np.ndarray, tot: np.ndarray) -> float:
    """Mean over outputs of 1 - SS_res / SS_tot (scikit-learn's convention for SS_tot = 0)."""
    safe_tot = np.where(tot > 0, tot, 1.0)
    scores = np.where(tot > 0, 1.0 - res / safe_tot, np.where(res == 0, 1.0, 0.0))
    return float(np.mean(scores))


def r2(y_true: Any, y_pred: Any) -> float:
    """Coefficient of determination: 1 - sum((y - y_pred)^2) / sum((y - mean(y))^2).

    Averaged over outputs for 2-D targets. A constant target scores 1 when
    predicted exactly and 0 otherwise (as scikit-learn does).

    >>> r2([1.0, 2.0, 3.0], [1.0, 2.0, 4.0])
    0.5
    """
    t, p = _pair(y_true, y_pred, "r2")
    t = t.astype(np.float64).reshape(len(t), -1)
    p = p.astype(np.float64).reshape(len(p), -1)
    res = np.sum(np.square(t - p), axis=0)
    tot = np.sum(np.square(t - t.mean(axis=0)), axis=0)
    return _r2_result(res, tot)


# ---------------------------------------------------------------- accumulators
class Metric:
    """A metric accumulated over batches: ``reset()``, ``update(y_true, y_pred)``, ``result()``.

    ``name`` is the key under which ``fit`` logs it (``val_`` + name on validation data).
    """

    name = "metric"

    def reset(self) -> None:
        raise NotImplementedError

    def update(self, y_true: Any, y_pred: Any) -> None:
        raise NotImplementedError

    def result(self) -> float:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class _Ratio(Metric):
    def reset(self) -> None:
        self.hits = 0
        self.count = 0

    def result(self) -> float:
        return self.hits / self.count if self.count else float("nan")


class Accuracy(_Ratio):
    """Accumulated :func:`accuracy`; ``threshold`` applies to one-score predictions."""

    def __init__(self, threshold: float = 0.5, name: str = "accuracy") -> None:
        self.threshold = threshold
        self.name = name
        self.reset()

    def update(self, y_true: Any, y_pred: Any) -> None:
        hits, n = _correct(y_true, y_pred, self.threshold)
        self.hits += hits
        self.count += n


class TopKAccuracy(_Ratio):
    """Accumulated :func:`top_k_accuracy`."""

    def __init__(self, k: int = 5, name: str | None = None) -> None:
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"TopKAccuracy: expected k to be a positive int; got {k!r}")
        self.k = k
        self.name = name or f"top_{k}_accuracy"
        self.reset()

    def update(self, y_true: Any, y_pred: Any) -> None:
        hits, n = _top_k_correct(y_true, y_pred, self.k)
        self.hits += hits
        self.count += n


class _ErrorSum(Metric):
    """Sums of squared or absolute errors over every predicted value."""

    power = 2
    root = False

    def __init__(self, name: str) -> None:
        self.name = name
        self.reset()

    def reset(self) -> None:
        self.total = 0.0
        self.count = 0

    def update(self, y_true: Any, y_pred: Any) -> None:
        t, p = _pair(y_true, y_pred, self.name)
        err = p.astype(np.float64) - t
        self.total += float(np.sum(np.square(err) if self.power == 2 else np.abs(err)))
        self.count += err.size

    def result(self) -> float:
        if not self.count:
            return float("nan")
        mean = self.total / self.count
        return float(np.sqrt(mean)) if self.root else mean


class MeanSquaredError(_ErrorSum):
    """Accumulated :func:`mse`."""

    def __init__(self, name: str = "mse") -> None:
        super().__init__(name)


class RootMeanSquaredError(_ErrorSum):
    """Accumulated :func:`rmse`."""

    root = True

    def __init__(self, name: str = "rmse") -> None:
        super().__init__(name)


class MeanAbsoluteError(_ErrorSum):
    """Accumulated :func:`mae`."""

    power = 1

    def __init__(self, name: str = "mae") -> None:
        super().__init__(name)


class R2Score(Metric):
    """Accumulated :func:`r2`, exact over all batches.

    Batches are merged with Chan et al.'s pairwise update of the mean and the sum
    of squared deviations, which stays accurate where sum(y^2) - n*mean^2 would cancel.
    """

    def __init__(self, name: str = "r2") -> None:
        self.name = name
        self.reset()

    def reset(self) -> None:
        self.n = 0
        self.mean: np.ndarray | float = 0.0
        self.m2: np.ndarray | float = 0.0
        self.res: np.ndarray | float = 0.0

    def update(self, y_true: Any, y_pred: Any) -> None:
        t, p = _pair(y_true, y_pred, self.name)
        t = t.astype(np.float64).reshape(len(t), -1)
        p = p.astype(np.float64).reshape(len(p), -1)
        nb = len(t)
        mean_b = t.mean(axis=0)
        m2_b = np.sum(np.square(t - mean_b), axis=0)
        n = self.n + nb
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (nb / n)
        self.m2 = self.m2 + m2_b + np.square(delta) * (self.n * nb / n)
        self.res = self.res + np.sum(np.square(t - p), axis=0)
        self.n = n

    def result(self) -> float:
        if not self.n:
            return float("nan")
        return _r2_result(np.asarray(self.res), np.asarray(self.m2))


class MeanMetric(Metric):
    """A user function ``fn(y_true, y_pred) -> float`` averaged over batches, weighted by size."""

    def __init__(self, fn: Callable[[Any, Any], Any], name: str | None = None) -> None:
        self.fn = fn
        self.name = name or str(getattr(fn, "__name__", "metric"))
        self.reset()

    def reset(self) -> None:
        self.total = 0.0
        self.count = 0

    def update(self, y_true: Any, y_pred: Any) -> None:
        n = len(_arr(y_pred))
        self.total += float(self.fn(y_true, y_pred)) * n
        self.count += n

    def result(self) -> float:
        return self.total / self.count if self.count else float("nan")


_BY_NAME: dict[str, Callable[[], Metric]] = {
    "accuracy": Accuracy,
    "acc": Accuracy,
    "top_k_accuracy": TopKAccuracy,
    "mse": MeanSquaredError,
    "rmse": RootMeanSquaredError,
    "mae": MeanAbsoluteError,
    "r2": R2Score,
}
_FUNCTIONS: dict[Any, str] = {
    accuracy: "accuracy",
    top_k_accuracy: "top_k_accuracy",
    mse: "mse",
    rmse: "rmse",
    mae: "mae",
    r2: "r2",
}


def get(metric: Any, logits: bool = False) -> Metric:
    """An accumulator for ``metric``: a name, one of this module's functions, a
    :class:`Metric`, or any callable ``fn(y_true, y_pred) -> float``.

    Names: accuracy, top_k_accuracy (k=5) or top_<k>_accuracy, mse, rmse, mae, r2.
    With ``logits`` (the loss takes logits), binary accuracy thresholds at 0.
    """
    if isinstance(metric, Metric):
        return metric
    name = _FUNCTIONS.get(metric, metric) if callable(metric) else metric
    if isinstance(name, str):
        m = re.fullmatch(r"top_(\d+)_accuracy", name)
        if m:
            return TopKAccuracy(int(m.group(1)))
        if name in ("accuracy", "acc"):
            return Accuracy(threshold=0.0 if logits else 0.5, name="accuracy")
        if name in _BY_NAME:
            return _BY_NAME[name]()
        known = ", ".join(sorted(set(_BY_NAME) - {"acc"}) + ["top_<k>_accuracy"])
        raise ValueError(f"unknown metric {name!r}; expected one of {known}, or a callable")
    if callable(metric):
        return MeanMetric(metric)
    raise TypeError(f"a metric is a name, a Metric or a callable; got {type(metric).__name__}")


__all__ = [
    "Accuracy",
    "MeanAbsoluteError",
    "MeanMetric",
    "MeanSquaredError",
    "Metric",
    "R2Score",
    "RootMeanSquaredError",
    "TopKAccuracy",
    "accuracy",
    "get",
    "mae",
    "mse",
    "r2",
    "rmse",
    "top_k_accuracy",
]
