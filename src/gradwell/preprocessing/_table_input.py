"""Named columns of mixed type (numbers and text), as the encoder and imputer take them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


def as_columns(X: Any, who: str) -> tuple[list[str], list[np.ndarray]]:
    """Column names and 1-D arrays from a dict of columns, a DataFrame, a 2-D array or a
    1-D array (one column named ``"x0"``); text stays text (object arrays)."""
    if hasattr(X, "columns") and hasattr(X, "to_numpy") and not isinstance(X, np.ndarray):
        X = {str(c): X[c].to_numpy() for c in X.columns}
    if isinstance(X, Mapping):
        names = [str(k) for k in X]
        columns = [np.asarray(v) for v in X.values()]
    else:
        a = np.asarray(X)
        if a.ndim == 1:
            a = a[:, None]
        if a.ndim != 2:
            raise ValueError(f"{who}: expected columns (a dict, 2-D or 1-D array), got {a.ndim}-D")
        names = [f"x{j}" for j in range(a.shape[1])]
        columns = [a[:, j] for j in range(a.shape[1])]
    for name, c in zip(names, columns, strict=True):
        if c.ndim != 1:
            raise ValueError(f"{who}: expected column {name!r} to be 1-D, got shape {c.shape}")
        if len(c) != len(columns[0]):
            raise ValueError(
                f"{who}: expected columns of equal length, got {len(columns[0])} rows in "
                f"{names[0]!r} and {len(c)} in {name!r}"
            )
    return names, columns


def missing_mask(column: np.ndarray) -> np.ndarray:
    """True where a cell is missing: NaN in a number column, None/NaN/"" in a text column."""
    if column.dtype.kind == "f":
        return np.isnan(column)
    if column.dtype.kind in "biu":
        return np.zeros(len(column), dtype=bool)
    return np.array(
        [v is None or (isinstance(v, float) and v != v) or v == "" for v in column], dtype=bool
    )


def is_text(column: np.ndarray) -> bool:
    return column.dtype.kind in "OUS"


def check_names(expected: list[str], got: list[str], who: str) -> None:
    """The same columns as at fit (any order for named input), naming what differs."""
    missing = [n for n in expected if n not in got]
    extra = [n for n in got if n not in expected]
    if missing or extra:
        from ._errors import ColumnMismatchError

        raise ColumnMismatchError(
            f"{who}: expected the columns seen at fit {expected}; "
            + (f"missing {missing}" if missing else "")
            + ("; " if missing and extra else "")
            + (f"unexpected {extra}" if extra else "")
        )
