"""Target scaling for regression: train on unit-scale targets, predict in the user's units.

A regression target in dollars (a house price of 180,000) makes the initial mean
squared error about 1e10, and no learning rate suits it. :class:`TargetScaler`
maps the targets to about zero mean and unit spread before training and maps
predictions back afterwards, like scikit-learn's ``TransformedTargetRegressor``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from ._errors import DomainError
from ._input import column_label, column_min
from .base import Scaler, register
from .scalers import column_mean_std, column_quantiles

#: The methods, each as (forward map, inverse map, the domain it needs in words).
_METHODS: dict[str, tuple[Any, Any, str]] = {
    "standardize": (None, None, ""),
    "robust": (None, None, ""),
    "log": (np.log, np.exp, "y > 0"),
    "log1p": (np.log1p, np.expm1, "y > -1"),
}


@register
class TargetScaler(Scaler):
    """Scale regression targets to about zero mean and unit spread; invert predictions.

    ``method`` picks the map, with ``center`` and ``spread`` fitted per target
    column on the training targets only:

    * ``"standardize"``: ``z = (y - mean) / std`` (population std);
    * ``"robust"``: ``z = (y - median) / IQR`` (IQR: 75th minus 25th percentile);
    * ``"log"``: ``z = (log(y) - mean) / std`` of ``log(y)``, for positive, skewed
      targets such as prices (needs ``y > 0``);
    * ``"log1p"``: the same with ``log1p(y)`` (needs ``y > -1``; counts with zeros).

    A constant column gets spread 1. ``inverse_transform`` applies the inverse map,
    so ``inverse_transform(transform(y)) == y`` up to rounding. Targets may be 1-D
    ``(n,)`` or 2-D ``(n, k)``; the output has the input's shape.

    ``gw.fit(..., target_scaler=TargetScaler("log"))`` fits it on the training
    targets (unless already fitted), trains on the scaled targets and attaches it
    to the model as ``model.target_scaler``: ``gw.predict`` then returns
    predictions in the original units, and ``gw.save``/``gw.load`` keep it with
    the model.

    >>> import numpy as np
    >>> from gradwell.preprocessing import TargetScaler
    >>> s = TargetScaler("standardize").fit(np.array([100.0, 200.0, 300.0]))
    >>> s.transform(np.array([100.0, 300.0])).round(4).tolist()
    [-1.2247, 1.2247]
    >>> s.inverse_transform(np.array([0.0])).tolist()
    [200.0]
    """

    _state_arrays = ("center_", "spread_")
    invertible: ClassVar[bool] = True

    def __init__(self, method: str = "standardize", nan_policy: str = "error"):
        self.method = method
        self.nan_policy = nan_policy
        self._validate_params()

    def _validate_params(self) -> None:
        super()._validate_params()
        if self.method not in _METHODS:
            raise ValueError(
                f"TargetScaler: expected method to be one of {', '.join(map(repr, _METHODS))}, "
                f"got {self.method!r}"
            )

    def spec(self) -> str:
        return f"target({self.method})"

    # 1-D targets are one column; the result keeps the caller's shape.
    def fit(self, X: Any, y: Any = None) -> TargetScaler:
        super().fit(_as_column(X))
        return self

    def transform(self, X: Any) -> np.ndarray:
        return _like(X, super().transform(_as_column(X)))

    def fit_transform(self, X: Any, y: Any = None) -> np.ndarray:
        return _like(X, super().fit_transform(_as_column(X)))

    def inverse_transform(self, X: Any) -> np.ndarray:
        return _like(X, super().inverse_transform(_as_column(X)))

    # ------------------------------------------------------------ the map
    def _forward(self, values: np.ndarray, where: str, names: Sequence[str] | None) -> None:
        fn, _, domain = _METHODS[self.method]
        if fn is None:
            return
        floor = 0.0 if self.method == "log" else -1.0
        if values.shape[0] and (column_min(values) <= floor).any():
            j = int(np.flatnonzero(column_min(values) <= floor)[0])
            row = int(np.argmax(values[:, j] <= floor))
            raise DomainError(
                f"{where}: method {self.method!r} needs {domain}; got {values[row, j]} in "
                f"{column_label(j, names)} at row {row} (use method='standardize' instead)"
            )
        fn(values, out=values)

    def _fit_values(self, values: np.ndarray, owned: bool, names: Sequence[str] | None = None):
        work = values.astype(np.float64, copy=True)
        self._forward(work, "TargetScaler.fit", names)
        if self.method == "robust":
            q25, q50, q75 = column_quantiles(work, [0.25, 0.5, 0.75])
            center, spread = q50, q75 - q25
        else:
            center, spread = column_mean_std(work)
        finite = np.isfinite(spread) & (spread > 0)
        self.center_ = np.asarray(center, dtype=np.float64)
        self.spread_ = np.where(finite, spread, 1.0).astype(np.float64)

    def _transform_inplace(self, values: np.ndarray, names: Sequence[str] | None = None) -> None:
        self._forward(values, "TargetScaler.transform", names)
        dt = values.dtype
        values -= self.center_.astype(dt)
        values /= self.spread_.astype(dt)

    def _inverse_inplace(self, values: np.ndarray) -> None:
        dt = values.dtype
        values *= self.spread_.astype(dt)
        values += self.center_.astype(dt)
        inverse = _METHODS[self.method][1]
        if inverse is not None:
            with np.errstate(
                over="ignore"
            ):  # a wild prediction may overflow exp: inf, not an error
                inverse(values, out=values)


def _as_column(y: Any) -> Any:
    arr = np.asarray(y) if not hasattr(y, "columns") and not isinstance(y, dict) else y
    return arr.reshape(-1, 1) if isinstance(arr, np.ndarray) and arr.ndim == 1 else arr


def _like(y: Any, values: np.ndarray) -> np.ndarray:
    return values.reshape(-1) if np.ndim(y) == 1 else values
