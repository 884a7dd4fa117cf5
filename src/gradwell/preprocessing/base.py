"""The scaler protocol shared by every step, chain and column scaler.

A scaler is fitted on training data only and then applies exactly the same
per-column transform to any later data. Statistics are kept in float64; the data
keeps its own precision (float32 stays float32, float64 stays float64).

Scalers follow scikit-learn's estimator conventions (constructor arguments are
stored unchanged, ``get_params``/``set_params``, fitted state in attributes ending
in ``_``) so that ``sklearn.base.clone`` and ``sklearn.pipeline.Pipeline`` accept
them, but nothing here imports scikit-learn.
"""

from __future__ import annotations

import inspect
import json
import warnings
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from ._errors import ColumnMismatchError, NotFittedError, NotInvertibleError
from ._input import (
    Matrix,
    as_matrix,
    check_finite,
    column_label,
    decode_floats,
    encode_floats,
    nonfinite_columns,
    require_rows,
)

CONFIG_FORMAT = "gradwell.preprocessing"
CONFIG_VERSION = 1
NAN_POLICIES = ("error", "median", "mean")

_REGISTRY: dict[str, type[Scaler]] = {}


def register(cls: type[Scaler]) -> type[Scaler]:
    """Make a scaler class rebuildable by :func:`from_config` under its class name."""
    _REGISTRY[cls.__name__] = cls
    return cls


def check_nan_policy(owner: str, nan_policy: Any, allow_none: bool = False) -> None:
    if nan_policy is None and allow_none:
        return
    if nan_policy not in NAN_POLICIES:
        raise ValueError(
            f"{owner}: expected nan_policy to be one of {', '.join(map(repr, NAN_POLICIES))}"
            + (" or None" if allow_none else "")
            + f", got {nan_policy!r}"
        )


