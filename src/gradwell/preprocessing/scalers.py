"""The single-step scalers: linear (min-max), z-score, robust, clip and log.

Each one computes its per-column statistics with a few whole-array numpy
reductions and transforms in place on the caller's (already copied) array, so a
million-row float32 matrix is touched only a handful of times.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from ._errors import DomainError
from ._input import column_label, column_max, column_min, reduce_columns
from .base import Scaler, check_nan_policy, register

# Rows per block when centring data for the variance: big enough to amortise the
# Python loop, small enough that the float64 temporary stays in cache.
_BLOCK_ELEMENTS = 1 << 18


def _fmt(x: float) -> str:
    return f"{x:g}"


def _pair(owner: str, name: str, value: Any, lo: float, hi: float) -> tuple[float, float]:
    """Validate a (low, high) pair with lo <= low < high <= hi."""
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(
            f"{owner}: expected {name} to be a pair of numbers (low, high), got {value!r}"
        ) from None
    if not (lo <= a < b <= hi) or math.isnan(a) or math.isnan(b):
        raise ValueError(
            f"{owner}: expected {name} = (low, high) with {lo:g} <= low < high <= {hi:g}, "
            f"got {value!r}"
        )
    return a, b


def _pairs_as_tuples(params: dict[str, Any], *names: str) -> dict[str, Any]:
    """A scaler's saved parameters with the pairs ``names`` as tuples again (JSON keeps
    them as lists); anything else stays as it is, for the constructor to check."""
    return {k: tuple(v) if k in names and isinstance(v, list) else v for k, v in params.items()}


def column_quantiles(values: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    """Per-column quantiles, shape ``(len(qs), n_columns)``, float64.

    The ends 0 and 1 are the min and max, which need no partial sort; the rest are
    computed together by one partition per column on a column-major copy, which is
    far faster than partitioning along the strided axis of a row-major array.
    """
    qs = [float(q) for q in qs]
    out = np.empty((len(qs), values.shape[1]), dtype=np.float64)
    inner = [i for i, q in enumerate(qs) if 0.0 < q < 1.0]
    for i, q in enumerate(qs):
        if q <= 0.0:
            out[i] = column_min(values)
        elif q >= 1.0:
            out[i] = column_max(values)
    if inner:
        # Always a copy (a single column's transpose is already contiguous), since the
        # partition below reorders it in place.
        cols = np.array(values.T, order="C", copy=True)
        out[inner] = np.quantile(cols, [qs[i] for i in inner], axis=1, overwrite_input=True)
    return out


def column_mean_std(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and population standard deviation, accumulated in float64.

    One pass over the data shifted by its first row: the sums of ``d = x - x[0]`` and
    ``d**2`` give ``var = E[d^2] - E[d]^2`` without the cancellation of the raw
    sum-of-squares formula (the shift sits within the data), an exactly zero
    variance for a constant column, and no full-size float64 temporary (blocks).
    """
    n, d = values.shape
    shift = values[0].astype(np.float64)
    s1 = np.zeros(d, dtype=np.float64)
    s2 = np.zeros(d, dtype=np.float64)
    step = max(1, _BLOCK_ELEMENTS // max(d, 1))
    for start in range(0, n, step):
        block = values[start : start + step].astype(np.float64)
        block -= shift
        s1 += reduce_columns(np.add, block)
        s2 += np.einsum("ij,ij->j", block, block)
    mean_d = s1 / n
    var = np.maximum(s2 / n - mean_d * mean_d, 0.0)
    return shift + mean_d, np.sqrt(var)


def _inverse_spread(numerator: float, spread: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``numerator / spread`` per column, 0 where the column is (numerically) constant.

    A spread below the dtype's smallest normal number (a subnormal range, whose
    relative precision is gone and whose inverse nearly overflows) counts as
    constant too.
    """
    tiny = np.finfo(dtype).tiny
    with np.errstate(divide="ignore", over="ignore"):
        scale = numerator / np.where(spread >= tiny, spread, 1.0)
    limit = np.finfo(dtype).max
    return np.where((spread >= tiny) & np.isfinite(scale) & (np.abs(scale) < limit), scale, 0.0)


class _AffineScaler(Scaler):
    """Scalers of the form ``x * scale_ + offset_`` per column.

    A column whose spread is zero (or too small to invert in the data's dtype) gets
    ``scale_ = 0``, so every value maps to ``offset_``; the inverse maps back to the
    training constant ``constant_``.
    """

    scale_: np.ndarray
    offset_: np.ndarray
    constant_: np.ndarray

    def _set_affine(self, scale: np.ndarray, offset: np.ndarray, constant: np.ndarray) -> None:
        self.scale_ = np.asarray(scale, dtype=np.float64)
        self.offset_ = np.asarray(offset, dtype=np.float64)
        self.constant_ = np.asarray(constant, dtype=np.float64)

    def _transform_inplace(self, values: np.ndarray, names: Sequence[str] | None = None) -> None:
        dt = values.dtype
        values *= self.scale_.astype(dt)
        values += self.offset_.astype(dt)

    def _inverse_inplace(self, values: np.ndarray) -> None:
        dt = values.dtype
        flat = self.scale_ == 0
        with np.errstate(divide="ignore"):
            inv_scale = np.where(flat, 0.0, 1.0 / np.where(flat, 1.0, self.scale_))
        inv_offset = np.where(flat, self.constant_, -self.offset_ * inv_scale)
        values *= inv_scale.astype(dt)
        values += inv_offset.astype(dt)


@register
class LinearScaler(_AffineScaler):
    """Min-max scaling of each column to ``feature_range`` (default ``(-1, 1)``).

    ``x' = lo + (x - min) * (hi - lo) / (max - min)`` with ``min``/``max`` from the
    training data. Later values outside the training range map outside
    ``feature_range`` (they are not clipped; put a :class:`Clip` first for that).
    A constant column maps to the midpoint ``(lo + hi) / 2`` (0 by default).

    >>> import numpy as np
    >>> from gradwell.preprocessing import LinearScaler
    >>> LinearScaler().fit_transform(np.array([[0.0, 5.0], [10.0, 5.0]])).tolist()
    [[-1.0, 0.0], [1.0, 0.0]]
    """

    _state_arrays = ("data_min_", "data_max_", "scale_", "offset_", "constant_")

    def __init__(self, feature_range: tuple[float, float] = (-1.0, 1.0), nan_policy: str = "error"):
        self.feature_range = feature_range
        self.nan_policy = nan_policy
        self._validate_params()

    def _validate_params(self) -> None:
        super()._validate_params()
        _pair("LinearScaler", "feature_range", self.feature_range, -math.inf, math.inf)

    def spec(self) -> str:
        lo, hi = (float(v) for v in self.feature_range)
        return "linear" if (lo, hi) == (-1.0, 1.0) else f"linear({_fmt(lo)},{_fmt(hi)})"

    def _fit_values(self, values: np.ndarray, owned: bool, names: Sequence[str] | None = None):
        lo, hi = (float(v) for v in self.feature_range)
        self.data_min_ = column_min(values).astype(np.float64)
        self.data_max_ = column_max(values).astype(np.float64)
        scale = _inverse_spread(hi - lo, self.data_max_ - self.data_min_, values.dtype)
        offset = np.where(scale == 0, (lo + hi) / 2.0, lo - self.data_min_ * scale)
        self._set_affine(scale, offset, self.data_min_)

    @classmethod
    def _params_from_config(cls, params: dict[str, Any]) -> dict[str, Any]:
        return _pairs_as_tuples(params, "feature_range")


@register
class ZScoreScaler(_AffineScaler):
    """Standardise each column to zero mean and unit (population) standard deviation.

    ``x' = (x - mean) / std``. A constant column (std 0) maps to 0.

    >>> import numpy as np
    >>> from gradwell.preprocessing import ZScoreScaler
    >>> ZScoreScaler().fit_transform(np.array([[1.0], [3.0]])).ravel().tolist()
    [-1.0, 1.0]
    """

    _state_arrays = ("mean_", "std_", "scale_", "offset_", "constant_")

    def __init__(self, nan_policy: str = "error"):
        self.nan_policy = nan_policy
        self._validate_params()

    def spec(self) -> str:
        return "zscore"

    def _fit_values(self, values: np.ndarray, owned: bool, names: Sequence[str] | None = None):
        self.mean_, self.std_ = column_mean_std(values)
        scale = _inverse_spread(1.0, self.std_, values.dtype)
        self._set_affine(scale, -self.mean_ * scale, self.mean_)


@register
class RobustScaler(_AffineScaler):
    """Centre on the median and divide by the inter-quantile range (default the IQR).

    ``x' = (x - median) / (q_hi - q_lo)`` with ``quantiles=(q_lo, q_hi)`` given as
    fractions (``(0.25, 0.75)`` by default). Outliers barely move these statistics.
    If the inter-quantile range is 0 (more than half the values are equal) the full
    range ``max - min`` is used instead; a constant column maps to 0.

    >>> import numpy as np
    >>> from gradwell.preprocessing import RobustScaler
    >>> X = np.array([[1.0], [2.0], [3.0], [4.0], [1000.0]])
    >>> RobustScaler().fit_transform(X).ravel().tolist()
    [-1.0, -0.5, 0.0, 0.5, 498.5]
    """

    _state_arrays = ("center_", "spread_", "scale_", "offset_", "constant_")

    def __init__(self, quantiles: tuple[float, float] = (0.25, 0.75), nan_policy: str = "error"):
        self.quantiles = quantiles
        self.nan_policy = nan_policy
        self._validate_params()

    def _validate_params(self) -> None:
        super()._validate_params()
        _pair("RobustScaler", "quantiles", self.quantiles, 0.0, 1.0)

    def spec(self) -> str:
        lo, hi = (float(v) for v in self.quantiles)
        return "robust" if (lo, hi) == (0.25, 0.75) else f"robust(q={_fmt(lo)},{_fmt(hi)})"

    def _fit_values(self, values: np.ndarray, owned: bool, names: Sequence[str] | None = None):
        lo, hi = (float(v) for v in self.quantiles)
        q_lo, median, q_hi = column_quantiles(values, [lo, 0.5, hi])
        spread = q_hi - q_lo
        # The quantile spread can be far smaller than the distance of the extremes from
        # the median (zero, subnormal, or outliers 1e300 spreads away): where scaling by
        # it would overflow on the training data itself, the full range scales instead.
        top = column_max(values).astype(np.float64)
        bottom = column_min(values).astype(np.float64)
        reach = np.maximum(top - median, median - bottom)
        limit = np.finfo(values.dtype).max
        with np.errstate(over="ignore"):
            unusable = (spread < np.finfo(values.dtype).tiny) | (reach >= spread * limit)
        if np.any(unusable):
            spread = np.where(unusable, top - bottom, spread)
        scale = _inverse_spread(1.0, spread, values.dtype)
        self.center_ = median
        self.spread_ = spread
        self._set_affine(scale, -median * scale, median)

    @classmethod
    def _params_from_config(cls, params: dict[str, Any]) -> dict[str, Any]:
        return _pairs_as_tuples(params, "quantiles")


@register
class Clip(Scaler):
    """Hard caps: replace values below a lower bound / above an upper bound by the bound.

    Either fixed bounds, ``Clip(min=0, max=100)`` (``None`` = no bound on that side),
    or bounds fitted from the training data, ``Clip(quantiles=(0.01, 0.99))``; a
    quantile of 0 (or 1) means no bound on that side. Clipping loses information,
    so ``inverse_transform`` raises :class:`NotInvertibleError`.

    >>> import numpy as np
    >>> from gradwell.preprocessing import Clip
    >>> Clip(min=0, max=1).fit_transform(np.array([[-3.0], [0.5], [7.0]])).ravel().tolist()
    [0.0, 0.5, 1.0]
    """

    invertible: ClassVar[bool] = False
    _state_arrays = ("lower_", "upper_")

    def __init__(
        self,
        min: float | None = None,
        max: float | None = None,
        quantiles: tuple[float, float] | None = None,
        nan_policy: str = "error",
    ):
        self.min = min
        self.max = max
        self.quantiles = quantiles
        self.nan_policy = nan_policy
        self._validate_params()

    def _validate_params(self) -> None:
        check_nan_policy("Clip", self.nan_policy)
        if self.quantiles is not None:
            if self.min is not None or self.max is not None:
                raise ValueError(
                    f"Clip: expected either fixed bounds (min=, max=) or quantiles=, not both; "
                    f"got min={self.min!r}, max={self.max!r}, quantiles={self.quantiles!r}"
                )
            _pair("Clip", "quantiles", self.quantiles, 0.0, 1.0)
            return
        if self.min is None and self.max is None:
            raise ValueError(
                "Clip: expected bounds, got none: pass min= and/or max=, "
                "or quantiles=(low, high) to fit them from data"
            )
        for name in ("min", "max"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, (int, float, np.number)) or math.isnan(v)):
                raise ValueError(f"Clip: expected {name} to be a number or None, got {v!r}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"Clip: expected min <= max, got min={self.min!r} > max={self.max!r}")

    def spec(self) -> str:
        if self.quantiles is not None:
            lo, hi = self.quantiles
            return f"clip(q={_fmt(lo)},{_fmt(hi)})"
        parts = []
        if self.min is not None:
            parts.append(f"min={_fmt(self.min)}")
        if self.max is not None:
            parts.append(f"max={_fmt(self.max)}")
        return f"clip({','.join(parts)})"

    def _fit_values(self, values: np.ndarray, owned: bool, names: Sequence[str] | None = None):
        d = values.shape[1]
        if self.quantiles is None:
            lo = -math.inf if self.min is None else float(self.min)
            hi = math.inf if self.max is None else float(self.max)
            self.lower_ = np.full(d, lo)
            self.upper_ = np.full(d, hi)
            return
        q_lo, q_hi = (float(v) for v in self.quantiles)
        wanted = [q for q in (q_lo, q_hi) if 0.0 < q < 1.0]
        found = dict(zip(wanted, column_quantiles(values, wanted), strict=True)) if wanted else {}
        self.lower_ = found[q_lo] if q_lo in found else np.full(d, -math.inf)
        self.upper_ = found[q_hi] if q_hi in found else np.full(d, math.inf)

    def _transform_inplace(self, values: np.ndarray, names: Sequence[str] | None = None) -> None:
        dt = values.dtype
        # A side with no bound anywhere costs nothing: skip its pass over the data.
        if np.isfinite(self.lower_).any():
            np.maximum(values, self.lower_.astype(dt), out=values)
        if np.isfinite(self.upper_).any():
            np.minimum(values, self.upper_.astype(dt), out=values)

    @classmethod
    def _params_from_config(cls, params: dict[str, Any]) -> dict[str, Any]:
        return _pairs_as_tuples(params, "quantiles")


@register
class LogScaler(Scaler):
    """Log scaling, ``x' = log1p(x + shift)``: compresses a heavy right tail.

    ``shift`` is a number added before the log (default 0), or ``"auto"`` to fit a
    per-column shift of ``max(0, -min)`` from the training data so that negative
    columns become usable. A value with ``x + shift < 0`` raises
    :class:`DomainError` naming the column and the first bad row.

    >>> import numpy as np
    >>> from gradwell.preprocessing import LogScaler
    >>> s = LogScaler().fit(np.array([[0.0], [99.0]]))
    >>> np.round(s.transform(np.array([[9.0]])), 4).tolist()
    [[2.3026]]
    """

    _state_arrays = ("shift_",)

    def __init__(self, shift: float | str = 0.0, nan_policy: str = "error"):
        self.shift = shift
        self.nan_policy = nan_policy
        self._validate_params()

    def _validate_params(self) -> None:
        super()._validate_params()
        s = self.shift
        if s == "auto":
            return
        if isinstance(s, str) or not isinstance(s, (int, float, np.number)) or not math.isfinite(s):
            raise ValueError(
                f"LogScaler: expected shift to be a finite number or 'auto', got {s!r}"
            )

    def spec(self) -> str:
        if self.shift == "auto":
            return "log(shift=auto)"
        return "log" if float(self.shift) == 0.0 else f"log(shift={_fmt(float(self.shift))})"

    def _check_domain(
        self, values: np.ndarray, shift: np.ndarray, where: str, names: Sequence[str] | None
    ) -> None:
        if values.shape[0] == 0:
            return
        mins = column_min(values).astype(np.float64)
        bad = np.flatnonzero(mins + shift < 0)
        if bad.size == 0:
            return
        j = int(bad[0])
        col = values[:, j]
        row = int(np.argmax(col + shift[j] < 0))
        hint = (
            "use LogScaler(shift='auto') or a larger shift, or Clip(min=0) first"
            if self.shift != "auto"
            else "this value is below the training minimum; put Clip(min=...) first"
        )
        raise DomainError(
            f"{where}: log1p(x + shift) needs x + shift >= 0, got x = {col[row]} in "
            f"{column_label(j, names)} at row {row} with shift = {shift[j]:g}; {hint}"
        )

    def _fit_values(self, values: np.ndarray, owned: bool, names: Sequence[str] | None = None):
        d = values.shape[1]
        if self.shift == "auto":
            shift = np.maximum(0.0, -column_min(values).astype(np.float64))
        else:
            shift = np.full(d, float(self.shift))
        self._check_domain(values, shift, "LogScaler.fit", names)
        self.shift_ = shift

    def _fit_transform_values(self, values: np.ndarray, names: Sequence[str] | None = None):
        self._fit_values(values, owned=True, names=names)
        self._apply(values)  # the fit just checked the domain of these very values

    def _transform_inplace(self, values: np.ndarray, names: Sequence[str] | None = None) -> None:
        self._check_domain(values, self.shift_, "LogScaler.transform", names)
        self._apply(values)

    def _apply(self, values: np.ndarray) -> None:
        if np.any(self.shift_ != 0):
            values += self.shift_.astype(values.dtype)
        np.log1p(values, out=values)

    def _inverse_inplace(self, values: np.ndarray) -> None:
        np.expm1(values, out=values)
        if np.any(self.shift_ != 0):
            values -= self.shift_.astype(values.dtype)
