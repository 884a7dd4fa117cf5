"""The NaN trap: find the op that first turned finite inputs into inf or nan.

``detect_anomaly`` observes every op (its output is checked) and every VJP (the
gradients it made are checked) through the recording seam (:mod:`.recording`).
Outside the context nothing is registered, so normal training pays nothing.
"""

from __future__ import annotations

import os
import traceback
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import recording
from .tensor import Tensor

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def user_code_line() -> str:
    """'file:line: source' of the innermost stack frame outside gradwell itself."""
    for frame in reversed(traceback.extract_stack()):
        if not os.path.abspath(frame.filename).startswith(_PACKAGE_DIR):
            return f"{frame.filename}:{frame.lineno}: {(frame.line or '').strip()}"
    return "<unknown>"


def current_module_path(names: dict[int, str] | None = None) -> str | None:
    """The innermost module being called, by its path in ``names`` or its class name."""
    mod = recording.scope()
    if mod is None:
        return None
    if names and id(mod) in names:
        return names[id(mod)]
    return type(mod).__name__


def value_range(a: np.ndarray) -> tuple[float, float] | None:
    a = np.asarray(a)
    if a.dtype.kind not in "fiu" or a.size == 0:
        return None
    finite = a[np.isfinite(a)] if a.dtype.kind == "f" else a
    if finite.size == 0:
        return (float("nan"), float("nan"))
    return (float(finite.min()), float(finite.max()))


@dataclass
class Anomaly:
    """Where a non-finite value was first produced."""

    phase: str  # "forward" or "backward"
    op: str
    module: str | None
    input_ranges: list[tuple[float, float] | None]
    input_shapes: list[tuple[int, ...]]
    nonfinite: dict[str, int]
    code: str
    details: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        where = f" in module {self.module}" if self.module else ""
        ranges = ", ".join(
            f"{s} in [{r[0]:.4g}, {r[1]:.4g}]" if r else f"{s}"
            for s, r in zip(self.input_shapes, self.input_ranges)
        )
        return (
            f"{self.phase} op '{self.op}'{where} produced {self.nonfinite} from finite inputs "
            f"({ranges}) at {self.code}"
        )


class AnomalyError(FloatingPointError):
    def __init__(self, anomaly: Anomaly) -> None:
        super().__init__(str(anomaly))
        self.anomaly = anomaly


def _count_nonfinite(a: np.ndarray) -> dict[str, int]:
    return {"nan": int(np.isnan(a).sum()), "inf": int(np.isinf(a).sum())}


def _finite(a: Any) -> bool:
    # np.generic too: full reductions (sum, mean, max) return numpy scalars, not 0-d arrays.
    floating = isinstance(a, (np.ndarray, np.generic)) and a.dtype.kind == "f"
    return not floating or bool(np.isfinite(a).all())


class detect_anomaly:
    """Context manager: stop (or record) at the first op that makes inf/nan from finite values.

    ``raise_error=True`` raises :class:`AnomalyError` there; otherwise the first
    anomaly is kept in ``.anomalies`` and training goes on. ``module_names`` maps
    ``id(module)`` to its path (as from ``model.named_modules()``) for the report. It
    watches the thread that entered it (the seam's observers are per thread).

    >>> import gradwell as gw
    >>> x = gw.tensor([0.0, 1.0], requires_grad=True)
    >>> with gw.detect_anomaly(raise_error=False) as trap:
    ...     y = gw.log(x)
    >>> trap.anomalies[0].op
    'log'
    """

    def __init__(self, raise_error: bool = True, module_names: dict[int, str] | None = None):
        self.raise_error = raise_error
        self.module_names = module_names
        self.anomalies: list[Anomaly] = []

    def _report(self, phase: str, op: str, inputs: list[np.ndarray], out: np.ndarray) -> None:
        anomaly = Anomaly(
            phase=phase,
            op=op,
            module=current_module_path(self.module_names),
            input_ranges=[value_range(a) for a in inputs],
            input_shapes=[a.shape for a in inputs],
            nonfinite=_count_nonfinite(out),
            code=user_code_line(),
        )
        self.anomalies.append(anomaly)
        if self.raise_error:
            raise AnomalyError(anomaly)

    def _forward(self, step: recording.Step) -> None:
        if self.anomalies and not self.raise_error:
            return  # only the first producer matters; later ones merely pass it on
        out, inputs = step.output, step.inputs
        if _finite(out.data) or not all(_finite(t.data) for t in inputs):
            return
        self._report("forward", step.op.name, [t.data for t in inputs], out.data)

    def _backward(self, node: Tensor, g: Any, input_grads: Any) -> None:
        if self.anomalies and not self.raise_error:
            return
        arrays = [x.data if isinstance(x, Tensor) else x for x in input_grads if x is not None]
        if all(_finite(a) for a in arrays):
            return
        upstream = g.data if isinstance(g, Tensor) else g
        inputs = [t.data for t in (node._inputs or ())]
        if not _finite(upstream) or not all(_finite(a) for a in inputs):
            return  # passed on, not produced here
        bad = next(a for a in arrays if not _finite(a))
        self._report("backward", node.op or "?", inputs, bad)

    def __enter__(self) -> detect_anomaly:
        self._observing = recording.observe(op=self._forward, vjp=self._backward)
        self._observing.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._observing.__exit__(None, None, None)
