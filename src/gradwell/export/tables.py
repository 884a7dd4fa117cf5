"""The fitted preprocessing as ONNX nodes, so an exported model takes the raw features.

Numbers: the imputer's median for a missing (NaN) cell, its ``<name>_missing``
indicator, and each column's fitted scaling chain (linear, z-score, robust, clip,
log), all in float64 as gradwell computes them. Text: each categorical column's
levels looked up with ONNX-ML's LabelEncoder; a level the encoder did not keep (rare,
unseen, or a missing cell such as "") lights the column's ``other`` output, as in
:class:`gradwell.preprocessing.OneHotEncoder`. The target scaler's inverse maps a
regression model's outputs back to the target's units.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..preprocessing import (
    AutoScaler,
    Clip,
    ColumnScaler,
    LogScaler,
    Pipeline,
    TablePreprocessor,
    TargetScaler,
)
from ..preprocessing._table_input import as_columns, missing_mask
from ..preprocessing.scalers import _AffineScaler
from .graph import ExportError, Graph, element_type, tensor


def _cast(g: Graph, x: str, dtype: Any, hint: str = "cast") -> str:
    return g.op("Cast", [x], hint, to=element_type(dtype))


def scaled(g: Graph, scaler: Any, x: str) -> str:
    """``scaler.transform`` of the float64 matrix ``x`` (its columns in the fitted order)."""
    if isinstance(scaler, AutoScaler):
        return scaled(g, scaler.column_scaler_, x)
    if isinstance(scaler, ColumnScaler):
        return _column_groups(g, scaler, x)
    if isinstance(scaler, Pipeline):
        for step in scaler.steps:
            x = scaled(g, step, x)
        return x
    if isinstance(scaler, _AffineScaler):  # linear, z-score, robust: x * scale + offset
        x = g.op("Mul", [x, g.constant(scaler.scale_, "scale", np.float64)])
        return g.op("Add", [x, g.constant(scaler.offset_, "offset", np.float64)], "scaled")
    if isinstance(scaler, Clip):
        if np.isfinite(scaler.lower_).any():
            x = g.op("Max", [x, g.constant(scaler.lower_, "lower", np.float64)], "clipped")
        if np.isfinite(scaler.upper_).any():
            x = g.op("Min", [x, g.constant(scaler.upper_, "upper", np.float64)], "clipped")
        return x
    if isinstance(scaler, LogScaler):  # log1p(x + shift)
        return g.op("Log", [g.op("Add", [x, g.constant(scaler.shift_ + 1.0, "shift", np.float64)])])
    raise ExportError(
        f"export_onnx: the preprocessing step {type(scaler).__name__} has no ONNX conversion; "
        "supported: TablePreprocessor, AutoScaler, ColumnScaler, Pipeline, LinearScaler, "
        "ZScoreScaler, RobustScaler, Clip, LogScaler"
    )


def _column_groups(g: Graph, scaler: ColumnScaler, x: str) -> str:
    groups = scaler.groups_
    if len(groups) == 1:  # one chain for every column
        return scaled(g, groups[0][1], x)
    parts: list[str] = []
    order: list[int] = []
    for idx, pipe in groups:
        columns = g.op("Gather", [x, g.constant(np.array(idx, np.int64), "columns")], axis=1)
        parts.append(scaled(g, pipe, columns))
        order.extend(idx)
    joined = g.op("Concat", parts, axis=1)
    back = np.argsort(np.array(order, np.int64))  # the groups' columns back in place
    return g.op("Gather", [joined, g.constant(back, "columns")], "scaled_columns", axis=1)


def matrix_input(g: Graph, scaler: Any, width: int, dtype: Any) -> str:
    """One raw float32 input (N, width), scaled by ``scaler``: the network's input."""
    x = g.input("input", np.float32, (None, width))
    return _cast(g, scaled(g, scaler, _cast(g, x, np.float64)), dtype, "features")


def table_input(g: Graph, pre: TablePreprocessor, dtype: Any) -> str:
    """One input per column, (N, 1), in the table's order: float32 for numbers (NaN:
    missing; booleans as 1/0), text for categories; returns the network's input."""
    pre._check_is_fitted("export")
    raw = {
        n: g.input(n, object if n in pre.categorical_ else np.float32, (None, 1))
        for n in pre.feature_names_in_
    }
    blocks = []
    if pre.numeric_:
        x = g.op("Concat", [raw[n] for n in pre.numeric_], "numeric", axis=1)
        x = _cast(g, x, np.float64)
        fill = np.array([[pre.imputer_.fill_values_[n] for n in pre.numeric_]], np.float64)
        filled = g.op("Where", [g.op("IsNaN", [x]), g.constant(fill, "median"), x], "imputed")
        blocks.append(_cast(g, scaled(g, pre.scaler_, filled), dtype))
        for name in pre.imputer_.indicators_:
            blocks.append(_cast(g, g.op("IsNaN", [raw[name]]), dtype, f"{name}_missing"))
    for name in pre.categorical_:
        blocks.append(_one_hot(g, raw[name], pre.encoder_.levels_[name], dtype))
    if not blocks:
        raise ExportError("export_onnx: the TablePreprocessor has no columns")
    return blocks[0] if len(blocks) == 1 else g.op("Concat", blocks, "features", axis=1)


def table_feeds(columns: Any, pre: TablePreprocessor) -> dict[str, np.ndarray]:
    """The inputs of a file exported with ``pre`` for a table of raw columns (a dict of
    columns such as ``Dataset.frame()``, or a DataFrame): one (N, 1) array per column,
    float32 for numbers (a missing cell NaN), text for categories (a missing cell "")."""
    names, arrays = as_columns(columns, "table_feeds")
    by_name = dict(zip(names, arrays, strict=True))
    missing = [n for n in pre.feature_names_in_ if n not in by_name]
    if missing:
        raise KeyError(f"table_feeds: the table lacks the columns {missing}")
    feeds = {}
    for name in pre.feature_names_in_:
        column = by_name[name]
        if name in pre.categorical_:
            text = np.where(missing_mask(column), "", column.astype(str)).astype(object)
            feeds[name] = text[:, None]
        else:
            feeds[name] = column.astype(np.float32)[:, None]
    return feeds


def _one_hot(g: Graph, text: str, levels: list[str], dtype: Any) -> str:
    """(N, len(levels) + 1): a 1 at the cell's level, or in the last ("other") column."""
    if not levels:  # every row is "other"
        shape = g.op("Shape", [text])
        return g.op("ConstantOfShape", [shape], value=tensor(np.ones(1, dtype)))
    codes = g.op(
        "LabelEncoder", [text], "level", domain="ai.onnx.ml",
        keys_strings=levels, values_int64s=list(range(len(levels))), default_int64=len(levels),
    )  # fmt: skip
    every = g.constant(np.arange(len(levels) + 1, dtype=np.int64), "levels")
    return _cast(g, g.op("Equal", [codes, every]), dtype, "one_hot")


def target_inverse(g: Graph, scaler: TargetScaler, y: str, dtype: Any) -> str:
    """The network's scaled outputs back in the target's units (``inverse_transform``)."""
    y = _cast(g, y, np.float64)
    y = g.op("Mul", [y, g.constant(scaler.spread_, "target_spread", np.float64)])
    y = g.op("Add", [y, g.constant(scaler.center_, "target_center", np.float64)])
    if scaler.method in ("log", "log1p"):
        y = g.op("Exp", [y])
    if scaler.method == "log1p":
        y = g.op("Sub", [y, g.constant(1.0, "one", np.float64)])
    return _cast(g, y, dtype, "in_target_units")
