"""Different chains for different columns: ``ColumnScaler``."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ._errors import ColumnMismatchError
from ._input import (
    Matrix,
    SubsetNames,
    as_matrix,
    gather_columns,
    require_rows,
    scatter_columns,
)
from .base import Scaler, check_nan_policy, from_config, register
from .pipeline import Pipeline, as_chain

ColumnKey = str | int | tuple


@register
class ColumnScaler(Scaler):
    """Fit a chain per column (or group of columns) of a named or positional 2-D input.

    ``columns`` maps a column (name or index, or a tuple of them) to a chain: a
    scaler, a list of scalers, a :class:`Pipeline` or a chain string such as
    ``"clip(q=0,0.99) -> log -> linear"``. Columns not named there get ``default``
    (``None``: left unchanged). Inputs: a 2-D array (columns by index, or by name
    with ``feature_names=``), a dict of 1-D arrays, or a pandas DataFrame; the output
    is a float array with the columns in the order seen at fit. Columns that share
    an identical chain are fitted and transformed together in one vectorised call.

    ``nan_policy`` (``None``: each chain's own) overrides every chain's handling of
    NaN/inf. At transform time a dict or DataFrame must hold exactly the fitted
    columns (any order); a missing or unexpected column raises
    :class:`ColumnMismatchError` naming it.

    >>> import numpy as np
    >>> from gradwell.preprocessing import ColumnScaler, LogScaler, LinearScaler
    >>> data = {"rooms": np.array([1.0, 10.0, 100.0]), "age": np.array([10.0, 20.0, 30.0])}
    >>> cs = ColumnScaler({"rooms": [LogScaler(), LinearScaler()]}, default=[LinearScaler()])
    >>> np.round(cs.fit_transform(data), 3).tolist()
    [[-1.0, -1.0], [-0.131, 0.0], [1.0, 1.0]]
    >>> cs.chains_
    {'rooms': 'log -> linear', 'age': 'linear'}
    """

    columnwise = False

    def __init__(
        self,
        columns: Mapping[ColumnKey, Any] | None = None,
        default: Any = None,
        feature_names: Sequence[str] | None = None,
        nan_policy: str | None = None,
    ):
        self.columns = columns
        self.default = default
        self.feature_names = feature_names
        self.nan_policy = nan_policy  # type: ignore[assignment]
        self._validate_params()

    def _validate_params(self) -> None:
        check_nan_policy("ColumnScaler", self.nan_policy, allow_none=True)
        if self.columns is not None and not isinstance(self.columns, Mapping):
            raise TypeError(
                f"ColumnScaler: expected columns to be a dict {{column: chain}}, "
                f"got {type(self.columns).__name__}"
            )
        for key, spec in (self.columns or {}).items():
            for c in key if isinstance(key, tuple) else (key,):
                if not isinstance(c, (str, int, np.integer)) or isinstance(c, bool):
                    raise TypeError(
                        f"ColumnScaler: expected column keys to be names (str), indices (int) "
                        f"or tuples of them, got {c!r}"
                    )
            as_chain(spec, where=f"ColumnScaler (chain for {key!r})")
        as_chain(self.default, where="ColumnScaler (default chain)")

    @property
    def invertible(self) -> bool:  # type: ignore[override]
        if not self.is_fitted:
            return all(as_chain(s).invertible for s in [self.default, *self._specs()])
        return all(pipe.invertible for _, pipe in self.groups_)

    def _specs(self) -> list[Any]:
        return list((self.columns or {}).values())

    # ------------------------------------------------------------------ grouping
    def _resolve(self, key: Any, names: tuple[str, ...] | None, d: int, where: str) -> int:
        if isinstance(key, str):
            if names is None:
                raise ColumnMismatchError(
                    f"{where}: column {key!r} is addressed by name, but the input has no column "
                    f"names; pass a dict/DataFrame, or feature_names= for a plain array"
                )
            if key not in names:
                raise ColumnMismatchError(
                    f"{where}: expected column {key!r} in the input, got columns {list(names)}"
                )
            return names.index(key)
        j = int(key)
        if not -d <= j < d:
            raise ColumnMismatchError(
                f"{where}: expected a column index in [{-d}, {d - 1}], got {j}"
            )
        return j % d

    def _plan(self, m: Matrix, where: str) -> list[tuple[np.ndarray, Pipeline]]:
        """Group columns by identical chain; returns fresh unfitted pipelines."""
        d = m.values.shape[1]
        owner: dict[int, Any] = {}
        by_chain: dict[str, tuple[list[int], Pipeline]] = {}

        def add(j: int, chain: Pipeline) -> None:
            signature = json.dumps(chain.to_config(), sort_keys=True)
            if signature not in by_chain:
                by_chain[signature] = ([], chain)
            by_chain[signature][0].append(j)

        for key, spec in (self.columns or {}).items():
            chain = as_chain(spec, where=where)
            for c in key if isinstance(key, tuple) else (key,):
                j = self._resolve(c, m.names, d, where)
                if j in owner:
                    raise ValueError(
                        f"{where}: expected each column to get one chain, got column "
                        f"{c!r} under both {owner[j]!r} and {key!r}"
                    )
                owner[j] = key
                add(j, chain)
        rest = [j for j in range(d) if j not in owner]
        if rest:
            default = as_chain(self.default, where=where)
            for j in rest:
                add(j, default)
        plan = []
        for cols, chain in by_chain.values():
            pipe = as_chain(chain)  # each group gets its own copy
            if self.nan_policy is not None:
                pipe.nan_policy = self.nan_policy
            plan.append((np.array(sorted(cols), dtype=np.intp), pipe))
        plan.sort(key=lambda g: int(g[0][0]))
        return plan

    @staticmethod
    def _subset(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
        return gather_columns(values, idx)

    def _sub_names(self, names: tuple[str, ...] | None, idx: np.ndarray) -> SubsetNames:
        positions = [int(j) for j in idx]
        return SubsetNames([names[j] for j in positions] if names is not None else None, positions)

    def _fit_groups(self, m: Matrix, where: str, keep_output: bool) -> np.ndarray | None:
        self._validate_params()
        require_rows(m.values, where)
        plan = self._plan(m, where)
        out = None
        if keep_output:
            out = m.values if m.owned else np.empty_like(m.values)
        for idx, pipe in plan:
            sub_names = self._sub_names(m.names, idx)
            sub = self._subset(m.values, idx)
            sub = pipe._fit_clean(sub, True, where, sub_names)
            if keep_output:
                pipe._fit_transform_values(sub, names=sub_names)
                scatter_columns(out, idx, sub)  # type: ignore[arg-type]
            else:
                pipe._fit_values(sub, owned=True, names=sub_names)
            pipe._remember_input(
                Matrix(sub[:0], tuple(sub_names) if sub_names.named else None, owned=False)
            )
        self.groups_: list[tuple[tuple[int, ...], Pipeline]] = [
            (tuple(int(j) for j in idx), pipe) for idx, pipe in plan
        ]
        self._remember_input(m)
        return out

    # ------------------------------------------------------------------ public API
    def fit(self, X: Any, y: Any = None) -> ColumnScaler:
        """Fit every column's chain on training data ``X``; returns ``self``."""
        where = "ColumnScaler.fit"
        self._fit_groups(as_matrix(X, where, self.feature_names), where, keep_output=False)
        return self

    def fit_transform(self, X: Any, y: Any = None) -> np.ndarray:
        """``fit(X)`` then ``transform(X)`` in one pass over each column group."""
        where = "ColumnScaler.fit_transform"
        out = self._fit_groups(as_matrix(X, where, self.feature_names), where, keep_output=True)
        assert out is not None
        return out

    def _apply(self, X: Any, where: str, inverse: bool, skip_lossy: bool = False) -> np.ndarray:
        self._check_is_fitted(where.rsplit(".", 1)[-1])
        m = self._aligned(X, where)
        out = m.values if m.owned else np.empty_like(m.values)
        for idx_t, pipe in self.groups_:
            idx = np.asarray(idx_t, dtype=np.intp)
            sub_names = self._sub_names(m.names, idx)
            sub = self._subset(m.values, idx)
            if inverse:
                pipe._check_invertible(f"{where} ({self._describe_cols(idx)})", skip_lossy)
                pipe._inverse_inplace(sub, skip_lossy=skip_lossy)
            else:
                pipe._clean_inplace(sub, where, sub_names)
                pipe._transform_inplace(sub, names=sub_names)
            scatter_columns(out, idx, sub)
        return out

    def transform(self, X: Any) -> np.ndarray:
        """Apply each column's fitted chain; returns a new float array."""
        return self._apply(X, "ColumnScaler.transform", inverse=False)

    def inverse_transform(self, X: Any, skip_lossy: bool = False) -> np.ndarray:
        """Undo each column's chain; lossy chains raise unless ``skip_lossy=True``."""
        return self._apply(X, "ColumnScaler.inverse_transform", True, skip_lossy)

    def _describe_cols(self, idx: np.ndarray) -> str:
        names = getattr(self, "feature_names_in_", None)
        shown = [repr(names[j]) if names is not None else str(j) for j in idx[:3]]
        more = f" and {idx.size - 3} more" if idx.size > 3 else ""
        return f"column{'s' if idx.size > 1 else ''} {', '.join(shown)}{more}"

    # ------------------------------------------------------------------ inspection
    @property
    def chains_(self) -> dict[str | int, str]:
        """The fitted chain of every column as a readable string, in column order."""
        self._check_is_fitted("chains_")
        names = getattr(self, "feature_names_in_", None)
        found: dict[int, str] = {}
        for idx, pipe in self.groups_:
            for j in idx:
                found[j] = pipe.spec()
        return {(names[j] if names is not None else j): found[j] for j in sorted(found)}

    def chain_for(self, column: str | int) -> Pipeline:
        """The fitted :class:`Pipeline` that scales ``column`` (shared with its group)."""
        self._check_is_fitted("chain_for")
        names = getattr(self, "feature_names_in_", None)
        j = self._resolve(column, names, self.n_features_in_, "ColumnScaler.chain_for")
        for idx, pipe in self.groups_:
            if j in idx:
                return pipe
        raise AssertionError("unreachable: every column belongs to a group")

    def spec(self) -> str:
        if self.is_fitted:
            return "; ".join(f"{k}: {v}" for k, v in self.chains_.items())
        parts = [f"{k}: {as_chain(v).spec()}" for k, v in (self.columns or {}).items()]
        parts.append(f"default: {as_chain(self.default).spec()}")
        return "; ".join(parts)

    # ------------------------------------------------------------------ config
    def _params_to_config(self) -> dict[str, Any]:
        columns = []
        for key, spec in (self.columns or {}).items():
            keys = list(key) if isinstance(key, tuple) else [key]
            columns.append(
                {
                    "columns": [int(k) if isinstance(k, np.integer) else k for k in keys],
                    "group": isinstance(key, tuple),
                    "chain": as_chain(spec).to_config(),
                }
            )
        return {
            "columns": columns if self.columns is not None else None,
            "default": as_chain(self.default).to_config() if self.default is not None else None,
            "feature_names": list(self.feature_names) if self.feature_names is not None else None,
            "nan_policy": self.nan_policy,
        }

    @classmethod
    def _params_from_config(cls, params: dict[str, Any]) -> dict[str, Any]:
        columns = None
        if params.get("columns") is not None:
            columns = {}
            for item in params["columns"]:
                key = tuple(item["columns"]) if item.get("group") else item["columns"][0]
                columns[key] = from_config(item["chain"])
        default = params.get("default")
        names = params.get("feature_names")
        return {
            "columns": columns,
            "default": from_config(default) if default is not None else None,
            "feature_names": tuple(names) if names is not None else None,
            "nan_policy": params.get("nan_policy"),
        }

    def _state_to_config(self) -> dict[str, Any]:
        state = super()._state_to_config()
        state["groups"] = [
            {"indices": list(idx), "chain": pipe.to_config()} for idx, pipe in self.groups_
        ]
        return state

    def _state_from_config(self, state: dict[str, Any]) -> None:
        super()._state_from_config(state)
        groups: list[tuple[tuple[int, ...], Pipeline]] = []
        for g in state["groups"]:
            chain = from_config(g["chain"])
            if not isinstance(chain, Pipeline):
                raise ValueError(
                    f"from_config: expected a Pipeline per column group, got {chain!r}"
                )
            groups.append((tuple(int(j) for j in g["indices"]), chain))
        self.groups_ = groups
