"""Primitive ops: each one's forward and vector-Jacobian product, side by side.

A VJP has the signature ``vjp(F, g, out, inputs, needs, attrs)`` and returns one
gradient (or None) per input. It is written only with operators and ``F.*``
calls, so the same rule runs on numpy arrays (``F = ArrayF``, first-order
backward, fast) and on Tensors (``F = TensorF``, ``create_graph=True``: the
backward pass is itself recorded and can be differentiated again).

VJPs return gradients in the broadcast shape of the output; the engine sums
them back to each input's shape, once, for every op.
"""

from __future__ import annotations

import builtins
import math
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.special import erf as _erf

from .recording import Step, _mode, no_grad_threads, node_counter, observers, observing_threads
from .tensor import METHODS, Tensor

REGISTRY: dict[str, Primitive] = {}
_NO_ATTRS: dict[str, Any] = {}


class Primitive:
    """One differentiable (or explicitly non-differentiable) operation.

    Calling it with tensors (Python numbers and arrays are lifted to constants)
    runs the forward on their arrays and, when grad mode is on and an input
    requires grad, records the result as a graph node.
    """

    __slots__ = ("name", "forward", "vjp", "saves", "reads", "reference", "__dict__")

    def __init__(
        self, name: str, forward: Callable[..., Any], saves: bool, reads: str = "io"
    ) -> None:
        self.name = name
        self.forward = forward
        self.vjp: Callable[..., Sequence[Any]] | None = None
        self.saves = saves
        self.reads = reads  # the VJP reads the values of: "i" its inputs, "o" its output
        # A fused primitive's definition in core primitives, ``reference(out, *inputs,
        # **attrs)`` on Tensors (``out``: the forward's output array, for what it drew at
        # random; ``attrs`` with what it saved): backward with ``create_graph``
        # differentiates it, so ``vjp`` is only ever called on arrays.
        self.reference: Callable[..., Any] | None = None
        self.__doc__ = forward.__doc__

    def defvjp(self, vjp: Callable[..., Sequence[Any]]) -> Callable[..., Sequence[Any]]:
        self.vjp = vjp
        return vjp

    def defreference(self, reference: Callable[..., Any]) -> Callable[..., Any]:
        self.reference = reference
        return reference

    def __call__(self, *args: Any, **attrs: Any) -> Tensor:
        for a in args:
            if not isinstance(a, Tensor):
                args = _lift(args)
                break
        return apply(self, args, attrs or _NO_ATTRS)

    def __repr__(self) -> str:
        return f"<primitive {self.name}>"


def primitive(
    name: str, saves: bool = False, reads: str = "io"
) -> Callable[[Callable[..., Any]], Primitive]:
    """Register ``forward`` as a primitive; with ``saves`` it returns (out, saved).

    ``reads`` says whose values the VJP reads ("i": the inputs', "o": the output's, ""
    only shapes): backward refuses to run it after those were written in place.
    """

    def register(forward: Callable[..., Any]) -> Primitive:
        op = Primitive(name, forward, saves, reads)
        REGISTRY[name] = op
        return op

    return register


def apply(op: Primitive, inputs: tuple[Tensor, ...], attrs: dict[str, Any]) -> Tensor:
    # One and two inputs are nearly every call: spelled out, they skip the generic loops.
    if len(inputs) == 1:
        a = inputs[0]
        out = op.forward(a.data, **attrs)
        needs: tuple[bool, ...] = (a.requires_grad,)
    elif len(inputs) == 2:
        a, b = inputs
        out = op.forward(a.data, b.data, **attrs)
        needs = (a.requires_grad, b.requires_grad)
    else:
        out = op.forward(*[t.data for t in inputs], **attrs)
        needs = tuple([t.requires_grad for t in inputs])
    node_attrs = attrs
    if op.saves:
        out, saved = out
        node_attrs = {**attrs, "saved": saved}
    # (by dtype.char: arrays made by compiled kernels carry equal but distinct dtypes)
    if out.dtype.char == "d" and "dtype" not in attrs:
        if not builtins.any([t.data.dtype.char == "d" for t in inputs]):
            out = out.astype(np.float32)  # integers promote to the default float (PyTorch)
    # (this thread's grad mode and observers, each behind a test of a set: see recording)
    if True in needs and op.vjp is not None and (not no_grad_threads or _mode.enabled):
        result = Tensor(out, True, op, inputs, node_attrs, needs, next(node_counter))
        if not observing_threads:  # (cheapest test first: it runs for every op)
            for a in inputs:
                by = a._op
                if by is not None and a.data.nbytes >= RELEASE_BYTES and not _reads_inputs(by):
                    _release_unread(a._inputs)
    else:
        result = Tensor(out)
    if observing_threads and observers.op:
        step = Step(op, inputs, result, attrs)
        for observe in observers.op:
            observe(step)
    return result


# Intermediate values smaller than this stay, freed or not: freeing them saves little, and a
# drawing of a small graph (``gradwell.viz``) can show every value.
RELEASE_BYTES = 1 << 16


def _reads_inputs(op: Primitive) -> bool:
    """Whether backward through ``op`` (its VJP, or its reference with ``create_graph``)
    reads the values of its inputs, not only their shapes."""
    return "i" in op.reads or op.reference is not None


