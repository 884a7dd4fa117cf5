"""Turning what users pass (2-D arrays, dicts of columns, DataFrames) into one float matrix.

Everything downstream works on a single 2-D float32/float64 array so that every
statistic and transform is one vectorised numpy call over all columns at once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._errors import ColumnMismatchError, NonFiniteValueError

FLOAT32 = np.dtype(np.float32)
FLOAT64 = np.dtype(np.float64)


@dataclass
class Matrix:
    """A coerced input: 2-D float ``values``; ``owned`` means we made it and may write into it."""

    values: np.ndarray
    names: tuple[str, ...] | None
    owned: bool


def float_dtype(dtype: np.dtype, where: str, what: str) -> np.dtype:
    """The float dtype results are computed in: float32 and float64 are kept as they are."""
    dt = np.dtype(dtype)
    if dt == FLOAT32 or dt == FLOAT64:
        return dt
    if dt.kind == "f":
        # float16 gains nothing from staying small here; longdouble is not worth a slow path.
        return FLOAT32 if dt.itemsize < 4 else FLOAT64
    if dt.kind in "biu":
        # Integers above 2**24 are not exact in float32, so they go to float64.
        return FLOAT64
    raise TypeError(
        f"{where}: expected numeric values in {what}, got dtype {dt} "
        f"(strings or objects must be converted to numbers first)"
    )


def is_dataframe(X: Any) -> bool:
    """Duck-typed pandas/polars-like frame check, so pandas is never imported."""
    return (
        not isinstance(X, np.ndarray)
        and hasattr(X, "columns")
        and hasattr(X, "to_numpy")
        and hasattr(X, "__getitem__")
    )


def _from_columns(columns: Sequence[tuple[str, Any]], where: str) -> Matrix:
    if not columns:
        raise ValueError(f"{where}: expected at least one column, got none")
    arrays = []
    n_rows: int | None = None
    first_name = None
    for name, col in columns:
        arr = np.asarray(col)
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim != 1:
            raise ValueError(f"{where}: expected column {name!r} to be 1-D, got shape {arr.shape}")
        if n_rows is None:
            n_rows, first_name = arr.shape[0], name
        elif arr.shape[0] != n_rows:
            raise ValueError(
                f"{where}: expected all columns to have {n_rows} rows (like {first_name!r}), "
                f"got {arr.shape[0]} rows in column {name!r}"
            )
        float_dtype(arr.dtype, where, f"column {name!r}")
        arrays.append(arr)
    dtype = float_dtype(np.result_type(*[a.dtype for a in arrays]), where, "the columns")
    values = np.empty((n_rows or 0, len(arrays)), dtype=dtype)
    for j, arr in enumerate(arrays):
        values[:, j] = arr
    return Matrix(values, tuple(name for name, _ in columns), owned=True)


def as_matrix(X: Any, where: str, feature_names: Sequence[str] | None = None) -> Matrix:
    """Coerce ``X`` (2-D array-like, mapping of 1-D columns, or DataFrame) to a float matrix."""
    if isinstance(X, Mapping):
        for key in X:
            if not isinstance(key, str):
                raise TypeError(
                    f"{where}: expected column names (str) as dict keys, got {key!r} "
                    f"of type {type(key).__name__}"
                )
        m = _from_columns(list(X.items()), where)
    elif is_dataframe(X):
        m = _from_columns([(str(c), X[c].to_numpy()) for c in X.columns], where)
    else:
        arr = np.asarray(X)
        if arr.ndim != 2:
            hint = " (use X.reshape(-1, 1) for a single feature)" if arr.ndim == 1 else ""
            raise ValueError(
                f"{where}: expected a 2-D array of shape (n_samples, n_features), "
                f"got shape {arr.shape}{hint}"
            )
        dtype = float_dtype(arr.dtype, where, "X")
        # Only arrays we certainly created may be written into; anything np.asarray
        # returned for an array-like object may share the caller's memory.
        owned = arr.dtype != dtype or isinstance(X, (list, tuple))
        m = Matrix(arr.astype(dtype, copy=False), None, owned=owned)
    if feature_names is not None:
        names = tuple(str(n) for n in feature_names)
        if len(names) != m.values.shape[1]:
            raise ValueError(
                f"{where}: expected {m.values.shape[1]} feature_names (one per column), "
                f"got {len(names)}"
            )
        if m.names is not None and m.names != names:
            raise ColumnMismatchError(
                f"{where}: feature_names {list(names)} differ from the input's own column "
                f"names {list(m.names)}"
            )
        m.names = names
    if m.values.shape[1] == 0:
        raise ValueError(f"{where}: expected at least one column, got shape {m.values.shape}")
    return m


def require_rows(values: np.ndarray, where: str) -> None:
    if values.shape[0] == 0:
        raise ValueError(
            f"{where}: expected at least 1 row to fit on, got an empty input of shape "
            f"{values.shape}"
        )


class SubsetNames(tuple):
    """Names of a subset of columns that also remembers their positions in the full input.

    Lets a step fitted on a few columns (inside a ColumnScaler) report errors with
    the column's real name and index. ``named`` is False when the input had no names.
    """

    positions: tuple[int, ...]
    named: bool

    def __new__(cls, names: Sequence[str] | None, positions: Sequence[int]) -> SubsetNames:
        obj = super().__new__(cls, names if names is not None else [f"x{p}" for p in positions])
        obj.positions = tuple(int(p) for p in positions)
        obj.named = names is not None
        return obj


def column_label(j: int, names: Sequence[str] | None, index: Sequence[int] | None = None) -> str:
    """How error messages name a column: by name when known, always with its position."""
    if isinstance(names, SubsetNames):
        pos = names.positions[j]
        return f"column {names[j]!r} (index {pos})" if names.named else f"column {pos}"
    pos = int(index[j]) if index is not None else j
    if names is not None:
        return f"column {names[j]!r} (index {pos})"
    return f"column {pos}"


def nonfinite_columns(values: np.ndarray) -> np.ndarray:
    """Indices of columns holding NaN or +/-inf, found with one cheap reduction.

    A column sum is non-finite whenever the column holds a non-finite value, so the
    precise (and costlier) element test only runs on the few columns that fail.
    The sum can also overflow on huge but finite values; the precise test weeds those out.
    """
    if values.size == 0:
        return np.empty(0, dtype=np.intp)
    with np.errstate(over="ignore", invalid="ignore"):
        sums = reduce_columns(np.add, values)
    suspects = np.flatnonzero(~np.isfinite(sums))
    return np.array([j for j in suspects if not np.isfinite(values[:, j]).all()], dtype=np.intp)


def check_finite(
    values: np.ndarray,
    where: str,
    names: Sequence[str] | None = None,
    index: Sequence[int] | None = None,
) -> None:
    """Raise :class:`NonFiniteValueError` naming the first bad column and its first bad row."""
    bad_cols = nonfinite_columns(values)
    if bad_cols.size == 0:
        return
    j = int(bad_cols[0])
    col = values[:, j]
    bad = ~np.isfinite(col)
    row = int(np.argmax(bad))
    raise NonFiniteValueError(
        f"{where}: expected finite numbers, got {col[row]} in {column_label(j, names, index)} "
        f"at row {row} ({int(bad.sum())} non-finite value(s) in that column"
        + (f", {bad_cols.size} column(s) affected" if bad_cols.size > 1 else "")
        + "). Clean the data, or pass nan_policy='median' or 'mean' to impute."
    )


def encode_floats(values: np.ndarray | Sequence[float]) -> list[float | str]:
    """A JSON-safe list of floats: Python floats round-trip exactly; non-finite become strings."""
    out: list[float | str] = []
    for v in np.asarray(values, dtype=np.float64).tolist():
        if math.isfinite(v):
            out.append(v)
        elif math.isnan(v):
            out.append("nan")
        else:
            out.append("inf" if v > 0 else "-inf")
    return out


def decode_floats(values: Sequence[float | str] | None) -> np.ndarray | None:
    if values is None:
        return None
    return np.array([float(v) for v in values], dtype=np.float64)


# Rows per block when scattering into scattered columns: keeps the rows in cache.
_SCATTER_BLOCK_ROWS = 8192


def reduce_columns(ufunc: np.ufunc, values: np.ndarray, dtype: Any = None) -> np.ndarray:
    """``ufunc.reduce(values, axis=0)`` computed several times faster for narrow matrices.

    Reducing a row-major (n, d) array over axis 0 runs numpy's inner loop over just
    d elements per row. Viewing the rows as (n/k, k*d) gives the inner loop k*d
    elements (vectorised); the k partial results are then reduced. Same result for
    min/max; for sums only the (still sequential-per-lane) summation order differs.
    """
    n, d = values.shape
    k = max(1, 1024 // max(d, 1))
    if k == 1 or n < 2 * k or not values.flags.c_contiguous:
        return ufunc.reduce(values, axis=0, dtype=dtype)
    m = n - n % k
    partial = ufunc.reduce(values[:m].reshape(m // k, k * d), axis=0, dtype=dtype)
    out = ufunc.reduce(partial.reshape(k, d), axis=0)
    if m < n:
        out = ufunc(out, ufunc.reduce(values[m:], axis=0, dtype=dtype))
    return out


def column_min(values: np.ndarray) -> np.ndarray:
    return reduce_columns(np.minimum, values)


def column_max(values: np.ndarray) -> np.ndarray:
    return reduce_columns(np.maximum, values)


def _run(idx: np.ndarray) -> slice | None:
    """The slice equal to ``idx`` when it is one contiguous increasing run."""
    if idx.size and int(idx[-1]) - int(idx[0]) == idx.size - 1 and np.all(np.diff(idx) == 1):
        return slice(int(idx[0]), int(idx[-1]) + 1)
    return None


def gather_columns(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """A new C-contiguous array of the columns ``idx``."""
    run = _run(idx)
    if run is not None:
        return np.array(values[:, run], order="C")
    return np.take(values, idx, axis=1)


def scatter_columns(out: np.ndarray, idx: np.ndarray, sub: np.ndarray) -> None:
    """``out[:, idx] = sub``, by slice when possible and in cache-sized row blocks otherwise.

    A fancy-index assignment over all rows at once re-reads every row of ``out`` for
    each column; doing it block by block keeps the block in cache (about 4x faster).
    """
    run = _run(idx)
    if run is not None:
        out[:, run] = sub
        return
    n = out.shape[0]
    for start in range(0, n, _SCATTER_BLOCK_ROWS):
        stop = start + _SCATTER_BLOCK_ROWS
        out[start:stop][:, idx] = sub[start:stop]
