"""Composite ops built from primitives: their gradients come from the primitives'."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import ops
from .tensor import METHODS, Tensor, _axes


def _t(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else ops._lift((x,))[0]


def var(x: Any, axis: Any = None, keepdims: bool = False, correction: int = 1) -> Tensor:
    """Variance over ``axis``, dividing by N - correction (1: unbiased, as PyTorch)."""
    x = _t(x)
    axis = _axes(axis)
    n = x.size if axis is None else int(np.prod([x.shape[a] for a in np.atleast_1d(axis)]))
    centred = x - ops.mean(x, axis=axis, keepdims=True)
    dof = builtins.max(n - correction, 1)
    return ops.sum(centred * centred, axis=axis, keepdims=keepdims) / dof


def std(x: Any, axis: Any = None, keepdims: bool = False, correction: int = 1) -> Tensor:
    """Standard deviation: sqrt(var(x, axis, keepdims, correction))."""
    return ops.sqrt(var(x, axis, keepdims, correction))


def reshape(x: Any, shape: Any) -> Tensor:
    """The same elements in a new shape (one axis may be -1)."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return ops.reshape(_t(x), shape=shape)


def transpose(x: Any, axes: Any = None) -> Tensor:
    """Permute the axes (reverse them when ``axes`` is None)."""
    return ops.transpose(_t(x), axes=None if axes is None else tuple(axes))


permute = transpose


def flatten(x: Any, start_axis: int = 0, end_axis: int = -1) -> Tensor:
    """Merge axes start_axis..end_axis into one."""
    x = _t(x)
    if x.ndim == 0:
        return reshape(x, (1,))
    s, e = start_axis % x.ndim, end_axis % x.ndim
    return reshape(x, x.shape[:s] + (-1,) + x.shape[e + 1 :])


def squeeze(x: Any, axis: Any = None) -> Tensor:
    """Drop axes of length 1 (all of them, or those in ``axis``)."""
    x = _t(x)
    return reshape(x, np.squeeze(np.empty(x.shape, dtype=np.bool_), axis=_axes(axis)).shape)


def unsqueeze(x: Any, axis: int) -> Tensor:
    """Insert an axis of length 1 at ``axis``."""
    x = _t(x)
    return reshape(x, np.expand_dims(np.empty(x.shape, dtype=np.bool_), axis).shape)


def concatenate(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    """Join tensors along an existing axis."""
    return ops.concatenate(*tensors, axis=axis)


def stack(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    """Join same-shape tensors along a new axis."""
    return ops.stack(*tensors, axis=axis)


def clip(x: Any, min: Any = None, max: Any = None) -> Tensor:
    """Limit values to [min, max]; the gradient is 1 inside (bounds included), 0 outside."""
    return ops.clip(_t(x), min=min, max=max)


def sum(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Sum over ``axis`` (all axes when None)."""
    return ops.sum(_t(x), axis=_axes(axis), keepdims=keepdims)


def mean(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Arithmetic mean over ``axis`` (all axes when None)."""
    return ops.mean(_t(x), axis=_axes(axis), keepdims=keepdims)


def max(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Largest element over ``axis``. Ties share the gradient equally among them."""
    return ops.max(_t(x), axis=_axes(axis), keepdims=keepdims)


def min(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Smallest element over ``axis``. Ties share the gradient equally among them."""
    return ops.min(_t(x), axis=_axes(axis), keepdims=keepdims)


def logsumexp(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:
    """log(sum(exp(x))) over ``axis``, stable for large |x|."""
    return ops.logsumexp(_t(x), axis=_axes(axis), keepdims=keepdims)


def softmax(x: Any, axis: int = -1) -> Tensor:
    """exp(x) / sum(exp(x)) along ``axis``."""
    return ops.softmax(_t(x), axis=axis)


def log_softmax(x: Any, axis: int = -1) -> Tensor:
    """x - logsumexp(x) along ``axis``."""
    return ops.log_softmax(_t(x), axis=axis)


def leaky_relu(x: Any, negative_slope: float = 0.01) -> Tensor:
    """x for x > 0, else negative_slope * x."""
    return ops.leaky_relu(_t(x), negative_slope=negative_slope)


def elu(x: Any, alpha: float = 1.0) -> Tensor:
    """x for x > 0, else alpha * (exp(x) - 1)."""
    return ops.elu(_t(x), alpha=alpha)


def softplus(x: Any, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + exp(beta x)) / beta, linear above ``threshold``."""
    return ops.softplus(_t(x), beta=beta, threshold=threshold)


def broadcast_to(x: Any, shape: Sequence[int]) -> Tensor:
    """View ``x`` broadcast to ``shape``; its gradient is summed back."""
    return ops.broadcast_to(_t(x), shape=tuple(shape))


METHODS.update(
    var=var, std=std, reshape=reshape, transpose=transpose, flatten=flatten, squeeze=squeeze,
    unsqueeze=unsqueeze,
)  # fmt: skip