def _release_unread(inputs: tuple[Tensor, ...] | None, depth: int = 3) -> None:
    """Free the values of those ``inputs`` that nothing can read any more, as PyTorch does.

    ``inputs`` are those of a node whose backward reads no input values (only shapes), as
    a later op consumes it: by then the caller's variables have moved on. An input that
    only this node references (no variable, no other node, no observer holds it) and whose
    own VJP does not read its output is needed for its place in the graph alone; its array
    is replaced by a read-only broadcast view of the same shape and dtype (no memory). So
    the activation that a relu, a reshape or an addition follows does not live until
    backward. The walk goes ``depth`` nodes up through such nodes: a view that a layer puts
    around its op (BatchNorm2d's reshapes and transposes) keeps the array it views alive
    until the view itself is freed.
    """
    if inputs is None:  # freed by backward
        return
    for t in inputs:
        data, op = t.data, t._op
        if op is None or "o" in op.reads or data.nbytes < RELEASE_BYTES:
            continue
        # (zero strides: released already, or a broadcast view with no memory of its own;
        # held by: this node's inputs, the local ``t`` and getrefcount's own argument)
        held = sys.getrefcount(t) - 2 - [u is t for u in inputs].count(True)
        if not held and 0 not in data.strides:
            t.data = data = np.broadcast_to(np.zeros((), data.dtype), data.shape)
        if depth > 1 and 0 in data.strides and not _reads_inputs(op):
            _release_unread(t._inputs, depth - 1)


def constant_dtype(value: Any, like: np.dtype | None) -> np.dtype | None:
    """The dtype a Python number takes next to a tensor of dtype ``like``.

    Python scalars never upcast a tensor: ``float32_tensor * 2.0`` stays float32.
    A float next to an integer tensor (or alone) is float32, the default float.
    """
    if like is not None and like.kind in "fc":
        return like
    if isinstance(value, float):
        return np.dtype(np.float32)
    return like if like is not None and like.kind in "iu" and isinstance(value, int) else None


# Constant tensors for Python numbers, reused: `x * 0.5` in a loop should not build a
# new array each time. They never require grad and the engine never writes to them.
_constants: dict[tuple[type, Any, Any, float], Tensor] = {}


def _scalar_constant(value: Any, like: np.dtype | None) -> Tensor:
    # The sign is part of the key: -0.0 == 0.0, yet x * -0.0 and x * 0.0 differ.
    key = (type(value), value, like, math.copysign(1.0, value))
    t = _constants.get(key)
    if t is None:
        if len(_constants) > 4096:
            _constants.clear()
        arr = np.asarray(value, dtype=constant_dtype(value, like))
        if arr.dtype.kind == "O":  # an int beyond int64/uint64 has no array dtype
            raise ValueError(f"expected a number that fits in 64 bits; got the integer {value}")
        arr.flags.writeable = False
        t = _constants[key] = Tensor(arr)
    return t


def _lift(args: tuple[Any, ...]) -> tuple[Tensor, ...]:
    if len(args) == 2:  # tensor <op> number, the common case, without the general loops
        a, b = args
        if isinstance(a, Tensor) and isinstance(b, (int, float)):
            return a, _scalar_constant(b, a.data.dtype)
        if isinstance(b, Tensor) and isinstance(a, (int, float)):
            return _scalar_constant(a, b.data.dtype), b
    like = None
    for a in args:
        if isinstance(a, Tensor):
            like = a.data.dtype
            break
    out = []
    for a in args:
        if isinstance(a, Tensor):
            out.append(a)
        elif isinstance(a, (bool, int, float)):
            out.append(_scalar_constant(a, like))
        else:  # an array: a float array takes the tensor's float dtype, like a Python float
            arr = np.asarray(a)
            if arr.dtype.kind not in "biufc":
                raise TypeError(
                    f"expected numbers (a number, an array of numbers or a Tensor); got an "
                    f"array of dtype {arr.dtype} ({type(a).__name__})"
                )
            if arr.dtype.kind == "f":
                target = like if like is not None and like.kind == "f" else np.float32
                arr = arr.astype(target, copy=False)
            out.append(Tensor(arr))
    return tuple(out)


# ---------------------------------------------------------------------------
# Shared helpers for the VJPs.


def _keepdims_shape(shape: tuple[int, ...], axis: Any) -> tuple[int, ...]:
    if axis is None or not shape:  # a 0-d tensor reduced over axis 0 or -1 stays 0-d
        return (1,) * len(shape)
    axes = (axis,) if isinstance(axis, int) else axis
    axes = tuple(a % len(shape) for a in axes)
    return tuple(1 if i in axes else s for i, s in enumerate(shape))


def _scalar_axis(a: Any, axis: Any) -> Any:
    """Axis 0 or -1 of a 0-d array is the whole of it (PyTorch allows it, numpy's mean not)."""
    return None if a.ndim == 0 else axis


def _expand(F: Any, t: Any, shape: tuple[int, ...], axis: Any, keepdims: bool) -> Any:
    """A reduction's result (or its gradient) with the reduced axes put back as size 1."""
    return t if keepdims else F.reshape(t, _keepdims_shape(shape, axis))


def _has_advanced_index(index: Any) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return builtins.any(isinstance(p, (np.ndarray, list)) for p in parts)


# ---------------------------------------------------------------------------
# Arithmetic.


@primitive("add", reads="")
def add(a: Any, b: Any) -> Any:
    """a + b, with numpy broadcasting."""
    return a + b


@add.defvjp
def _(F, g, out, ins, needs, attrs):
    return g, g


@primitive("sub", reads="")
def sub(a: Any, b: Any) -> Any:
    """a - b, with numpy broadcasting."""
    return a - b


@sub.defvjp
def _(F, g, out, ins, needs, attrs):
    return g, (-g if needs[1] else None)


@primitive("mul", reads="i")
def mul(a: Any, b: Any) -> Any:
    """a * b, elementwise with numpy broadcasting."""
    return a * b


@mul.defvjp
def _(F, g, out, ins, needs, attrs):
    a, b = ins
    return (g * b if needs[0] else None), (g * a if needs[1] else None)