class Scaler:
    """Base class of gradwell's feature scalers.

    Subclasses implement ``_fit_values`` (statistics from a finite 2-D array) and
    ``_transform_inplace`` (apply them), and ``_inverse_inplace`` when invertible.
    The public methods here handle input coercion, missing values, column checks
    and configuration.

    Missing values follow ``nan_policy``: ``"error"`` (default) raises on NaN/inf
    naming the column and first bad row; ``"median"``/``"mean"`` replace every
    non-finite value (NaN, +inf, -inf) by the column's training median/mean of its
    finite values, at fit and at transform time.
    """

    #: Names of fitted array attributes saved in the config (besides the common ones).
    _state_arrays: ClassVar[tuple[str, ...]] = ()
    #: Whether inverse_transform can undo the transform exactly.
    invertible: ClassVar[bool] = True
    #: Whether the scaler treats every column the same way (may be a Pipeline step).
    columnwise: ClassVar[bool] = True

    nan_policy: str = "error"

    # ----------------------------------------------------------------- parameters
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [
            p.name
            for p in sig.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor arguments by name (scikit-learn convention)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> Scaler:
        """Set constructor arguments by name; they take effect at the next ``fit``."""
        valid = self._param_names()
        for name in params:
            if name not in valid:
                raise ValueError(
                    f"{type(self).__name__}.set_params: expected one of {valid}, got {name!r}"
                )
        for name, value in params.items():
            setattr(self, name, value)
        self._validate_params()
        return self

    def _validate_params(self) -> None:
        check_nan_policy(type(self).__name__, self.nan_policy)

    def __repr__(self) -> str:
        sig = inspect.signature(type(self).__init__)
        parts = []
        for name in self._param_names():
            value = getattr(self, name)
            default = sig.parameters[name].default
            if default is inspect.Parameter.empty or not _same(value, default):
                parts.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(parts)})"

    def spec(self) -> str:
        """Short readable form used in chain strings, e.g. ``"linear"`` or ``"clip(q=0,0.99)"``."""
        return type(self).__name__

    # ---------------------------------------------------------------- fitted state
    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "n_features_in_")

    def _check_is_fitted(self, what: str) -> None:
        if not self.is_fitted:
            raise NotFittedError(
                f"{type(self).__name__}.{what}: this scaler is not fitted yet; "
                f"call fit(X) on training data first"
            )

    def _effective_nan_policy(self) -> str:
        return self.nan_policy

    def _remember_input(self, m: Matrix) -> None:
        self.n_features_in_ = int(m.values.shape[1])
        if m.names is not None:
            self.feature_names_in_ = tuple(m.names)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_

    # ------------------------------------------------------------ missing values
    def _fit_clean(
        self,
        values: np.ndarray,
        owned: bool,
        where: str,
        names: Sequence[str] | None = None,
        index: Sequence[int] | None = None,
    ) -> np.ndarray:
        """Learn imputation values (if any) and return ``values`` free of NaN/inf."""
        policy = self._effective_nan_policy()
        if policy == "error":
            self.fill_: np.ndarray | None = None
            check_finite(values, where, names, index)
            return values
        bad = nonfinite_columns(values)
        if bad.size == 0:
            stats = np.median(values, axis=0) if policy == "median" else values.mean(axis=0)
            self.fill_ = np.asarray(stats, dtype=np.float64)
            return values
        work = values.astype(np.float64, copy=True)
        work[~np.isfinite(work)] = np.nan
        with warnings.catch_warnings():
            # An all-NaN column warns here; it gets a clear error just below instead.
            warnings.simplefilter("ignore", RuntimeWarning)
            fill = np.nanmedian(work, axis=0) if policy == "median" else np.nanmean(work, axis=0)
        empty = np.flatnonzero(np.isnan(fill))
        if empty.size:
            j = int(empty[0])
            raise ValueError(
                f"{where}: cannot impute {column_label(j, names, index)} with its {policy}: "
                f"expected at least one finite value, got none"
            )
        self.fill_ = fill
        if not owned:
            values = values.copy()
        self._impute_inplace(values, bad)
        return values

    def _impute_inplace(self, values: np.ndarray, cols: np.ndarray) -> None:
        fill = self.fill_
        assert fill is not None, "imputation needs fitted fill values"
        for j in cols:
            col = values[:, j]
            col[~np.isfinite(col)] = fill[j]

    def _clean_inplace(
        self,
        values: np.ndarray,
        where: str,
        names: Sequence[str] | None = None,
        index: Sequence[int] | None = None,
    ) -> None:
        """At transform time: impute with the training statistics, or raise on NaN/inf."""
        if getattr(self, "fill_", None) is None:
            check_finite(values, where, names, index)
        else:
            self._impute_inplace(values, nonfinite_columns(values))

    # ------------------------------------------------------------ column checks
    def _aligned(self, X: Any, where: str) -> Matrix:
        """Coerce ``X`` for transform and order its columns like at fit time."""
        m = as_matrix(X, where)
        fit_names = getattr(self, "feature_names_in_", None)
        if m.names is not None and fit_names is not None and m.names != fit_names:
            missing = [n for n in fit_names if n not in m.names]
            extra = [n for n in m.names if n not in fit_names]
            if missing:
                raise ColumnMismatchError(
                    f"{where}: expected the columns seen at fit {list(fit_names)}, "
                    f"but column {missing[0]!r} is missing"
                    + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
                )
            if extra:
                raise ColumnMismatchError(
                    f"{where}: expected the columns seen at fit {list(fit_names)}, "
                    f"got unexpected column {extra[0]!r}"
                )
            order = [m.names.index(n) for n in fit_names]
            return Matrix(np.ascontiguousarray(m.values[:, order]), fit_names, owned=True)
        if m.values.shape[1] != self.n_features_in_:
            raise ColumnMismatchError(
                f"{where}: expected {self.n_features_in_} columns (as at fit), "
                f"got {m.values.shape[1]}"
            )
        if m.names is None and fit_names is not None:
            m.names = fit_names
        return m

    # ------------------------------------------------------------------ public API
    def fit(self, X: Any, y: Any = None) -> Scaler:
        """Learn the per-column statistics from training data ``X``; returns ``self``."""
        where = f"{type(self).__name__}.fit"
        self._validate_params()
        m = as_matrix(X, where)
        require_rows(m.values, where)
        values = self._fit_clean(m.values, m.owned, where, m.names)
        self._fit_values(values, owned=m.owned or values is not m.values, names=m.names)
        self._remember_input(m)
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Apply the fitted transform; returns a new float array (``X`` is left untouched)."""
        where = f"{type(self).__name__}.transform"
        self._check_is_fitted("transform")
        m = self._aligned(X, where)
        values = m.values if m.owned else m.values.copy()
        self._clean_inplace(values, where, m.names)
        self._transform_inplace(values, names=m.names)
        return values

    def fit_transform(self, X: Any, y: Any = None) -> np.ndarray:
        """``fit(X)`` then ``transform(X)``, sharing one copy of the data."""
        where = f"{type(self).__name__}.fit_transform"
        self._validate_params()
        m = as_matrix(X, where)
        require_rows(m.values, where)
        values = m.values if m.owned else m.values.copy()
        values = self._fit_clean(values, True, where, m.names)
        self._fit_transform_values(values, names=m.names)
        self._remember_input(m)
        return values

    def inverse_transform(self, X: Any) -> np.ndarray:
        """Map transformed values back to the original units (where the transform allows)."""
        where = f"{type(self).__name__}.inverse_transform"
        self._check_is_fitted("inverse_transform")
        self._check_invertible(where)
        m = self._aligned(X, where)
        values = m.values if m.owned else m.values.copy()
        self._inverse_inplace(values)
        return values

    def get_feature_names_out(self, input_features: Sequence[str] | None = None) -> np.ndarray:
        """Output column names (scikit-learn convention): the same as the input's."""
        if input_features is not None:
            return np.asarray([str(n) for n in input_features], dtype=object)
        self._check_is_fitted("get_feature_names_out")
        names = getattr(self, "feature_names_in_", None)
        if names is None:
            names = tuple(f"x{j}" for j in range(self.n_features_in_))
        return np.asarray(names, dtype=object)

    # ---------------------------------------------------------- subclass hooks
    def _fit_values(
        self, values: np.ndarray, owned: bool, names: Sequence[str] | None = None
    ) -> None:
        raise NotImplementedError

    def _transform_inplace(self, values: np.ndarray, names: Sequence[str] | None = None) -> None:
        raise NotImplementedError

    def _inverse_inplace(self, values: np.ndarray) -> None:
        raise NotImplementedError

    def _fit_transform_values(self, values: np.ndarray, names: Sequence[str] | None = None) -> None:
        self._fit_values(values, owned=True, names=names)
        self._transform_inplace(values, names=names)

    def _check_invertible(self, where: str) -> None:
        if not self.invertible:
            raise NotInvertibleError(
                f"{where}: {self.spec()} is not invertible (values beyond its bounds were "
                f"replaced and cannot be recovered)"
            )

    # ------------------------------------------------------------------ config
    def _params_to_config(self) -> dict[str, Any]:
        return {name: _jsonable(getattr(self, name)) for name in self._param_names()}

    @classmethod
    def _params_from_config(cls, params: dict[str, Any]) -> dict[str, Any]:
        return dict(params)

    def _state_to_config(self) -> dict[str, Any]:
        state: dict[str, Any] = {"n_features_in": self.n_features_in_}
        names = getattr(self, "feature_names_in_", None)
        state["feature_names_in"] = list(names) if names is not None else None
        fill = getattr(self, "fill_", None)
        state["fill"] = encode_floats(fill) if fill is not None else None
        for attr in self._state_arrays:
            state[attr] = encode_floats(getattr(self, attr))
        return state

    def _state_from_config(self, state: dict[str, Any]) -> None:
        self.n_features_in_ = int(state["n_features_in"])
        if state.get("feature_names_in") is not None:
            self.feature_names_in_ = tuple(state["feature_names_in"])
        self.fill_ = decode_floats(state.get("fill"))
        for attr in self._state_arrays:
            setattr(self, attr, decode_floats(state[attr]))

    def to_config(self) -> dict[str, Any]:
        """A JSON-serialisable dict holding the parameters and, once fitted, the statistics.

        ``from_config(scaler.to_config())`` rebuilds a scaler that transforms
        bit-for-bit like this one (floats are stored as exact Python floats).

        >>> import numpy as np, json
        >>> from gradwell.preprocessing import LinearScaler, from_config
        >>> s = LinearScaler().fit(np.array([[0.0], [10.0]]))
        >>> s2 = from_config(json.loads(json.dumps(s.to_config())))
        >>> s2.transform(np.array([[5.0]])).tolist()
        [[0.0]]
        """
        cfg: dict[str, Any] = {
            "format": CONFIG_FORMAT,
            "version": CONFIG_VERSION,
            "type": type(self).__name__,
            "params": self._params_to_config(),
            "fitted": self.is_fitted,
        }
        if self.is_fitted:
            cfg["state"] = self._state_to_config()
        return cfg

    def to_json(self, **kwargs: Any) -> str:
        """``json.dumps(self.to_config())``."""
        return json.dumps(self.to_config(), **kwargs)


