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

from ..data.csv import CSVFormatError
from ..nn import Conv1d, Conv2d, Embedding, Linear, Sequential
from ..preprocessing import TablePreprocessor
from ..train.checkpoint import CheckpointError, load
from ..train.table_run import UsageError
from .graph import ExportError
from .model import export_onnx
from .tables import table_feeds

#: Checkpoint metadata (from ``gradwell train``) that the ONNX file carries along.
METADATA = ("task", "target", "classes", "columns", "categorical")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a checkpoint written by gradwell train or gw.save")
    parser.add_argument("out", help="the ONNX file to write")
    parser.add_argument(
        "--input-shape",
        metavar="SHAPE",
        help="one example's shape without the batch axis, e.g. 3,32,32 (default: from the "
        "saved preprocessing or the first Linear layer)",
    )
    parser.add_argument(
        "--check",
        metavar="DATA.csv",
        help="then run the file in onnxruntime on this CSV (a model from gradwell train) and "
        "compare with gradwell's own predictions",
    )


def command(args: argparse.Namespace) -> int:
    try:
        return _export(args)
    except (UsageError, ExportError, CheckpointError, CSVFormatError, ImportError, KeyError) as e:
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"gradwell export: {message}", file=sys.stderr)
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
    return _check(args, model, preprocessing, meta) if args.check else 0


#: How far onnxruntime may be from gradwell (relative and absolute) for --check to pass.
CHECK_TOLERANCE = 1e-4


def _check(args: argparse.Namespace, model: Any, preprocessing: Any, meta: dict[str, Any]) -> int:
    """Run the file on a CSV in onnxruntime; 0 when it agrees with gw.predict, else 1."""
    try:
        import onnxruntime
    except ImportError:
        raise UsageError("--check runs the file in onnxruntime: pip install onnxruntime") from None
    from ..data.datasets import load_csv
    from ..train.predict import predict, predict_proba

    if not isinstance(preprocessing, TablePreprocessor) or "columns" not in meta:
        raise UsageError("--check needs a model written by gradwell train (it reads a CSV)")
    frame = load_csv(args.check, columns=meta["columns"], categorical=meta["categorical"]).frame()
    X = preprocessing.transform(frame)
    classification = meta.get("task") == "classification"
    want = predict_proba(model, X) if classification else predict(model, X)
    session = onnxruntime.InferenceSession(str(args.out), providers=["CPUExecutionProvider"])
    name = "probabilities" if classification else "output"
    (got,) = session.run([name], table_feeds(frame, preprocessing))
    agree = bool(np.allclose(got, want, rtol=CHECK_TOLERANCE, atol=CHECK_TOLERANCE))
    print(
        f"checked {args.out} on the {len(X)} rows of {args.check}: onnxruntime and gradwell "
        + ("agree" if agree else "DIFFER")
        + f" (largest difference in {name}: {float(np.max(np.abs(got - want))):.2g}; "
        f"tolerance {CHECK_TOLERANCE:g} relative and absolute)"
    )
    return 0 if agree else 1


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