@primitive("div")
def div(a: Any, b: Any) -> Any:
    """a / b, elementwise with numpy broadcasting."""
    return a / b


@div.defvjp
def _(F, g, out, ins, needs, attrs):
    a, b = ins
    return (g / b if needs[0] else None), (-g * out / b if needs[1] else None)


@primitive("pow")
def pow(a: Any, b: Any) -> Any:
    """a ** b. The gradient with respect to b uses log(a), so it needs a >= 0.

    At a zero base the limits are taken, as PyTorch does: d(a ** 0)/da = 0 and
    d(0 ** b)/db = 0 for b >= 0 (not 0 * inf = nan).
    """
    return a**b


@pow.defvjp
def _(F, g, out, ins, needs, attrs):
    a, b = ins
    # a ** (b - 1) is inf at a = 0, b = 0, where the factor b makes the gradient 0: the
    # safe exponent keeps it finite, so neither this gradient nor its own is nan.
    ga = g * b * a ** (F.where(b == 0, 1.0, b) - 1) if needs[0] else None
    # log(1) = 0 stands in for log(0): 0 ** b is 0 (or 1) for b >= 0, whose slope is 0.
    gb = g * out * F.log(F.where(a == 0, 1.0, a)) if needs[1] else None
    return ga, gb


@primitive("neg", reads="")
def neg(a: Any) -> Any:
    """-a."""
    return -a


@neg.defvjp
def _(F, g, out, ins, needs, attrs):
    return (-g,)


@primitive("abs", reads="i")
def abs(a: Any) -> Any:
    """|a|. Convention: d|a|/da = 0 at a = 0."""
    return np.abs(a)


@abs.defvjp
def _(F, g, out, ins, needs, attrs):
    return (g * F.sign(ins[0]),)


@primitive("exp", reads="o")
def exp(a: Any) -> Any:
    """e ** a."""
    return np.exp(a)


@exp.defvjp
def _(F, g, out, ins, needs, attrs):
    return (g * out,)


@primitive("log", reads="i")
def log(a: Any) -> Any:
    """Natural logarithm."""
    return np.log(a)


@log.defvjp
def _(F, g, out, ins, needs, attrs):
    return (g / ins[0],)


@primitive("log1p", reads="i")
def log1p(a: Any) -> Any:
    """log(1 + a), accurate for small a."""
    return np.log1p(a)


@log1p.defvjp
def _(F, g, out, ins, needs, attrs):
    return (g / (1 + ins[0]),)


@primitive("sqrt", reads="o")
def sqrt(a: Any) -> Any:
    """Square root."""
    return np.sqrt(a)


@sqrt.defvjp
def _(F, g, out, ins, needs, attrs):
    return (g / (2 * out),)


@primitive("erf", reads="i")
def erf(a: Any) -> Any:
    """The Gauss error function."""
    return _erf(a)


@erf.defvjp
def _(F, g, out, ins, needs, attrs):
    a = ins[0]
    return (g * (2 / math.sqrt(math.pi)) * F.exp(-(a * a)),)


@primitive("clip", reads="i")
def clip(a: Any, *, min: Any, max: Any) -> Any:
    """Limit a to [min, max] (either may be None). Gradient 1 where min <= a <= max."""
    return np.clip(a, min, max)


@clip.defvjp
def _(F, g, out, ins, needs, attrs):
    a = ins[0]
    lo, hi = attrs["min"], attrs["max"]
    if lo is not None:
        g = F.where(a < lo, 0.0, g)
    if hi is not None:
        g = F.where(a > hi, 0.0, g)
    return (g,)


def _tie_vjp(F: Any, g: Any, a: Any, b: Any, a_wins: Any) -> tuple[Any, Any]:
    """maximum/minimum: the winner takes the gradient; an exact tie splits it in half."""
    tie = a == b
    half = g * 0.5
    ga = F.where(a_wins, g, F.where(tie, half, 0.0))
    gb = F.where(a_wins, 0.0, F.where(tie, half, g))
    return ga, gb


@primitive("maximum", reads="i")
def maximum(a: Any, b: Any) -> Any:
    """Elementwise max. Where a == b each side receives half the gradient."""
    return np.maximum(a, b)


@maximum.defvjp
def _(F, g, out, ins, needs, attrs):
    a, b = ins
    return _tie_vjp(F, g, a, b, a > b)


@primitive("minimum", reads="i")
def minimum(a: Any, b: Any) -> Any:
    """Elementwise min. Where a == b each side receives half the gradient."""
    return np.minimum(a, b)


@minimum.defvjp
def _(F, g, out, ins, needs, attrs):
    a, b = ins
    return _tie_vjp(F, g, a, b, a < b)


@primitive("where", reads="i")
def where(cond: Any, a: Any, b: Any) -> Any:
    """a where cond is true, else b (broadcast together). cond gets no gradient."""
    return np.where(cond, a, b)


@where.defvjp
def _(F, g, out, ins, needs, attrs):
    c = ins[0]
    return (
        None,
        F.where(c, g, 0.0) if needs[1] else None,
        F.where(c, 0.0, g) if needs[2] else None,
    )


@primitive("astype", reads="")
def astype(a: Any, *, dtype: np.dtype) -> Any:
    """A copy converted to ``dtype``; gradients are converted back."""
    return a.astype(dtype)


@astype.defvjp
def _(F, g, out, ins, needs, attrs):
    return (F.cast(g, ins[0].dtype),)


# ---------------------------------------------------------------------------
# Activations.


@primitive("tanh", reads="o")
def tanh(a: Any) -> Any:
    """Hyperbolic tangent."""
    return np.tanh(a)