def from_config(cfg: dict[str, Any] | str) -> Scaler:
    """Rebuild a scaler (fitted or not) from :meth:`Scaler.to_config` output or its JSON text.

    >>> import numpy as np
    >>> from gradwell.preprocessing import Pipeline, LogScaler, LinearScaler, from_config
    >>> p = Pipeline([LogScaler(), LinearScaler()]).fit(np.array([[1.0], [100.0]]))
    >>> q = from_config(p.to_json())
    >>> bool(np.array_equal(q.transform([[7.0]]), p.transform([[7.0]])))
    True
    """
    if isinstance(cfg, str):
        cfg = json.loads(cfg)
    if not isinstance(cfg, dict) or "type" not in cfg:
        raise ValueError(
            f"from_config: expected a dict with a 'type' key (from Scaler.to_config()), "
            f"got {type(cfg).__name__}"
        )
    fmt = cfg.get("format", CONFIG_FORMAT)
    if fmt != CONFIG_FORMAT:
        raise ValueError(f"from_config: expected format {CONFIG_FORMAT!r}, got {fmt!r}")
    version = cfg.get("version", CONFIG_VERSION)
    if version > CONFIG_VERSION:
        raise ValueError(
            f"from_config: expected config version <= {CONFIG_VERSION}, got {version} "
            f"(written by a newer gradwell)"
        )
    name = cfg["type"]
    cls = _REGISTRY.get(name)
    if cls is None:
        raise ValueError(
            f"from_config: expected a scaler type among {sorted(_REGISTRY)}, got {name!r}"
        )
    obj = cls(**cls._params_from_config(cfg.get("params", {})))
    if cfg.get("fitted"):
        if "state" not in cfg:
            raise ValueError(f"from_config: {name} config says fitted but has no 'state'")
        obj._state_from_config(cfg["state"])
    return obj


def _jsonable(value: Any) -> Any:
    if isinstance(value, Scaler):
        return value.to_config()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return encode_floats([value])[0]
    return value


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # arrays and other odd values: treat as non-default
        return False
