"""A small builder for ONNX graphs: unique names, constants, nodes, typed inputs and outputs.

The ``onnx`` package is optional (``pip install onnx``) and imported on first use, not
with gradwell (it takes seconds to import): :class:`Graph` says what to install when it
is missing.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

#: The ONNX operator set the graphs use (17: LayerNormalization; ReduceMean's axes an attribute).
OPSET = 17
#: The ONNX-ML operator set (LabelEncoder, for the one-hot encoding of text columns).
ML_OPSET = 3
#: The file format version that goes with opset 17, read by every onnxruntime since 1.11.
IR_VERSION = 8
#: The name of the symbolic batch axis of every input and output.
BATCH = "N"


class ExportError(ValueError):
    """A model, layer or preprocessing step that cannot be written as ONNX, and why."""


@functools.cache
def _onnx() -> Any:
    """The ``onnx`` module, with its helpers loaded."""
    try:
        import onnx
        import onnx.checker
        import onnx.helper
        import onnx.numpy_helper
    except ImportError:  # export is optional; everything else in gradwell works without onnx
        raise ImportError("ONNX export needs the onnx package: pip install onnx") from None
    return onnx


def element_type(dtype: Any) -> int:
    """The ONNX element type of a numpy dtype (float32, float64, int64, bool, text)."""
    onnx = _onnx()
    dtype = np.dtype(dtype)
    if dtype.kind in "OUS":
        return int(onnx.TensorProto.STRING)
    return int(onnx.helper.np_dtype_to_tensor_dtype(dtype))


def tensor(array: np.ndarray, name: str = "") -> Any:
    """An ``onnx.TensorProto`` holding ``array`` (for an attribute or an initializer)."""
    return _onnx().numpy_helper.from_array(np.ascontiguousarray(array), name)


class Graph:
    """Nodes, constants, inputs and outputs of one ONNX graph, with unique value names.

    >>> g = Graph()
    >>> x = g.input("x", np.float32, (None, 3))
    >>> g.output(g.op("Relu", [x]), "y", np.float32, (None, 3))
    >>> g.model().graph.node[0].op_type
    'Relu'
    """

    def __init__(self) -> None:
        _onnx()
        self.nodes: list[Any] = []
        self.constants: list[Any] = []
        self.inputs: list[Any] = []
        self.outputs: list[Any] = []
        self._taken: set[str] = set()
        self.uses_ml = False

    def name(self, hint: str) -> str:
        """``hint``, or ``hint_2``, ``hint_3``... if taken."""
        name, k = hint, 1
        while name in self._taken:
            k += 1
            name = f"{hint}_{k}"
        self._taken.add(name)
        return name

    def constant(self, value: Any, hint: str = "const", dtype: Any = None) -> str:
        """A named initializer holding ``value`` (an array or a number) in ``dtype``."""
        array = np.asarray(value, dtype=dtype)
        if array.dtype.kind in "OUS":
            array = array.astype(object)
        name = self.name(hint)
        self.constants.append(tensor(array, name))
        return name

    def op(self, op_type: str, inputs: list[str], hint: str | None = None, *,
           domain: str = "", **attributes: Any) -> str:  # fmt: skip
        """Append a node with one output; returns the output's name."""
        out = self.name(hint or op_type.lower())
        node = _onnx().helper.make_node(
            op_type, inputs, [out], name=self.name(f"{out}/{op_type}"), domain=domain, **attributes
        )
        self.nodes.append(node)
        if domain == "ai.onnx.ml":
            self.uses_ml = True
        return out

    def input(self, name: str, dtype: Any, shape: tuple[int | None, ...]) -> str:
        """A graph input; ``None`` in ``shape`` is the batch axis ``N``."""
        self._declare(self.inputs, self.name(name), dtype, shape)
        return self.inputs[-1].name  # type: ignore[no-any-return]

    def output(self, value: str, name: str, dtype: Any, shape: tuple[int | None, ...]) -> None:
        """Expose ``value`` as the graph output ``name``."""
        name = self.name(name)
        self.nodes.append(
            _onnx().helper.make_node("Identity", [value], [name], name=f"{name}/Identity")
        )
        self._declare(self.outputs, name, dtype, shape)

    def _declare(self, where: list[Any], name: str, dtype: Any, shape: tuple[Any, ...]) -> None:
        dims = [BATCH if d is None else int(d) for d in shape]
        where.append(_onnx().helper.make_tensor_value_info(name, element_type(dtype), dims))

    def model(self, name: str = "gradwell", metadata: dict[str, str] | None = None) -> Any:
        """The checked ``onnx.ModelProto``."""
        onnx = _onnx()
        helper = onnx.helper
        graph = helper.make_graph(
            self.nodes, name, self.inputs, self.outputs, initializer=self.constants
        )
        opsets = [helper.make_opsetid("", OPSET)]
        if self.uses_ml:
            opsets.append(helper.make_opsetid("ai.onnx.ml", ML_OPSET))
        from .. import __version__

        model = helper.make_model(
            graph, opset_imports=opsets, producer_name="gradwell", producer_version=__version__
        )
        model.ir_version = IR_VERSION
        helper.set_model_props(model, dict(metadata or {}))
        onnx.checker.check_model(model, full_check=True)
        return model