@tanh.defvjp
def _(F, g, out, ins, needs, attrs):
    return (g * (1 - out * out),)


def _sigmoid_array(a: Any) -> Any:
    # 0.5 * (1 + tanh(a / 2)) is the logistic function without overflow for large |a|.
    return 0.5 + 0.5 * np.tanh(0.5 * a)


@primitive("sigmoid", reads="o")
def sigmoid(a: Any) -> Any:
    """The logistic function 1 / (1 + e ** -a)."""
    return _sigmoid_array(a)


@sigmoid.defvjp
def _(F, g, out, ins, needs, attrs):
    return (g * out * (1 - out),)


@primitive("relu", reads="o")
def relu(a: Any) -> Any:
    """max(a, 0). Convention: relu'(0) = 0, so a unit at exactly zero passes no gradient."""
    return np.maximum(a, 0)


@relu.defvjp
def _(F, g, out, ins, needs, attrs):
    return (g * (out > 0),)  # out > 0 where a > 0: the output is kept, not the input


@primitive("leaky_relu", reads="i")
def leaky_relu(a: Any, *, negative_slope: float = 0.01) -> Any:
    """a for a > 0, else negative_slope * a. Convention: the slope at 0 is negative_slope."""
    return np.where(a > 0, a, a * negative_slope)


@leaky_relu.defvjp
def _(F, g, out, ins, needs, attrs):
    return (F.where(ins[0] > 0, g, g * attrs["negative_slope"]),)


@primitive("elu")
def elu(a: Any, *, alpha: float = 1.0) -> Any:
    """a for a > 0, else alpha * (e ** a - 1)."""
    return np.where(a > 0, a, alpha * np.expm1(np.minimum(a, 0)))


@elu.defvjp
def _(F, g, out, ins, needs, attrs):
    return (F.where(ins[0] > 0, g, g * (out + attrs["alpha"])),)


_INV_SQRT2 = 1 / math.sqrt(2)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)


@primitive("gelu", reads="i")
def gelu(a: Any) -> Any:
    """a * Phi(a), Phi the standard normal CDF (the exact form, as PyTorch's default)."""
    return a * (0.5 + 0.5 * _erf(a * _INV_SQRT2))


@gelu.defvjp
def _(F, g, out, ins, needs, attrs):
    a = ins[0]
    cdf = 0.5 + 0.5 * F.erf(a * _INV_SQRT2)
    pdf = F.exp(-0.5 * a * a) * _INV_SQRT_2PI
    return (g * (cdf + a * pdf),)


@primitive("softplus", reads="i")
def softplus(a: Any, *, beta: float = 1.0, threshold: float = 20.0) -> Any:
    """log(1 + e ** (beta a)) / beta; linear where beta * a > threshold (as PyTorch)."""
    ba = a * beta
    return np.where(ba > threshold, a, np.logaddexp(0, ba) / beta)


@softplus.defvjp
def _(F, g, out, ins, needs, attrs):
    ba = ins[0] * attrs["beta"]
    return (F.where(ba > attrs["threshold"], g, g * F.sigmoid(ba)),)


