"""Gradient clipping (``gw.nn.utils``): tame exploding gradients before the optimizer step."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from ..autograd.tensor import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_", "parameters_to_vector", "vector_to_parameters"]


def _with_grads(parameters: Iterable[Tensor] | Tensor) -> list[Tensor]:
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p for p in parameters if p.grad is not None]


def _scale_grad(p: Tensor, factor: float) -> None:
    g = p.grad
    assert g is not None
    if g.is_leaf and g.data.flags.writeable:
        g.data *= factor  # a leaf's gradient array is its own (the engine never shares one)
    else:  # recorded with create_graph: never write into a graph
        p.grad = Tensor(g.data * factor)


def clip_grad_norm_(
    parameters: Iterable[Tensor] | Tensor,
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
) -> float:
    """Rescale the gradients so that their joint norm is at most ``max_norm``.

    ``total = (sum over all gradient elements of |g| ** norm_type) ** (1 / norm_type)``
    (``norm_type=inf``: the largest |g|). When ``max_norm / (total + 1e-6) < 1`` every
    gradient is multiplied by that factor, in place (as PyTorch). Returns ``total``,
    the norm before clipping. A non-finite total is an error with
    ``error_if_nonfinite``; otherwise the gradients are left as they are.

    >>> import gradwell as gw
    >>> w = gw.nn.Parameter([0.0, 0.0])
    >>> w.grad = gw.tensor([3.0, 4.0])
    >>> gw.nn.utils.clip_grad_norm_([w], max_norm=1.0)
    5.0
    >>> w.grad
    tensor([0.6, 0.8])
    """
    params = _with_grads(parameters)
    max_norm, norm_type = float(max_norm), float(norm_type)
    if not params:
        return 0.0
    grads = [p.grad.data.ravel() for p in params]  # type: ignore[union-attr]
    if norm_type == math.inf:
        total = max(float(np.abs(g).max(initial=0.0)) for g in grads)
    elif norm_type == 2.0:
        total = math.sqrt(sum(float(np.dot(g, g)) for g in grads))
    elif norm_type > 0:
        total = sum(float(np.sum(np.abs(g) ** norm_type)) for g in grads) ** (1.0 / norm_type)
    else:
        raise ValueError(f"clip_grad_norm_: norm_type must be positive or inf; got {norm_type}")
    if not math.isfinite(total):
        if error_if_nonfinite:
            raise RuntimeError(
                f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is "
                f"{total}, so they cannot be clipped. Find where the NaN/inf appears "
                "(gw.detect_anomaly()), or pass error_if_nonfinite=False"
            )
        return total
    factor = max_norm / (total + 1e-6)
    if factor < 1.0:
        for p in params:
            _scale_grad(p, factor)
    return total


def clip_grad_value_(parameters: Iterable[Tensor] | Tensor, clip_value: float) -> None:
    """Clip every gradient element to [-clip_value, clip_value], in place.

    >>> import gradwell as gw
    >>> w = gw.nn.Parameter([0.0, 0.0])
    >>> w.grad = gw.tensor([3.0, -0.5])
    >>> gw.nn.utils.clip_grad_value_([w], 1.0)
    >>> w.grad
    tensor([ 1. , -0.5])
    """
    clip_value = float(clip_value)
    if not clip_value >= 0:
        raise ValueError(f"clip_grad_value_: clip_value must be >= 0; got {clip_value}")
    for p in _with_grads(parameters):
        g = p.grad
        assert g is not None
        if g.is_leaf and g.data.flags.writeable:
            np.clip(g.data, -clip_value, clip_value, out=g.data)
        else:
            p.grad = Tensor(np.clip(g.data, -clip_value, clip_value))


def parameters_to_vector(parameters: Iterable[Tensor] | Tensor) -> Tensor:
    """Every parameter's values, flattened and joined into one vector (a copy)."""
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    return Tensor(
        np.concatenate([p.data.ravel() for p in params]) if params else np.zeros(0, np.float32)
    )


def vector_to_parameters(vector: Any, parameters: Iterable[Tensor] | Tensor) -> None:
    """Copy consecutive pieces of ``vector`` into the parameters, in place."""
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    flat = np.asarray(vector.data if isinstance(vector, Tensor) else vector).ravel()
    total = sum(p.data.size for p in params)
    if flat.size != total:
        raise ValueError(
            f"vector_to_parameters: the vector has {flat.size} values; the parameters hold {total}"
        )
    start = 0
    for p in params:
        p.data[...] = flat[start : start + p.data.size].reshape(p.shape)
        p.bump_version()
        start += p.data.size
