"""AutoScaler: audit the training data, then fit each column's recommended chain."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._input import as_matrix
from .audit import SCALE_RATIO_LIMIT, AuditReport, audit
from .base import Scaler, check_nan_policy, from_config, register
from .column import ColumnScaler


@register
class AutoScaler(Scaler):
    """Fit the chain that :func:`audit` recommends for each column.

    ``fit`` audits the training data (kept as ``report_``, with the one-line reason
    per column in ``reasons_``) and fits a :class:`ColumnScaler` (``column_scaler_``)
    with one chain per column; later transforms apply exactly those fitted chains.
    A scaler rebuilt by ``from_config`` keeps ``reasons_`` but not the full report.
    ``nan_policy`` applies to every column (``"error"`` by default).

    >>> import numpy as np
    >>> from gradwell.preprocessing import AutoScaler
    >>> rng = np.random.default_rng(0)
    >>> X = {"rooms": rng.lognormal(7, 1, 500), "lat": rng.uniform(32, 42, 500)}
    >>> auto = AutoScaler().fit(X)
    >>> auto.chains_
    {'rooms': 'log -> linear', 'lat': 'linear'}
    >>> bool(np.abs(auto.transform(X)).max() <= 1.0)
    True
    """

    columnwise = False

    def __init__(
        self,
        feature_names: Sequence[str] | None = None,
        nan_policy: str = "error",
        scale_ratio_limit: float = SCALE_RATIO_LIMIT,
    ):
        self.feature_names = feature_names
        self.nan_policy = nan_policy
        self.scale_ratio_limit = scale_ratio_limit
        self._validate_params()

    def _validate_params(self) -> None:
        check_nan_policy("AutoScaler", self.nan_policy)

    @property
    def invertible(self) -> bool:  # type: ignore[override]
        return self.is_fitted and self.column_scaler_.invertible

    def _build(self, X: Any, where: str) -> tuple[Any, ColumnScaler]:
        self._validate_params()
        m = as_matrix(X, where, self.feature_names)
        self.report_: AuditReport = audit(m.values, m.names, self.scale_ratio_limit)
        self.reasons_ = {c.name: c.reason for c in self.report_.columns}
        cs = self.report_.column_scaler(nan_policy=self.nan_policy)
        cs.feature_names = m.names
        return m, cs

    def fit(self, X: Any, y: Any = None) -> AutoScaler:
        """Audit ``X`` and fit the recommended chain for every column; returns ``self``."""
        m, cs = self._build(X, "AutoScaler.fit")
        self.column_scaler_ = cs.fit(m.values)
        self._remember_input(m)
        return self

    def fit_transform(self, X: Any, y: Any = None) -> np.ndarray:
        m, cs = self._build(X, "AutoScaler.fit_transform")
        out = cs.fit_transform(m.values if m.owned else m.values.copy())
        self.column_scaler_ = cs
        self._remember_input(m)
        return out

    def transform(self, X: Any) -> np.ndarray:
        """Apply the fitted per-column chains."""
        self._check_is_fitted("transform")
        return self.column_scaler_.transform(self._aligned(X, "AutoScaler.transform").values)

    def inverse_transform(self, X: Any, skip_lossy: bool = False) -> np.ndarray:
        """Undo the per-column chains (clipping columns need ``skip_lossy=True``)."""
        self._check_is_fitted("inverse_transform")
        m = self._aligned(X, "AutoScaler.inverse_transform")
        return self.column_scaler_.inverse_transform(m.values, skip_lossy=skip_lossy)

    @property
    def chains_(self) -> dict[str | int, str]:
        """The fitted chain of every column as a readable string."""
        self._check_is_fitted("chains_")
        return self.column_scaler_.chains_

    def spec(self) -> str:
        return f"auto({self.column_scaler_.spec()})" if self.is_fitted else "auto"

    def _params_to_config(self) -> dict[str, Any]:
        params = super()._params_to_config()
        if self.feature_names is not None:
            params["feature_names"] = list(self.feature_names)
        return params

    def _state_to_config(self) -> dict[str, Any]:
        state = super()._state_to_config()
        state["column_scaler"] = self.column_scaler_.to_config()
        # The reasons travel with the model so a loaded scaler can still explain itself.
        state["reasons"] = dict(self.reasons_)
        return state

    def _state_from_config(self, state: dict[str, Any]) -> None:
        super()._state_from_config(state)
        self.column_scaler_ = from_config(state["column_scaler"])  # type: ignore[assignment]
        self.reasons_ = dict(state.get("reasons", {}))