@primitive("softmax", reads="o")
def softmax(a: Any, *, axis: int = -1) -> Any:
    """exp(a) / sum(exp(a)) along ``axis``, computed without overflow."""
    e = np.exp(a - a.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@softmax.defvjp
def _(F, g, out, ins, needs, attrs):
    axis = attrs["axis"]
    return (out * (g - F.sum(g * out, axis, True)),)


def _logsumexp_keepdims(a: Any, axis: Any) -> Any:
    m = a.max(axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)  # an all -inf slice must give -inf, not nan
    return np.log(np.exp(a - m).sum(axis=axis, keepdims=True)) + m


@primitive("log_softmax", reads="o")
def log_softmax(a: Any, *, axis: int = -1) -> Any:
    """a - logsumexp(a) along ``axis``: log-probabilities, stable for large |a|."""
    return a - _logsumexp_keepdims(a, axis)


@log_softmax.defvjp
def _(F, g, out, ins, needs, attrs):
    axis = attrs["axis"]
    return (g - F.exp(out) * F.sum(g, axis, True),)


# ---------------------------------------------------------------------------
# Reductions. ``axis`` is None, an int or a tuple; ``keepdims`` as in numpy.


@primitive("sum", reads="")
def sum(a: Any, *, axis: Any = None, keepdims: bool = False) -> Any:
    """Sum over ``axis`` (all axes when None)."""
    return np.sum(a, axis=_scalar_axis(a, axis), keepdims=keepdims)


@sum.defvjp
def _(F, g, out, ins, needs, attrs):
    a = ins[0]
    return (F.broadcast_to(_expand(F, g, a.shape, attrs["axis"], attrs["keepdims"]), a.shape),)


@primitive("mean", reads="")
def mean(a: Any, *, axis: Any = None, keepdims: bool = False) -> Any:
    """Arithmetic mean over ``axis`` (all axes when None)."""
    return np.mean(a, axis=_scalar_axis(a, axis), keepdims=keepdims)


@mean.defvjp
def _(F, g, out, ins, needs, attrs):
    a = ins[0]
    n = math.prod(a.shape) // (math.prod(out.shape) or 1)  # 0 for an empty input: empty gradient
    g = _expand(F, g, a.shape, attrs["axis"], attrs["keepdims"]) * (1.0 / n if n else 0.0)
    return (F.broadcast_to(g, a.shape),)


def _extremum_vjp(F, g, out, ins, needs, attrs):
    a = ins[0]
    axis, keepdims = attrs["axis"], attrs["keepdims"]
    hit = F.cast(a == _expand(F, out, a.shape, axis, keepdims), g.dtype)
    share = hit / F.sum(hit, axis, True)
    return (_expand(F, g, a.shape, axis, keepdims) * share,)


@primitive("max")
def max(a: Any, *, axis: Any = None, keepdims: bool = False) -> Any:
    """Largest element over ``axis``. Ties share the gradient equally among them."""
    return np.max(a, axis=_scalar_axis(a, axis), keepdims=keepdims)


@primitive("min")
def min(a: Any, *, axis: Any = None, keepdims: bool = False) -> Any:
    """Smallest element over ``axis``. Ties share the gradient equally among them."""
    return np.min(a, axis=_scalar_axis(a, axis), keepdims=keepdims)


max.defvjp(_extremum_vjp)
min.defvjp(_extremum_vjp)


@primitive("logsumexp")
def logsumexp(a: Any, *, axis: Any = None, keepdims: bool = False) -> Any:
    """log(sum(exp(a))) over ``axis``, stable for large |a|."""
    axis = _scalar_axis(a, axis)
    r = _logsumexp_keepdims(a, axis)
    return r if keepdims else np.squeeze(r, axis=axis)


@logsumexp.defvjp
def _(F, g, out, ins, needs, attrs):
    a = ins[0]
    axis, keepdims = attrs["axis"], attrs["keepdims"]
    out = _expand(F, out, a.shape, axis, keepdims)
    return (_expand(F, g, a.shape, axis, keepdims) * F.exp(a - out),)


# ---------------------------------------------------------------------------
# Linear algebra.


@primitive("matmul", reads="i")
def matmul(a: Any, b: Any) -> Any:
    """Matrix product with numpy's rules (1-D operands, batched broadcasting)."""
    if a.ndim == 0 or b.ndim == 0 or a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
        raise ValueError(
            f"matmul: shapes {a.shape} and {b.shape} do not align: the last axis of the "
            f"first ({a.shape[-1] if a.ndim else 'scalar'}) must equal the "
            f"{'second-to-last' if b.ndim > 1 else 'only'} axis of the second"
        )
    return a @ b


@matmul.defvjp
def _(F, g, out, ins, needs, attrs):
    a, b = ins
    # Treat 1-D operands as a row (a) or a column (b) matrix, then drop that axis again.
    a2 = F.reshape(a, (1, a.shape[0])) if a.ndim == 1 else a
    b2 = F.reshape(b, (b.shape[0], 1)) if b.ndim == 1 else b
    g2 = g
    if b.ndim == 1:
        g2 = F.reshape(g2, g2.shape + (1,))
    if a.ndim == 1:
        g2 = F.reshape(g2, g2.shape[:-1] + (1,) + g2.shape[-1:])
    ga = gb = None
    if needs[0]:
        ga = F.matmul(g2, F.swapaxes(b2, -1, -2))
        if a.ndim == 1:
            ga = F.reshape(ga, ga.shape[:-2] + ga.shape[-1:])
    if needs[1]:
        gb = F.matmul(F.swapaxes(a2, -1, -2), g2)
        if b.ndim == 1:
            gb = F.reshape(gb, gb.shape[:-1])
    return ga, gb


# ---------------------------------------------------------------------------
# Shape and indexing.


@primitive("reshape", reads="")
def reshape(a: Any, *, shape: tuple[int, ...]) -> Any:
    """The same elements in a new shape (-1 infers one axis)."""
    return np.reshape(a, shape)


@reshape.defvjp
def _(F, g, out, ins, needs, attrs):
    return (F.reshape(g, ins[0].shape),)


@primitive("transpose", reads="")
def transpose(a: Any, *, axes: Any = None) -> Any:
    """Permute axes (reverse them when ``axes`` is None)."""
    return np.transpose(a, axes)


@transpose.defvjp
def _(F, g, out, ins, needs, attrs):
    axes = attrs["axes"]  # negative axes count from the end: normalised before inverting
    return (
        F.transpose(g, None if axes is None else tuple(np.argsort([i % g.ndim for i in axes]))),
    )


@primitive("broadcast_to", reads="")
def broadcast_to(a: Any, *, shape: tuple[int, ...]) -> Any:
    """A read-only view of ``a`` broadcast to ``shape``."""
    try:
        return np.broadcast_to(a, shape)
    except ValueError:
        raise ValueError(f"broadcast_to: cannot broadcast shape {a.shape} to {shape}") from None


@broadcast_to.defvjp
def _(F, g, out, ins, needs, attrs):
    return (g,)  # the engine sums the gradient back to the input's shape


@primitive("getitem", reads="")
def getitem(a: Any, *, index: Any) -> Any:
    """a[index]: basic slicing and integer/boolean array indexing."""
    return a[index]


@getitem.defvjp
def _(F, g, out, ins, needs, attrs):
    return (F.scatter_add(g, index=attrs["index"], shape=ins[0].shape),)


@primitive("scatter_add", reads="")
def scatter_add(g: Any, *, index: Any, shape: tuple[int, ...]) -> Any:
    """Zeros of ``shape`` with ``g`` added at ``index``; repeated indices accumulate.

    The adjoint of ``getitem``: it carries a slice's gradient back to the whole.
    """
    out = np.zeros(shape, dtype=g.dtype)
    if _has_advanced_index(index):
        np.add.at(out, index, g)
    else:
        out[index] = g
    return out


@scatter_add.defvjp
def _(F, g, out, ins, needs, attrs):
    return (F.getitem(g, index=attrs["index"]),)


@primitive("concatenate", reads="")
def concatenate(*arrays: Any, axis: int = 0) -> Any:
    """Join tensors along an existing axis."""
    return np.concatenate(arrays, axis=axis)


@concatenate.defvjp
def _(F, g, out, ins, needs, attrs):
    axis = attrs["axis"] % g.ndim
    grads, start = [], 0
    for x, need in zip(ins, needs):
        stop = start + x.shape[axis]
        index = (slice(None),) * axis + (slice(start, stop),)
        grads.append(F.getitem(g, index=index) if need else None)
        start = stop
    return grads


@primitive("stack", reads="")
def stack(*arrays: Any, axis: int = 0) -> Any:
    """Join same-shape tensors along a new axis."""
    return np.stack(arrays, axis=axis)


@stack.defvjp
def _(F, g, out, ins, needs, attrs):
    axis = attrs["axis"] % g.ndim
    return [
        F.getitem(g, index=(slice(None),) * axis + (i,)) if need else None
        for i, need in enumerate(needs)
    ]


# ---------------------------------------------------------------------------
# Trigonometric and hyperbolic functions, and the remainders.


@primitive("sin", reads="i")
def sin(a: Any) -> Any:
    """Sine (radians)."""
    return np.sin(a)


@sin.defvjp
def _(F, g, out, ins, needs, attrs):
    return (g * F.cos(ins[0]),)


@primitive("cos", reads="i")
def cos(a: Any) -> Any:
    """Cosine (radians)."""
    return np.cos(a)


@cos.defvjp
def _(F, g, out, ins, needs, attrs):
    return (-g * F.sin(ins[0]),)


@primitive("tan", reads="o")
def tan(a: Any) -> Any:
    """Tangent (radians)."""
    return np.tan(a)


@tan.defvjp
def _(F, g, out, ins, needs, attrs):
    return (g * (1 + out * out),)


@primitive("arcsin", reads="i")
def arcsin(a: Any) -> Any:
    """Inverse sine, for -1 <= a <= 1."""
    return np.arcsin(a)


@arcsin.defvjp
def _(F, g, out, ins, needs, attrs):
    a = ins[0]
    return (g / F.sqrt(1 - a * a),)


@primitive("arccos", reads="i")
def arccos(a: Any) -> Any:
    """Inverse cosine, for -1 <= a <= 1."""
    return np.arccos(a)


@arccos.defvjp
def _(F, g, out, ins, needs, attrs):
    a = ins[0]
    return (-g / F.sqrt(1 - a * a),)


@primitive("arctan", reads="i")
def arctan(a: Any) -> Any:
    """Inverse tangent."""
    return np.arctan(a)


@arctan.defvjp
def _(F, g, out, ins, needs, attrs):
    a = ins[0]
    return (g / (1 + a * a),)


@primitive("sinh", reads="i")
def sinh(a: Any) -> Any:
    """Hyperbolic sine."""
    return np.sinh(a)


@sinh.defvjp
def _(F, g, out, ins, needs, attrs):
    return (g * F.cosh(ins[0]),)


@primitive("cosh", reads="i")
def cosh(a: Any) -> Any:
    """Hyperbolic cosine."""
    return np.cosh(a)


@cosh.defvjp
def _(F, g, out, ins, needs, attrs):
    return (g * F.sinh(ins[0]),)


@primitive("arcsinh", reads="i")
def arcsinh(a: Any) -> Any:
    """Inverse hyperbolic sine."""
    return np.arcsinh(a)


@arcsinh.defvjp
def _(F, g, out, ins, needs, attrs):
    a = ins[0]
    return (g / F.sqrt(a * a + 1),)


@primitive("arccosh", reads="i")
def arccosh(a: Any) -> Any:
    """Inverse hyperbolic cosine, for a >= 1."""
    return np.arccosh(a)


@arccosh.defvjp
def _(F, g, out, ins, needs, attrs):
    a = ins[0]
    return (g / F.sqrt(a * a - 1),)


@primitive("arctanh", reads="i")
def arctanh(a: Any) -> Any:
    """Inverse hyperbolic tangent, for -1 < a < 1."""
    return np.arctanh(a)


@arctanh.defvjp
def _(F, g, out, ins, needs, attrs):
    a = ins[0]
    return (g / (1 - a * a),)


@primitive("remainder", reads="i")
def remainder(a: Any, b: Any) -> Any:
    """a % b with the sign of b (Python's and PyTorch's ``%``): a - floor(a / b) * b."""
    return np.remainder(a, b)


@remainder.defvjp
def _(F, g, out, ins, needs, attrs):
    a, b = ins
    return g, (-g * F.floor(a / b) if needs[1] else None)


@primitive("fmod", reads="i")
def fmod(a: Any, b: Any) -> Any:
    """C's remainder, with the sign of a: a - trunc(a / b) * b."""
    return np.fmod(a, b)


@fmod.defvjp
def _(F, g, out, ins, needs, attrs):
    a, b = ins
    return g, (-g * F.trunc(a / b) if needs[1] else None)


@primitive("flip", reads="")
def flip(a: Any, *, axis: Any) -> Any:
    """The elements in reverse order along ``axis`` (an int or a tuple)."""
    return np.flip(a, axis)


@flip.defvjp
def _(F, g, out, ins, needs, attrs):
    return (F.flip(g, attrs["axis"]),)


@primitive("roll", reads="")
def roll(a: Any, *, shift: Any, axis: Any) -> Any:
    """Elements shifted cyclically by ``shift`` along ``axis`` (flattened when None)."""
    return np.roll(a, shift, axis)


@roll.defvjp
def _(F, g, out, ins, needs, attrs):
    shift = attrs["shift"]
    back = tuple(-s for s in shift) if isinstance(shift, tuple) else -shift
    return (F.roll(g, back, attrs["axis"]),)


@primitive("cumsum", reads="")
def cumsum(a: Any, *, axis: int) -> Any:
    """Running sum along ``axis``."""
    return np.cumsum(a, axis=axis)


@cumsum.defvjp
def _(F, g, out, ins, needs, attrs):
    axis = attrs["axis"]  # each input reaches every later output: a reversed running sum
    return (F.flip(F.cumsum(F.flip(g, axis), axis), axis),)


@primitive("einsum", reads="i")
def einsum(*operands: Any, equation: str) -> Any:
    """numpy's einsum: ``equation`` such as "ij,jk->ik" (an explicit output is needed)."""
    return np.einsum(equation, *operands, optimize=len(operands) > 2)


@einsum.defvjp
def _(F, g, out, ins, needs, attrs):
    # The gradient of operand k contracts g with all the others into k's subscripts.
    # Subscripts repeated within one operand (a diagonal) are not supported.
    terms, output = attrs["equation"].replace(" ", "").split("->")
    inputs = terms.split(",")
    grads = []
    for k, need in enumerate(needs):
        if not need:
            grads.append(None)
            continue
        others = [s for i, s in enumerate(inputs) if i != k]
        target = inputs[k]
        missing = [
            c for c in target if c not in output and builtins.all(c not in s for s in others)
        ]
        equation = (
            ",".join([output, *others]) + "->" + "".join(c for c in target if c not in missing)
        )
        grad = F.einsum(equation, g, *[x for i, x in enumerate(ins) if i != k])
        if missing:  # a subscript summed away in only this operand: broadcast back
            grad = F.broadcast_to(
                F.reshape(
                    grad,
                    tuple(1 if c in missing else ins[k].shape[i] for i, c in enumerate(target)),
                ),
                ins[k].shape,
            )
        grads.append(grad)
    return grads


@primitive("sign", reads="")
def sign(a: Any) -> Any:
    """-1, 0 or 1 by the sign of a. Piecewise constant: its gradient is 0 (as PyTorch)."""
    return np.sign(a)


@sign.defvjp
def _(F, g, out, ins, needs, attrs):
    return (g * 0,)


# ---------------------------------------------------------------------------
# Non-differentiable ops: comparisons and masks. No VJP, so never recorded.


def _nondiff(name: str, fn: Callable[..., Any], doc: str) -> Primitive:
    fn.__doc__ = doc
    return primitive(name)(fn)


eq = _nondiff("eq", lambda a, b: a == b, "a == b elementwise (boolean, no gradient).")
ne = _nondiff("ne", lambda a, b: a != b, "a != b elementwise (boolean, no gradient).")
lt = _nondiff("lt", lambda a, b: a < b, "a < b elementwise (boolean, no gradient).")
le = _nondiff("le", lambda a, b: a <= b, "a <= b elementwise (boolean, no gradient).")
gt = _nondiff("gt", lambda a, b: a > b, "a > b elementwise (boolean, no gradient).")
ge = _nondiff("ge", lambda a, b: a >= b, "a >= b elementwise (boolean, no gradient).")
logical_and = _nondiff("logical_and", np.logical_and, "Elementwise and (no gradient).")
logical_or = _nondiff("logical_or", np.logical_or, "Elementwise or (no gradient).")
logical_not = _nondiff("logical_not", np.logical_not, "Elementwise not (no gradient).")
bitwise_and = _nondiff(
    "bitwise_and", np.bitwise_and, "a & b: bitwise on integers, logical on booleans."
)
bitwise_or = _nondiff(
    "bitwise_or", np.bitwise_or, "a | b: bitwise on integers, logical on booleans."
)
bitwise_xor = _nondiff(
    "bitwise_xor", np.bitwise_xor, "a ^ b: bitwise on integers, logical on booleans."
)
bitwise_not = _nondiff("bitwise_not", np.invert, "~a: bitwise on integers, logical on booleans.")
floor = _nondiff("floor", np.floor, "The largest integer <= a (piecewise constant: no gradient).")
ceil = _nondiff("ceil", np.ceil, "The smallest integer >= a (piecewise constant: no gradient).")
round = _nondiff(
    "round", np.round, "a rounded to the nearest integer, halves to even (no gradient)."
)
trunc = _nondiff("trunc", np.trunc, "a rounded towards zero (piecewise constant: no gradient).")
floor_divide = _nondiff("floor_divide", np.floor_divide, "a // b, floor(a / b) (no gradient).")
isnan = _nondiff("isnan", np.isnan, "True where a is nan.")
isinf = _nondiff("isinf", np.isinf, "True where a is +inf or -inf.")
isfinite = _nondiff("isfinite", np.isfinite, "True where a is neither inf nor nan.")


@primitive("argmax")
def argmax(a: Any, *, axis: int | None = None, keepdims: bool = False) -> Any:
    """Index of the largest element along ``axis`` (of the flattened array when None)."""
    return np.argmax(a, axis=axis, keepdims=keepdims)


@primitive("argmin")
def argmin(a: Any, *, axis: int | None = None, keepdims: bool = False) -> Any:
    """Index of the smallest element along ``axis`` (of the flattened array when None)."""
    return np.argmin(a, axis=axis, keepdims=keepdims)


@primitive("argsort")
def argsort(a: Any, *, axis: int = -1, descending: bool = False) -> Any:
    """The indices that sort ``a`` along ``axis`` (stable)."""
    order = np.argsort(-a if descending else a, axis=axis, kind="stable")
    return order


@primitive("all")
def all(a: Any, *, axis: Any = None, keepdims: bool = False) -> Any:
    """True where every element along ``axis`` is nonzero."""
    return np.all(a, axis=axis, keepdims=keepdims)


@primitive("any")
def any(a: Any, *, axis: Any = None, keepdims: bool = False) -> Any:
    """True where some element along ``axis`` is nonzero."""
    return np.any(a, axis=axis, keepdims=keepdims)


@primitive("isclose")
def isclose(
    a: Any, b: Any, *, rtol: float = 1e-5, atol: float = 1e-8, equal_nan: bool = False
) -> Any:
    """|a - b| <= atol + rtol * |b| elementwise (PyTorch's defaults)."""
    return np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan)


