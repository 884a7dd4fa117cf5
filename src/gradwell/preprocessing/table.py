"""A mixed table to a float matrix: impute, scale the numbers, one-hot the text."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._table_input import as_columns, check_names, is_text
from .auto import AutoScaler
from .base import Scaler, from_config, register
from .encoders import OneHotEncoder
from .imputers import Imputer


@register
class TablePreprocessor(Scaler):
    """The recommended preprocessing of a table of numeric and categorical columns.

    Number columns: missing cells take the training median, with a 0/1
    ``<name>_missing`` column where any training cell was missing, then each column
    gets the chain the audit recommends (:class:`AutoScaler`). Text columns (or
    those named in ``categorical``): :class:`OneHotEncoder` with an ``other`` bucket
    for rare, unseen and missing levels. Input: a dict of columns such as
    ``Dataset.frame()``, or a DataFrame; output: a float32 matrix whose column names
    are :meth:`get_feature_names_out`. Fit on training data only.

    >>> import numpy as np
    >>> from gradwell.preprocessing import TablePreprocessor
    >>> table = {"age": np.array([20.0, np.nan, 40.0, 60.0]),
    ...          "city": np.array(["paris", "rome", "paris", None], dtype=object)}
    >>> pre = TablePreprocessor(min_frequency=0.3).fit(table)
    >>> pre.get_feature_names_out().tolist()
    ['age', 'age_missing', 'city=paris', 'city=other']
    >>> pre.transform(table).shape
    (4, 4)
    """

    columnwise = False

    def __init__(
        self, categorical: Sequence[str] = (), min_frequency: float = 0.01, max_levels: int = 50
    ):
        self.categorical = categorical
        self.min_frequency = min_frequency
        self.max_levels = max_levels
        self._validate_params()

    def _validate_params(self) -> None:
        OneHotEncoder(self.min_frequency, self.max_levels)  # checks both

    @property
    def invertible(self) -> bool:  # type: ignore[override]
        return False

    def _split(self, names: list[str], columns: list[np.ndarray]) -> tuple[dict, dict]:
        numeric, text = {}, {}
        for name, column in zip(names, columns, strict=True):
            if name in self.categorical or is_text(column):
                text[name] = column
            else:
                numeric[name] = column.astype(np.float64)
        return numeric, text

    def fit(self, X: Any, y: Any = None) -> TablePreprocessor:
        names, columns = as_columns(X, "TablePreprocessor.fit")
        numeric, text = self._split(names, columns)
        self.numeric_: list[str] = list(numeric)
        self.categorical_: list[str] = list(text)
        self.imputer_ = Imputer("median", add_indicator=True)
        self.scaler_ = AutoScaler()
        self.encoder_ = OneHotEncoder(self.min_frequency, self.max_levels)
        if numeric:
            filled = self.imputer_.fit_transform(numeric)
            self.scaler_.fit({n: filled[n] for n in self.numeric_})
        if text:
            self.encoder_.fit(text)
        self.feature_names_in_ = tuple(names)
        self.n_features_in_ = len(names)
        return self

    def transform(self, X: Any) -> np.ndarray:
        self._check_is_fitted("transform")
        names, columns = as_columns(X, "TablePreprocessor.transform")
        check_names(list(self.feature_names_in_), names, "TablePreprocessor.transform")
        by_name = dict(zip(names, columns, strict=True))
        blocks = []
        rows = len(columns[0]) if columns else 0
        if self.numeric_:
            filled = self.imputer_.transform(
                {n: np.asarray(by_name[n], dtype=np.float64) for n in self.numeric_}
            )
            blocks.append(self.scaler_.transform({n: filled[n] for n in self.numeric_}))
            for name in self.imputer_.indicators_:
                blocks.append(filled[f"{name}_missing"][:, None])
        if self.categorical_:
            blocks.append(self.encoder_.transform({n: by_name[n] for n in self.categorical_}))
        if not blocks:
            return np.zeros((rows, 0), dtype=np.float32)
        return np.concatenate([np.asarray(b, dtype=np.float32) for b in blocks], axis=1)

    def fit_transform(self, X: Any, y: Any = None) -> np.ndarray:
        return self.fit(X).transform(X)

    def inverse_transform(self, X: Any) -> np.ndarray:
        raise NotImplementedError("TablePreprocessor: one-hot and imputed cells cannot be inverted")

    def get_feature_names_out(self, input_features: Sequence[str] | None = None) -> np.ndarray:
        self._check_is_fitted("get_feature_names_out")
        names = list(self.numeric_)
        if self.numeric_:
            names += [f"{n}_missing" for n in self.imputer_.indicators_]
        if self.categorical_:
            names += self.encoder_.get_feature_names_out().tolist()
        return np.array(names)

    def _params_to_config(self) -> dict[str, Any]:
        return {
            "categorical": list(self.categorical),
            "min_frequency": self.min_frequency,
            "max_levels": self.max_levels,
        }

    def _state_to_config(self) -> dict[str, Any]:
        return {
            "feature_names_in": list(self.feature_names_in_),
            "numeric": self.numeric_,
            "categorical": self.categorical_,
            "imputer": self.imputer_.to_config(),
            "scaler": self.scaler_.to_config(),
            "encoder": self.encoder_.to_config(),
        }

    def _state_from_config(self, state: dict[str, Any]) -> None:
        self.feature_names_in_ = tuple(str(n) for n in state["feature_names_in"])
        self.numeric_ = [str(n) for n in state["numeric"]]
        self.categorical_ = [str(n) for n in state["categorical"]]
        self.imputer_ = from_config(state["imputer"])  # type: ignore[assignment]
        self.scaler_ = from_config(state["scaler"])  # type: ignore[assignment]
        self.encoder_ = from_config(state["encoder"])  # type: ignore[assignment]
        self.n_features_in_ = len(self.feature_names_in_)
