"""Filling missing cells: the median of a number column, the most frequent level of a
text column, with an optional 0/1 column marking where a cell was missing."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._table_input import as_columns, check_names, is_text, missing_mask
from .base import Scaler, register

STRATEGIES = ("median", "most_frequent")


@register
class Imputer(Scaler):
    """Replace missing cells with a statistic of the training column.

    ``strategy="median"`` fills number columns with their median (text columns
    always take their most frequent level); ``"most_frequent"`` fills every column
    with its most frequent value. With ``add_indicator=True``, each column that had
    missing cells at fit gains a 0/1 output column ``<name>_missing``. ``transform``
    returns a dict of columns (text stays text), which :class:`OneHotEncoder` and
    the scalers take; ``fit`` on training data only.

    >>> import numpy as np
    >>> from gradwell.preprocessing import Imputer
    >>> imp = Imputer(add_indicator=True).fit({"a": np.array([1.0, np.nan, 3.0, 10.0])})
    >>> {k: v.tolist() for k, v in imp.transform({"a": np.array([np.nan, 2.0])}).items()}
    {'a': [3.0, 2.0], 'a_missing': [1.0, 0.0]}
    """

    columnwise = False

    def __init__(self, strategy: str = "median", add_indicator: bool = False):
        self.strategy = strategy
        self.add_indicator = add_indicator
        self._validate_params()

    def _validate_params(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"Imputer: expected strategy in {STRATEGIES}, got {self.strategy!r}")

    @property
    def invertible(self) -> bool:  # type: ignore[override]
        return False

    def fit(self, X: Any, y: Any = None) -> Imputer:
        names, columns = as_columns(X, "Imputer.fit")
        self.fill_values_: dict[str, Any] = {}
        self.indicators_: list[str] = []
        for name, column in zip(names, columns, strict=True):
            missing = missing_mask(column)
            present = column[~missing]
            if not present.size:
                raise ValueError(
                    f"Imputer.fit: column {name!r} has no value to learn a fill from "
                    "(every training cell is missing); drop the column"
                )
            if is_text(column) or self.strategy == "most_frequent":
                counts = Counter(present.tolist())
                value = min(counts, key=lambda v: (-counts[v], str(v)))
                self.fill_values_[name] = value.item() if isinstance(value, np.generic) else value
            else:
                self.fill_values_[name] = float(np.median(present.astype(np.float64)))
            if self.add_indicator and missing.any():
                self.indicators_.append(name)
        self.feature_names_in_ = tuple(names)
        self.n_features_in_ = len(names)
        return self

    def transform(self, X: Any) -> dict[str, np.ndarray]:  # type: ignore[override]
        self._check_is_fitted("transform")
        names, columns = as_columns(X, "Imputer.transform")
        check_names(list(self.feature_names_in_), names, "Imputer.transform")
        by_name = dict(zip(names, columns, strict=True))
        out: dict[str, np.ndarray] = {}
        for name in self.feature_names_in_:
            column = by_name[name]
            missing = missing_mask(column)
            filled = column.astype(object if is_text(column) else np.float64, copy=True)
            filled[missing] = self.fill_values_[name]
            out[name] = filled
        for name in self.indicators_:
            out[f"{name}_missing"] = missing_mask(by_name[name]).astype(np.float64)
        return out

    def fit_transform(self, X: Any, y: Any = None) -> dict[str, np.ndarray]:  # type: ignore[override]
        return self.fit(X).transform(X)

    def inverse_transform(self, X: Any) -> np.ndarray:
        raise NotImplementedError("Imputer: a filled cell cannot be told from a real one")

    def get_feature_names_out(self, input_features: Sequence[str] | None = None) -> np.ndarray:
        self._check_is_fitted("get_feature_names_out")
        return np.array([*self.feature_names_in_, *(f"{n}_missing" for n in self.indicators_)])

    def _state_to_config(self) -> dict[str, Any]:
        return {
            "feature_names_in": list(self.feature_names_in_),
            "fill_values": self.fill_values_,
            "indicators": self.indicators_,
        }

    def _state_from_config(self, state: dict[str, Any]) -> None:
        self.feature_names_in_ = tuple(str(n) for n in state["feature_names_in"])
        self.fill_values_ = dict(state["fill_values"])
        self.indicators_ = [str(n) for n in state["indicators"]]
        self.n_features_in_ = len(self.feature_names_in_)