# ---------------------------------------------------------------------------
# The two namespaces a VJP computes with.


def _sum_to_array(g: Any, shape: tuple[int, ...]) -> Any:
    """Sum a broadcast gradient back down to ``shape``."""
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        i + lead for i, s in enumerate(shape) if s == 1 and g.shape[i + lead] != 1
    )
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape) if lead else g


def _scatter_add_array(g: Any, *, index: Any, shape: tuple[int, ...]) -> Any:
    return scatter_add.forward(g, index=index, shape=shape)


class ArrayF:
    """VJP namespace over raw numpy arrays (first-order backward)."""

    exp = staticmethod(np.exp)
    log = staticmethod(np.log)
    sqrt = staticmethod(np.sqrt)
    sin = staticmethod(np.sin)
    cos = staticmethod(np.cos)
    sinh = staticmethod(np.sinh)
    cosh = staticmethod(np.cosh)
    floor = staticmethod(np.floor)
    trunc = staticmethod(np.trunc)
    flip = staticmethod(np.flip)
    roll = staticmethod(np.roll)
    sign = staticmethod(np.sign)
    erf = staticmethod(_erf)
    sigmoid = staticmethod(_sigmoid_array)
    where = staticmethod(np.where)
    matmul = staticmethod(np.matmul)
    swapaxes = staticmethod(np.swapaxes)
    reshape = staticmethod(np.reshape)
    transpose = staticmethod(np.transpose)
    broadcast_to = staticmethod(np.broadcast_to)
    sum_to = staticmethod(_sum_to_array)
    scatter_add = staticmethod(_scatter_add_array)

    @staticmethod
    def sum(a: Any, axis: Any = None, keepdims: bool = False) -> Any:
        return a.sum(axis=axis, keepdims=keepdims)

    @staticmethod
    def cast(a: Any, dtype: Any) -> Any:
        return a.astype(dtype, copy=False)

    @staticmethod
    def cumsum(a: Any, axis: int) -> Any:
        return np.cumsum(a, axis=axis)

    @staticmethod
    def einsum(equation: str, *operands: Any) -> Any:
        return np.einsum(equation, *operands, optimize=len(operands) > 2)

    @staticmethod
    def getitem(a: Any, index: Any) -> Any:
        return a[index]


