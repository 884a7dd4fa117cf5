"""One-hot encoding of categorical (text) columns, with an "other" bucket."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._table_input import as_columns, check_names, missing_mask
from .base import Scaler, register

#: The name of the column that takes rare, unseen and missing levels.
OTHER = "other"


@register
class OneHotEncoder(Scaler):
    """One 0/1 column per frequent level of each categorical column, plus an "other" one.

    ``fit`` keeps, per column, the levels seen in at least ``min_frequency`` of the
    training rows (a fraction; at most ``max_levels`` of them, the most frequent);
    every other level -- rare at fit, unseen later, or missing -- lights the
    column's ``other`` output, so data the encoder never saw still encodes. Input: a
    dict of columns, a DataFrame or a 2-D (object) array. Works inside a
    scikit-learn Pipeline and is saved with the model (``to_config``).

    >>> import numpy as np
    >>> from gradwell.preprocessing import OneHotEncoder
    >>> enc = OneHotEncoder(min_frequency=0.3).fit({"c": np.array(["a", "a", "b", "z"])})
    >>> enc.get_feature_names_out().tolist()
    ['c=a', 'c=other']
    >>> enc.transform({"c": np.array(["a", "b", "new", None])}).tolist()
    [[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]]
    """

    columnwise = False

    def __init__(self, min_frequency: float = 0.01, max_levels: int = 50):
        self.min_frequency = min_frequency
        self.max_levels = max_levels
        self._validate_params()

    def _validate_params(self) -> None:
        if not 0.0 <= float(self.min_frequency) < 1.0:
            raise ValueError(
                f"OneHotEncoder: expected 0 <= min_frequency < 1, got {self.min_frequency!r}"
            )
        if not isinstance(self.max_levels, int) or self.max_levels < 1:
            raise ValueError(
                f"OneHotEncoder: expected a positive int max_levels, got {self.max_levels!r}"
            )

    @property
    def invertible(self) -> bool:  # type: ignore[override]
        return False

    def fit(self, X: Any, y: Any = None) -> OneHotEncoder:
        names, columns = as_columns(X, "OneHotEncoder.fit")
        if not columns or not len(columns[0]):
            raise ValueError("OneHotEncoder.fit: expected at least one row and one column")
        self.levels_: dict[str, list[str]] = {}
        for name, column in zip(names, columns, strict=True):
            present = [str(v) for v, m in zip(column, missing_mask(column), strict=True) if not m]
            counts = Counter(present)
            least = self.min_frequency * len(column)
            frequent = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
            kept = [level for level, n in frequent if n >= least][: self.max_levels]
            self.levels_[name] = sorted(kept)
        self.feature_names_in_ = tuple(names)
        self.n_features_in_ = len(names)
        return self

    def transform(self, X: Any) -> np.ndarray:
        self._check_is_fitted("transform")
        names, columns = as_columns(X, "OneHotEncoder.transform")
        if names != list(self.feature_names_in_):
            check_names(list(self.feature_names_in_), names, "OneHotEncoder.transform")
            by_name = dict(zip(names, columns, strict=True))
            columns = [by_name[n] for n in self.feature_names_in_]
        blocks = []
        for name, column in zip(self.feature_names_in_, columns, strict=True):
            levels = self.levels_[name]
            index = {level: i for i, level in enumerate(levels)}
            other = len(levels)
            missing = missing_mask(column)
            codes = [other if m else index.get(str(v), other) for v, m in zip(column, missing)]
            block = np.zeros((len(column), other + 1), dtype=np.float32)
            block[np.arange(len(column)), codes] = 1.0
            blocks.append(block)
        return np.concatenate(blocks, axis=1)

    def fit_transform(self, X: Any, y: Any = None) -> np.ndarray:
        return self.fit(X).transform(X)

    def inverse_transform(self, X: Any) -> np.ndarray:
        raise NotImplementedError("OneHotEncoder: the 'other' bucket cannot be inverted")

    def get_feature_names_out(self, input_features: Sequence[str] | None = None) -> np.ndarray:
        self._check_is_fitted("get_feature_names_out")
        return np.array(
            [f"{n}={level}" for n in self.feature_names_in_ for level in [*self.levels_[n], OTHER]]
        )

    def _state_to_config(self) -> dict[str, Any]:
        return {"feature_names_in": list(self.feature_names_in_), "levels": self.levels_}

    def _state_from_config(self, state: dict[str, Any]) -> None:
        self.feature_names_in_ = tuple(str(n) for n in state["feature_names_in"])
        self.levels_ = {str(k): [str(v) for v in vs] for k, vs in state["levels"].items()}
        self.n_features_in_ = len(self.feature_names_in_)
