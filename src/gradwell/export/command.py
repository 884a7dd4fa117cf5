"""``gradwell export MODEL.safetensors MODEL.onnx``: a checkpoint as an ONNX file.

The model is rebuilt from the architecture the checkpoint describes; its saved
preprocessing goes into the graph (see :func:`gradwell.export.export_onnx`), so a
model from ``gradwell train`` takes the raw columns of the CSV, one input each.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import numpy as np

from ..nn import Conv1d, Conv2d, Embedding, Linear, Sequential
from ..preprocessing import TablePreprocessor
from ..train.checkpoint import CheckpointError, load
from .graph import ExportError
from .model import export_onnx

#: Checkpoint metadata (from ``gradwell train``) that the ONNX file carries along.
METADATA = ("task", "target", "classes", "columns", "categorical")


class UsageError(ValueError):
    """Input the command cannot use; printed as one line, exit status 2."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a checkpoint written by gradwell train or gw.save")
    parser.add_argument("out", help="the ONNX file to write")
    parser.add_argument(
        "--input-shape",
        metavar="SHAPE",
        help="one example's shape without the batch axis, e.g. 3,32,32 (default: from the "
        "saved preprocessing or the first Linear layer)",
    )


def command(args: argparse.Namespace) -> int:
    try:
        return _export(args)
    except (UsageError, ExportError, CheckpointError, ImportError) as e:
        print(f"gradwell export: {e}", file=sys.stderr)
        return 2


def _export(args: argparse.Namespace) -> int:
    model, preprocessing, meta = load(args.model)
    shape = _input_shape(args.input_shape, model, preprocessing)
    ids = type(_first_layer(model)) is Embedding
    example = np.zeros((1, *shape), np.int64 if ids else np.float32)
    metadata = {k: meta[k] for k in METADATA if k in meta}
    proto = export_onnx(
        model, args.out, example, preprocessing=preprocessing,
        probabilities=meta.get("task") == "classification", metadata=metadata,
    )  # fmt: skip
    inputs = [i.name for i in proto.graph.input]
    shown = ", ".join(inputs[:6]) + (f" and {len(inputs) - 6} more" if len(inputs) > 6 else "")
    outputs = ", ".join(o.name for o in proto.graph.output)
    print(f"wrote {args.out}: inputs {shown}; outputs {outputs}")
    return 0


def _first_layer(model: Any) -> Any:
    while type(model) is Sequential and len(model):
        model = model[0]
    return model


def _input_shape(text: str | None, model: Any, preprocessing: Any) -> tuple[int, ...]:
    if text:
        try:
            shape = tuple(int(s) for s in text.split(",") if s.strip())
        except ValueError:
            shape = ()
        if not shape or min(shape) < 1:
            raise UsageError(f"expected --input-shape as positive sizes like 3,32,32; got {text!r}")
        return shape
    if isinstance(preprocessing, TablePreprocessor):
        return (len(preprocessing.get_feature_names_out()),)
    if preprocessing is not None:
        return (int(preprocessing.n_features_in_),)
    first = _first_layer(model)
    if type(first) is Linear:
        return (first.in_features,)
    hint = {Conv2d: "C,H,W", Conv1d: "C,L", Embedding: "L (the ids of one example)"}
    raise UsageError(
        f"the model starts with {type(first).__name__}: give the shape of one example with "
        f"--input-shape {hint.get(type(first), 'D1,D2,...')}"
    )
