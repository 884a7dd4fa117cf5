"""``model.summary(example)``: Keras's table of layers, output shapes and parameter counts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._numeric import numeric_array
from ..autograd.recording import no_grad
from ..autograd.tensor import Tensor


@dataclass(frozen=True)
class Row:
    """One module: its path, type, output shape (None if it did not run) and own counts."""

    path: str
    type: str
    output_shape: tuple[Any, ...] | None
    trainable: int
    non_trainable: int

    @property
    def params(self) -> int:
        return self.trainable + self.non_trainable


@dataclass(frozen=True)
class Summary:
    """What ``Module.summary`` measured; ``str()`` is the table."""

    model: str
    rows: tuple[Row, ...]
    input_shape: tuple[Any, ...]

    @property
    def trainable(self) -> int:
        return sum(r.trainable for r in self.rows)

    @property
    def non_trainable(self) -> int:
        return sum(r.non_trainable for r in self.rows)

    @property
    def total(self) -> int:
        return self.trainable + self.non_trainable

    def __str__(self) -> str:
        table = [("Layer (type)", "Output shape", "Param #")]
        table += [
            (f"{r.path} ({r.type})", "-" if r.output_shape is None else _shape(r.output_shape),
             f"{r.params:,}")
            for r in self.rows
        ]  # fmt: skip
        widths = [max(len(row[k]) for row in table) for k in range(3)]
        line = "  ".join("-" * w for w in widths)

        def fmt(row: tuple[str, str, str]) -> str:
            return f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:>{widths[2]}}"

        return "\n".join(
            [f'Model: "{self.model}", input {_shape(self.input_shape)}', line, fmt(table[0]), line]
            + [fmt(row) for row in table[1:]]
            + [
                line,
                f"Total params: {self.total:,}",
                f"Trainable params: {self.trainable:,}",
                f"Non-trainable params: {self.non_trainable:,}",
            ]
        )

    def __repr__(self) -> str:
        return (
            f"Summary(model={self.model!r}, total={self.total}, trainable={self.trainable}, "
            f"non_trainable={self.non_trainable})"
        )


def _shape(shape: tuple[Any, ...]) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _own_counts(module: Any) -> tuple[int, int]:
    """(trainable, non-trainable) of the module's own parameters and floating buffers.

    As Keras counts: a frozen parameter and a running statistic (BatchNorm's mean and
    variance) are non-trainable; an integer buffer (a step counter) is not a parameter."""
    trainable = frozen = 0
    for p in module._parameters.values():
        if p is not None:
            if p.requires_grad:
                trainable += p.data.size
            else:
                frozen += p.data.size
    for b in module._buffers.values():
        if b is not None and b.data.dtype.kind == "f":
            frozen += b.data.size
    return trainable, frozen


def summarize(
    model: Any, example: Any = None, input_shape: Any = None, dtype: Any = np.float32
) -> Summary:
    """Run ``example`` (or zeros of ``(2, *input_shape)``) through ``model`` in eval mode
    and collect every module's output shape; the batch axis is shown as ``N``."""
    if (example is None) == (input_shape is None):
        raise TypeError("summary: pass an example input or input_shape=(...), one of them")
    if example is None:
        try:
            shape = tuple(int(s) for s in input_shape)
        except (TypeError, ValueError):
            raise TypeError(
                f"summary: expected input_shape as a tuple of sizes (no batch axis); got "
                f"{input_shape!r}"
            ) from None
        example = np.zeros((2, *shape), dtype=dtype)
    x = example if isinstance(example, Tensor) else Tensor(numeric_array(example, "summary input"))
    batch = x.shape[0] if x.ndim else None
    shapes: dict[int, tuple[Any, ...]] = {}

    def record(module: Any, inputs: Any, out: Any) -> None:
        if id(module) not in shapes and hasattr(out, "shape"):
            shape = tuple(out.shape)
            shapes[id(module)] = ("N", *shape[1:]) if shape and shape[0] == batch else shape

    named = list(model.named_modules())
    handles = [m.register_forward_hook(record) for _, m in named]
    modes = [(m, m.training) for _, m in named]
    try:
        model.eval()
        with no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
        for m, training in modes:
            m.training = training
    rows = []
    for path, m in named:  # a container shows through its children's paths
        own = _own_counts(m)
        if any(own) or not m._modules:
            rows.append(Row(path or "model", type(m).__name__, shapes.get(id(m)), *own))
    in_shape = tuple(x.shape)
    return Summary(type(model).__name__, tuple(rows), ("N", *in_shape[1:]) if in_shape else ())
