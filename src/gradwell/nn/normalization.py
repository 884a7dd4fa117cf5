"""LayerNorm and GroupNorm: normalise each sample over its own features, then scale and shift.

Both are written with the core primitives (mean, sqrt, arithmetic), so their gradients
are the primitives' and exact to any order. Statistics use the biased variance, as PyTorch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._numeric import numeric_array
from ..autograd import ops
from ..autograd.tensor import Tensor
from .module import Module
from .parameter import Parameter
from .validate import positive_int as _positive_int


def _normalise(x: Tensor, axes: tuple[int, ...], eps: float) -> Tensor:
    centred = x - ops.mean(x, axis=axes, keepdims=True)
    var = ops.mean(centred * centred, axis=axes, keepdims=True)
    return centred / ops.sqrt(var + eps)


def layer_norm(
    x: Any,
    normalized_shape: Any,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Normalise over the trailing axes ``normalized_shape``, then ``* weight + bias``."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if not isinstance(x, Tensor):
        x = Tensor(numeric_array(x, "layer_norm input").astype(np.float32, copy=False))
    if x.shape[x.ndim - len(shape) :] != shape:
        raise ValueError(
            f"layer_norm: expected the input's last axes to be {shape}; got shape {x.shape}"
        )
    out = _normalise(x, tuple(range(x.ndim - len(shape), x.ndim)), eps)
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out


def group_norm(
    x: Any,
    num_groups: int,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Normalise (N, C, ...) over each group of C / num_groups channels and all positions."""
    if not isinstance(x, Tensor):
        x = Tensor(numeric_array(x, "group_norm input").astype(np.float32, copy=False))
    if x.ndim < 2 or x.shape[1] % num_groups:
        raise ValueError(
            f"group_norm: expected (N, C, ...) with C divisible by num_groups={num_groups}; "
            f"got shape {x.shape}"
        )
    n, c = x.shape[:2]
    grouped = ops.reshape(x, shape=(n, num_groups, -1))
    out = ops.reshape(_normalise(grouped, (2,), eps), shape=x.shape)
    per_channel = (c,) + (1,) * (x.ndim - 2)
    if weight is not None:
        out = out * ops.reshape(weight, shape=per_channel)
    if bias is not None:
        out = out + ops.reshape(bias, shape=per_channel)
    return out


def _check_eps(eps: float, who: str) -> float:
    if not eps > 0:
        raise ValueError(f"{who}: eps must be positive; got {eps!r}")
    return float(eps)


class LayerNorm(Module):
    """Layer normalization over the trailing ``normalized_shape`` axes of each sample.

    ``weight`` (ones) and ``bias`` (zeros) have ``normalized_shape`` when
    ``elementwise_affine``; ``bias=False`` drops the shift.

    >>> import gradwell as gw
    >>> gw.nn.LayerNorm(4)(gw.tensor([[1.0, 2.0, 3.0, 4.0]])).numpy().round(3)
    array([[-1.342, -0.447,  0.447,  1.342]], dtype=float32)
    """

    def __init__(
        self,
        normalized_shape: Any,
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else normalized_shape
        self.normalized_shape = tuple(
            _positive_int(s, "normalized_shape", "LayerNorm") for s in shape
        )
        self.eps = _check_eps(eps, "LayerNorm")
        self.elementwise_affine = bool(elementwise_affine)
        dtype = np.dtype(np.float32 if dtype is None else dtype)
        affine = self.elementwise_affine
        self.weight = Parameter(Tensor(np.ones(self.normalized_shape, dtype))) if affine else None
        self.bias = (
            Parameter(Tensor(np.zeros(self.normalized_shape, dtype))) if affine and bias else None
        )

    def forward(self, x: Any) -> Tensor:
        return layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
        )


class GroupNorm(Module):
    """Group normalization of (N, C, ...): C channels in ``num_groups`` groups, each normalised
    over its channels and all positions; per-channel ``weight`` and ``bias`` when ``affine``.

    >>> import gradwell as gw
    >>> gw.nn.GroupNorm(2, 4)(gw.randn(3, 4, 5, rng=0)).shape
    (3, 4, 5)
    """

    def __init__(
        self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True,
        dtype: Any = None,
    ) -> None:  # fmt: skip
        super().__init__()
        self.num_groups = _positive_int(num_groups, "num_groups", "GroupNorm")
        self.num_channels = _positive_int(num_channels, "num_channels", "GroupNorm")
        if self.num_channels % self.num_groups:
            raise ValueError(
                f"GroupNorm: num_channels ({num_channels}) must be divisible by num_groups "
                f"({num_groups})"
            )
        self.eps = _check_eps(eps, "GroupNorm")
        self.affine = bool(affine)
        dtype = np.dtype(np.float32 if dtype is None else dtype)
        c = self.num_channels
        self.weight = Parameter(Tensor(np.ones(c, dtype))) if affine else None
        self.bias = Parameter(Tensor(np.zeros(c, dtype))) if affine else None

    def forward(self, x: Any) -> Tensor:
        if isinstance(x, Tensor) and (x.ndim < 2 or x.shape[1] != self.num_channels):
            raise ValueError(
                f"{self._short_repr()}: expected (N, {self.num_channels}, ...); got shape {x.shape}"
            )
        return group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"
