"""Feature scaling and the feature audit.

Features train best when roughly zero-centred and about [-1, 1]. This package
provides the standard scalers (linear/min-max, z-score, robust, clipping, log),
chains of them, per-column composition, a target scaler for regression, an
audit that recommends a chain per column, and JSON configs so fitted scalers
are saved with a model (no pickle).

>>> import numpy as np
>>> import gradwell.preprocessing as pp
>>> X = {"rooms": np.array([2.0, 30.0, 800.0, 9000.0]), "lat": np.array([33.0, 35.0, 38.0, 41.0])}
>>> scaler = pp.ColumnScaler({"rooms": "log -> linear"}, default=pp.LinearScaler())
>>> scaled = scaler.fit_transform(X)
>>> float(scaled.min()), float(scaled.max())
(-1.0, 1.0)
>>> restored = pp.from_config(scaler.to_config())
>>> bool(np.array_equal(restored.transform(X), scaled))
True

Nothing here imports scikit-learn; the scalers still work inside a scikit-learn
``Pipeline`` and with ``sklearn.base.clone``.
"""

from ._errors import (
    ColumnMismatchError,
    DomainError,
    NonFiniteValueError,
    NotFittedError,
    NotInvertibleError,
)
from .audit import AuditReport, ColumnAudit, ScaleWarning, audit
from .auto import AutoScaler
from .base import Scaler, from_config
from .column import ColumnScaler
from .pipeline import Pipeline, parse_chain
from .scalers import Clip, LinearScaler, LogScaler, RobustScaler, ZScoreScaler
from .target import TargetScaler

__all__ = [
    "AuditReport",
    "AutoScaler",
    "Clip",
    "ColumnAudit",
    "ColumnMismatchError",
    "ColumnScaler",
    "DomainError",
    "LinearScaler",
    "LogScaler",
    "NonFiniteValueError",
    "NotFittedError",
    "NotInvertibleError",
    "Pipeline",
    "RobustScaler",
    "ScaleWarning",
    "Scaler",
    "TargetScaler",
    "ZScoreScaler",
    "audit",
    "from_config",
    "parse_chain",
]
