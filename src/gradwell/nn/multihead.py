"""Multi-head attention, as PyTorch's ``nn.MultiheadAttention``: projections, heads and
masks around :func:`~gradwell.nn.attention.scaled_dot_product_attention`'s core."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..autograd import functional as _fn
from ..autograd.creation import _rng
from ..autograd.tensor import Tensor
from . import fused, init
from .attention import attend, mask_array
from .layers import Linear
from .module import Module
from .parameter import Parameter
from .validate import check_rate
from .validate import positive_int as _positive_int


class MultiheadAttention(Module):
    """Multi-head attention, PyTorch's parameters and arguments.

    ``embed_dim`` is split over ``num_heads`` heads (it must divide). ``kdim`` / ``vdim``:
    the sizes of keys and values when they differ from ``embed_dim`` (then the
    projections are ``q_proj_weight``, ``k_proj_weight``, ``v_proj_weight``; otherwise one
    packed ``in_proj_weight`` (3 * embed_dim, embed_dim)); ``in_proj_bias`` and
    ``out_proj`` (a Linear) as in PyTorch, so a PyTorch state dict loads and gives the
    same numbers. Init: Xavier-uniform projections, zero biases. ``dropout`` on the
    attention weights in training; ``rng`` (a seed or a Generator) for init and dropout.
    ``add_bias_kv``: one more key and value, the learnt ``bias_k`` and ``bias_v`` (1, 1,
    embed_dim), appended after the projections; ``add_zero_attn``: one more key and value
    of zeros in every head, appended after those; both, as in PyTorch, widen the
    weights by a column each and are never masked.

    ``forward(query, key, value, key_padding_mask=None, need_weights=True,
    attn_mask=None, average_attn_weights=True, is_causal=False)``: inputs (L, N, E) ((N, L,
    E) with ``batch_first``, or unbatched (L, E)); ``key_padding_mask`` (N, S): True (or
    -inf) marks padding keys; ``attn_mask`` (L, S) or (N * num_heads, L, S): True marks
    *forbidden* positions (PyTorch's MultiheadAttention convention, the opposite of
    ``scaled_dot_product_attention``'s), a float mask is added. Returns ``(output,
    weights)``: weights (N, L, S) averaged over heads, (N, num_heads, L, S) with
    ``average_attn_weights=False``, or None without ``need_weights``. A query that may
    attend to nothing (in any head) gives, as PyTorch's, NaN in its output row and
    weights when ``need_weights`` is True, and an attention of zeros (the output is then
    ``out_proj``'s bias) when it is False.

    >>> import gradwell as gw
    >>> mha = gw.nn.MultiheadAttention(8, 2, batch_first=True, rng=0)
    >>> x = gw.randn(3, 5, 8, rng=0)
    >>> out, weights = mha(x, x, x)
    >>> out.shape, weights.shape
    ((3, 5, 8), (3, 5, 5))
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        add_bias_kv: bool = False,
        add_zero_attn: bool = False,
        kdim: int | None = None,
        vdim: int | None = None,
        batch_first: bool = False,
        rng: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        who = "MultiheadAttention"
        self.embed_dim = _positive_int(embed_dim, "embed_dim", who)
        self.num_heads = _positive_int(num_heads, "num_heads", who)
        if embed_dim % num_heads:
            raise ValueError(
                f"{who}: embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})"
            )
        self.add_bias_kv, self.add_zero_attn = bool(add_bias_kv), bool(add_zero_attn)
        self.bias = bool(bias)
        self.kdim = self.embed_dim if kdim is None else _positive_int(kdim, "kdim", who)
        self.vdim = self.embed_dim if vdim is None else _positive_int(vdim, "vdim", who)
        self.dropout = check_rate(dropout)
        self.batch_first = bool(batch_first)
        self.rng = _rng(rng)
        dtype = np.dtype(np.float32 if dtype is None else dtype)
        e = self.embed_dim
        if self.packed:
            self.in_proj_weight = self._xavier((3 * e, e), dtype)
        else:
            self.q_proj_weight = self._xavier((e, e), dtype)
            self.k_proj_weight = self._xavier((e, self.kdim), dtype)
            self.v_proj_weight = self._xavier((e, self.vdim), dtype)
        self.in_proj_bias = Parameter(Tensor(np.zeros(3 * e, dtype))) if bias else None
        if self.add_bias_kv:  # PyTorch's names, shapes and init (Xavier-normal)
            self.bias_k, self.bias_v = (
                Parameter(init.xavier_normal_(Tensor(np.empty((1, 1, e), dtype)), rng=self.rng))
                for _ in range(2)
            )
        self.out_proj = Linear(e, e, bias=bias, init=_torch_linear_init, rng=self.rng, dtype=dtype)

    @property
    def packed(self) -> bool:
        """Whether queries, keys and values share one packed projection weight."""
        return self.kdim == self.embed_dim and self.vdim == self.embed_dim

    def _xavier(self, shape: tuple[int, int], dtype: Any) -> Parameter:
        return Parameter(init.xavier_uniform_(Tensor(np.empty(shape, dtype)), rng=self.rng))

    def _projections(self) -> list[tuple[Any, tuple[Any, ...]]]:
        """(weight, (bias,) or ()) for queries, keys and values."""
        e = self.embed_dim
        if self.packed:
            w = self.in_proj_weight
            weights = [w[:e], w[e : 2 * e], w[2 * e :]]
        else:
            weights = [self.q_proj_weight, self.k_proj_weight, self.v_proj_weight]
        b = self.in_proj_bias
        biases = [()] * 3 if b is None else [(b[:e],), (b[e : 2 * e],), (b[2 * e :],)]
        return list(zip(weights, biases))

    def forward(
        self,
        query: Any,
        key: Any,
        value: Any,
        key_padding_mask: Any = None,
        need_weights: bool = True,
        attn_mask: Any = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        dtype = self.out_proj.weight.data.dtype
        inputs = []
        for name, x, size in (("query", query, self.embed_dim), ("key", key, self.kdim),
                              ("value", value, self.vdim)):  # fmt: skip
            if not isinstance(x, Tensor):
                x = Tensor(np.asarray(x, dtype))
            if x.ndim not in (2, 3) or x.shape[-1] != size:
                layout = "(N, L, E)" if self.batch_first else "(L, N, E)"
                raise ValueError(
                    f"{self._short_repr()}: expected {name} of shape {layout} or (L, E) with "
                    f"E={size}; got {x.shape}"
                )
            inputs.append(x)
        batched = inputs[0].ndim == 3
        if any((x.ndim == 3) != batched for x in inputs):
            shapes = [x.shape for x in inputs]
            raise ValueError(
                f"{self._short_repr()}: query, key and value must all be batched or all "
                f"unbatched; got shapes {shapes}"
            )
        # to (N, L, E)
        if not batched:
            inputs = [x[None] for x in inputs]
        elif not self.batch_first:
            inputs = [_fn.transpose(x, (1, 0, 2)) for x in inputs]
        n, length, s = inputs[0].shape[0], inputs[0].shape[1], inputs[1].shape[1]
        if inputs[1].shape[:2] != inputs[2].shape[:2] or inputs[1].shape[0] != n:
            raise ValueError(
                f"{self._short_repr()}: key and value must have the same batch and length as "
                f"each other and the query's batch; got query, key and value of shapes "
                f"{[x.shape for x in inputs]} (as (N, L, E))"
            )
        h, hd = self.num_heads, self.embed_dim // self.num_heads
        q, k, v = (fused.linear(x, w, *b) for x, (w, b) in zip(inputs, self._projections()))
        if self.add_bias_kv:  # one more key and value, learnt, after the projections
            k, v = (
                _fn.concatenate([x, _fn.broadcast_to(b, (n, 1, self.embed_dim))], axis=1)
                for x, b in ((k, self.bias_k), (v, self.bias_v))
            )
        q, k, v = (_fn.transpose(_fn.reshape(x, (n, -1, h, hd)), (0, 2, 1, 3)) for x in (q, k, v))
        if self.add_zero_attn:  # and one of zeros in every head
            zeros = np.zeros((n, h, 1, hd), dtype)
            k, v = (_fn.concatenate([x, zeros], axis=2) for x in (k, v))
        allowed, bias = self._masks(key_padding_mask, attn_mask, is_causal, n, length, s, dtype)
        rate = self.dropout if self.training else 0.0
        empty_rows = "nan" if need_weights else "zeros"
        out, weights = attend(
            q, k, v, allowed, bias, rate, 1.0 / math.sqrt(hd), self.rng, empty_rows
        )
        out = self.out_proj(
            _fn.reshape(_fn.transpose(out, (0, 2, 1, 3)), (n, length, self.embed_dim))
        )
        if not batched:
            out = out[0]
        elif not self.batch_first:
            out = _fn.transpose(out, (1, 0, 2))
        if not need_weights:
            return out, None
        if average_attn_weights:
            weights = _fn.mean(weights, axis=1)
        return out, (weights if batched else weights[0])

    def _masks(
        self, key_padding_mask: Any, attn_mask: Any, is_causal: bool, n: int, length: int, s: int,
        dtype: Any,
    ) -> tuple[Any, Any]:  # fmt: skip
        """The positions allowed (a boolean array or None) and an additive float bias (or
        None) of shape broadcasting to (N, heads, L, S)."""
        allowed: Any = None
        bias: Any = None
        who = self._short_repr()
        if attn_mask is None and is_causal:
            attn_mask = ~np.tril(np.ones((length, s), bool))
        for mask, shapes, name in (
            (attn_mask, ((length, s), (n * self.num_heads, length, s)), "attn_mask"),
            (key_padding_mask, ((n, s),), "key_padding_mask"),
        ):
            if mask is None:
                continue
            m = mask_array(mask, who)
            if tuple(m.shape) not in shapes and not (n == 1 and tuple(m.shape) == (s,)):
                raise ValueError(
                    f"{who}: expected {name} of shape {' or '.join(map(str, shapes))}; got "
                    f"{tuple(m.shape)}"
                )
            if name == "key_padding_mask":
                m = _fn.reshape(m, (n, 1, 1, s)) if isinstance(m, Tensor) else m.reshape(n, 1, 1, s)
            elif m.ndim == 3:
                shape = (n, self.num_heads, length, s)
                m = _fn.reshape(m, shape) if isinstance(m, Tensor) else m.reshape(shape)
            m = self._pad_keys(m)
            if isinstance(m, np.ndarray) and m.dtype == bool:
                allowed = ~m if allowed is None else allowed & ~m
            else:
                m = m.astype(dtype) if isinstance(m, np.ndarray) else m
                bias = m if bias is None else bias + m
        return allowed, bias

    def _pad_keys(self, mask: Any) -> Any:
        """A mask (..., S) widened by a column per key that ``add_bias_kv`` and
        ``add_zero_attn`` append: not forbidden (False), or 0 added."""
        extra = self.add_bias_kv + self.add_zero_attn
        if not extra:
            return mask
        shape = (*mask.shape[:-1], extra)
        if isinstance(mask, Tensor):
            return _fn.concatenate([mask, np.zeros(shape, mask.data.dtype)], axis=-1)
        return np.concatenate([mask, np.zeros(shape, mask.dtype)], axis=-1)

    def extra_repr(self) -> str:
        s = f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}"
        for name in ("add_bias_kv", "add_zero_attn"):
            if getattr(self, name):
                s += f", {name}=True"
        return s


def _torch_linear_init(weight: Any, rng: Any = None) -> Any:
    """PyTorch's Linear default, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kaiming_uniform_ with
    a = sqrt(5)), as its MultiheadAttention's out_proj starts."""
    return init.kaiming_uniform_(weight, a=math.sqrt(5), rng=rng)
