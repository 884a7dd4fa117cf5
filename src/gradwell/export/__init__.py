"""ONNX export: ``gw.export_onnx(model, path, example)`` and ``gradwell export``.

The graph is built with the ``onnx`` package's helpers (opset 17, plus ONNX-ML's
LabelEncoder for text columns) and checked with ``onnx.checker`` before it is
written; ``onnx`` is needed only here (``pip install onnx``; onnxruntime runs the
files).
"""

from .graph import OPSET, ExportError
from .layers import supported
from .model import export_onnx
from .tables import table_feeds

__all__ = ["OPSET", "ExportError", "export_onnx", "supported", "table_feeds"]