class TensorF:
    """VJP namespace over Tensors: the backward pass is recorded (``create_graph``)."""

    exp = staticmethod(exp)
    log = staticmethod(log)
    sqrt = staticmethod(sqrt)
    sin = staticmethod(sin)
    cos = staticmethod(cos)
    sinh = staticmethod(sinh)
    cosh = staticmethod(cosh)
    floor = staticmethod(floor)
    trunc = staticmethod(trunc)
    sign = staticmethod(sign)
    erf = staticmethod(erf)
    sigmoid = staticmethod(sigmoid)
    matmul = staticmethod(matmul)

    @staticmethod
    def where(c: Any, a: Any, b: Any) -> Tensor:
        return where(c, a, b)

    @staticmethod
    def swapaxes(a: Tensor, i: int, j: int) -> Tensor:
        axes = list(range(a.ndim))
        axes[i], axes[j] = axes[j], axes[i]
        return transpose(a, axes=tuple(axes))

    @staticmethod
    def reshape(a: Tensor, shape: tuple[int, ...]) -> Tensor:
        return reshape(a, shape=tuple(shape))

    @staticmethod
    def transpose(a: Tensor, axes: Any = None) -> Tensor:
        return transpose(a, axes=axes)

    @staticmethod
    def broadcast_to(a: Tensor, shape: tuple[int, ...]) -> Tensor:
        return broadcast_to(a, shape=tuple(shape))

    @staticmethod
    def sum(a: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:
        return sum(a, axis=axis, keepdims=keepdims)

    @staticmethod
    def sum_to(g: Tensor, shape: tuple[int, ...]) -> Tensor:
        lead = g.ndim - len(shape)
        axes = tuple(range(lead)) + tuple(
            i + lead for i, s in enumerate(shape) if s == 1 and g.shape[i + lead] != 1
        )
        if axes:
            g = sum(g, axis=axes, keepdims=True)
        return reshape(g, shape=tuple(shape)) if lead else g

    @staticmethod
    def flip(a: Tensor, axis: Any) -> Tensor:
        return flip(a, axis=axis)

    @staticmethod
    def roll(a: Tensor, shift: Any, axis: Any) -> Tensor:
        return roll(a, shift=shift, axis=axis)

    @staticmethod
    def cumsum(a: Tensor, axis: int) -> Tensor:
        return cumsum(a, axis=axis)

    @staticmethod
    def einsum(equation: str, *operands: Tensor) -> Tensor:
        return einsum(*operands, equation=equation)

    @staticmethod
    def cast(a: Tensor, dtype: Any) -> Tensor:
        return a if a.dtype == dtype else astype(a, dtype=np.dtype(dtype))

    @staticmethod
    def getitem(a: Tensor, index: Any) -> Tensor:
        return getitem(a, index=index)

    @staticmethod
    def scatter_add(g: Tensor, *, index: Any, shape: tuple[int, ...]) -> Tensor:
        return scatter_add(g, index=index, shape=shape)


METHODS.update(REGISTRY)  # Tensor's operators and methods call the primitives by name
