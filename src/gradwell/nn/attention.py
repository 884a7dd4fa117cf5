"""Scaled dot-product attention, as PyTorch's ``F.scaled_dot_product_attention``.

A composition of core primitives (matmul, softmax, dropout), so its gradients, to any
order, come from those ops' rules. Masks are constants: a boolean mask becomes an
additive bias of 0 and -inf, computed once on arrays. ``MultiheadAttention``
(``multihead.py``) is built on it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..autograd import functional as _fn
from ..autograd import ops
from ..autograd.creation import _rng
from ..autograd.tensor import Tensor
from . import fused
from .validate import check_rate


def _swap_last(x: Tensor) -> Tensor:
    axes = tuple(range(x.ndim - 2)) + (x.ndim - 1, x.ndim - 2)
    return _fn.transpose(x, axes)


def mask_array(mask: Any, who: str) -> Any:
    """A mask as an array (a Tensor's data when it is boolean or needs no gradient)."""
    if isinstance(mask, Tensor):
        return mask if mask.requires_grad else mask.data
    arr = np.asarray(mask)
    if arr.dtype.kind not in "bf":
        raise TypeError(f"{who}: expected a boolean or float mask; got dtype {arr.dtype}")
    return arr


def attend(
    q: Tensor, k: Tensor, v: Tensor, allowed: Any, bias: Any, dropout_p: float, scale: float,
    rng: Any, empty_rows: str = "zeros",
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """softmax(q @ k.T * scale + bias) @ v with the positions not ``allowed`` (a boolean
    array, or None: all) left out. Returns (output, weights).

    A query row whose scores are all -inf (nothing allowed, or a float mask of -inf
    everywhere) is PyTorch's: with ``empty_rows="zeros"`` its weights and output are
    zeros and no gradient flows through it (``scaled_dot_product_attention``, and
    ``MultiheadAttention`` without weights); with ``"nan"`` they are NaN
    (``MultiheadAttention`` returning weights, whose softmax is a plain one)."""
    scores = ops.matmul(q, _swap_last(k)) * scale
    if bias is not None:
        scores = scores + bias
    if allowed is not None:
        scores = scores + np.where(allowed, 0.0, -np.inf).astype(q.data.dtype)
    empty = None
    if allowed is not None or bias is not None:
        empty = np.isneginf(scores.data).all(axis=-1, keepdims=True)
    if empty is None or not empty.any():
        weights = ops.softmax(scores, axis=-1)
    elif empty_rows == "zeros":
        weights = ops.softmax(_fn.masked_fill(scores, empty, 0.0), axis=-1)
        weights = weights * (~empty).astype(q.data.dtype)
    else:
        with np.errstate(invalid="ignore"):  # -inf - -inf: the NaN asked for
            weights = ops.softmax(scores, axis=-1)
    if dropout_p > 0:
        weights = (
            fused.dropout(weights, rate=dropout_p, rng=_rng(rng)) if dropout_p < 1 else weights * 0
        )
    return ops.matmul(weights, v), weights


def scaled_dot_product_attention(
    query: Any,
    key: Any,
    value: Any,
    attn_mask: Any = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    *,
    rng: Any = None,
) -> Tensor:
    """``softmax(query @ key.T * scale + mask) @ value`` over the last two axes, PyTorch's rules.

    Shapes: query (..., L, E), key (..., S, E), value (..., S, Ev); output (..., L, Ev).
    ``scale`` defaults to 1 / sqrt(E). ``attn_mask`` broadcasts to (..., L, S): a boolean
    mask says where a query may attend (True: attend); a float mask is added to the
    scores. ``is_causal``: query i attends to keys 0..i (no ``attn_mask`` then). A query
    that may attend to nothing (a row of False, or of -inf) gives zeros and passes no
    gradient back, as PyTorch's. ``dropout_p``: dropout on the attention
    weights, applied whenever it is above 0 (as in PyTorch: pass 0.0 in evaluation);
    ``rng`` draws its masks.

    >>> import gradwell as gw
    >>> q = gw.randn(2, 4, 5, 8, rng=0)   # (batch, heads, L, E)
    >>> gw.nn.functional.scaled_dot_product_attention(q, q, q, is_causal=True).shape
    (2, 4, 5, 8)
    """
    who = "scaled_dot_product_attention"
    q, k, v = _fn._t(query), _fn._t(key), _fn._t(value)
    if min(q.ndim, k.ndim, v.ndim) < 2 or q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"{who}: expected query (..., L, E), key (..., S, E) and value (..., S, Ev); got "
            f"query {q.shape}, key {k.shape}, value {v.shape}"
        )
    dropout_p = check_rate(dropout_p)
    allowed = bias = None
    if is_causal:
        if attn_mask is not None:
            raise ValueError(f"{who}: pass attn_mask or is_causal=True, not both")
        allowed = np.tril(np.ones((q.shape[-2], k.shape[-2]), bool))
    elif attn_mask is not None:
        mask = mask_array(attn_mask, who)
        if isinstance(mask, np.ndarray) and mask.dtype == bool:
            allowed = mask
        else:
            bias = mask.astype(q.data.dtype) if isinstance(mask, np.ndarray) else mask
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    return attend(q, k, v, allowed, bias, dropout_p, scale, rng)[0]
