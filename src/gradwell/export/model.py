"""``export_onnx``: a model (and its preprocessing) as one ONNX file."""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from .._atomic import atomic_write
from .._numeric import numeric_array
from ..autograd.tensor import Tensor
from ..nn import Module
from ..preprocessing import TablePreprocessor
from ..preprocessing.base import Scaler
from ..train.predict import evaluating
from .graph import OPSET, ExportError, Graph
from .layers import convert
from .tables import matrix_input, table_input, target_inverse


def export_onnx(
    model: Any,
    path: str | os.PathLike[str],
    example: Any,
    *,
    preprocessing: Any = None,
    probabilities: bool = False,
    metadata: dict[str, Any] | None = None,
) -> Any:
    """Write ``model`` as an ONNX file (opset 17) that computes what ``gw.predict`` does.

    ``example`` is an input batch of the model, shape (N, ...): it is run once through
    the model (in eval mode) to fix the shapes of every layer; the batch axis of the
    file stays free (``N``). The graph's input is ``"input"`` and its output
    ``"output"`` (float32 in and out; integer ids, int64, for an Embedding first).
    In eval mode Dropout is the identity and BatchNorm uses its running statistics.
    A model trained with a target scaler (``model.target_scaler``) outputs in the
    target's units, as ``gw.predict`` does. ``probabilities=True`` adds the output
    ``"probabilities"``, the softmax of the last axis.

    ``preprocessing``: a fitted scaler the model's inputs went through, put in front
    of the network so the file takes the raw features. A ``TablePreprocessor`` (what
    ``gradwell train`` saves) gives one input per column, shape (N, 1), named by the
    column: float32 for a number column (NaN for a missing cell: the training median
    fills it and lights its ``<name>_missing`` column), a string for a categorical one
    (a level not kept at fit -- rare, unseen, missing or "" -- is ``other``). Any
    other scaler (AutoScaler, ColumnScaler, a chain) takes the raw matrix ``"input"``.
    The scaling runs in float64, as gradwell's. ONNX cannot raise: a value outside a
    log's domain gives NaN where gradwell's transform would refuse it.

    Every built-in layer exports: Linear, the activations, BatchNorm1d/2d, LayerNorm,
    GroupNorm, Dropout, Flatten, Identity, Embedding, Conv1d/2d, ConvTranspose2d,
    MaxPool1d/2d, AvgPool1d/2d, AdaptiveAvgPool2d, Upsample, in a Sequential. Another module raises
    :class:`ExportError` naming its path and type. The file is written whole or not
    at all. Returns the ``onnx.ModelProto``. Needs the ``onnx`` package.

    >>> import numpy as np, gradwell as gw
    >>> model = gw.nn.Sequential(gw.nn.Linear(3, 4), gw.nn.ReLU(), gw.nn.Linear(4, 2))
    >>> proto = gw.export_onnx(model, "model.onnx", np.zeros((1, 3), np.float32))
    >>> [o.name for o in proto.graph.output]
    ['output']
    """
    if not isinstance(model, Module):
        raise TypeError(f"export_onnx: expected a gw.nn.Module; got {type(model).__name__}")
    if preprocessing is not None and not isinstance(preprocessing, Scaler):
        raise TypeError(
            "export_onnx: expected preprocessing to be a fitted gradwell scaler (such as "
            f"TablePreprocessor or AutoScaler); got {type(preprocessing).__name__}"
        )
    value = _example(model, example)
    if preprocessing is not None:
        width = _preprocessed_width(preprocessing)
        if value.ndim != 2 or value.shape[1] != width:
            raise ValueError(
                f"export_onnx: the preprocessing gives {width} features per row, so the example "
                f"should have shape (N, {width}); got {value.shape}"
            )
    g = Graph()
    if isinstance(preprocessing, TablePreprocessor):
        x = table_input(g, preprocessing, value.dtype)
    elif preprocessing is not None:
        x = matrix_input(g, preprocessing, value.shape[1], value.dtype)
    else:
        x = g.input("input", value.dtype, (None, *value.shape[1:]))
    with evaluating(model):
        y, out_value = convert(g, model, x, value)
    if not isinstance(out_value, np.ndarray) or out_value.dtype.kind != "f":
        raise ExportError("export_onnx: expected the model to return one float tensor")
    dtype = out_value.dtype
    target_scaler = getattr(model, "target_scaler", None)
    if target_scaler is not None:
        y = target_inverse(g, target_scaler, y, dtype)
    shape = (None, *out_value.shape[1:])
    g.output(y, "output", dtype, shape)
    if probabilities:
        g.output(g.op("Softmax", [y], "softmax", axis=-1), "probabilities", dtype, shape)
    props = {"opset": str(OPSET)}
    for key, v in (metadata or {}).items():
        props[str(key)] = v if isinstance(v, str) else json.dumps(v)
    proto = g.model(type(model).__name__, props)
    atomic_write(path, proto.SerializeToString())
    return proto


def _example(model: Module, example: Any) -> np.ndarray:
    """The example as an array: integers as int64 (ids), numbers in the model's dtype."""
    raw = example.data if isinstance(example, Tensor) else example
    array = numeric_array(raw, "export_onnx: example")
    if array.ndim < 1 or not len(array):
        raise ValueError(
            f"export_onnx: expected an example batch of shape (N, ...) with N >= 1; got shape "
            f"{array.shape}"
        )
    if array.dtype.kind in "iub":
        return array.astype(np.int64)
    first = next(iter(model.parameters()), None)
    return array.astype(np.float32 if first is None else first.data.dtype, copy=False)


def _preprocessed_width(preprocessing: Any) -> int:
    preprocessing._check_is_fitted("export_onnx")
    if isinstance(preprocessing, TablePreprocessor):
        return len(preprocessing.get_feature_names_out())
    return int(preprocessing.n_features_in_)
