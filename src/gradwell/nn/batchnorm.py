"""BatchNorm1d / BatchNorm2d: normalise each channel over the batch, then scale and shift."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._numeric import numeric_array
from ..autograd import ops
from ..autograd.tensor import Tensor
from . import fused
from .layers import _positive_int
from .module import Module
from .parameter import Parameter


class BatchNorm1d(Module):
    """Batch normalization of (N, C) or (N, C, L) input (each of the C features over N and L).

    ``(x - mean) / sqrt(var + eps) * weight + bias``.

    In training, each feature is normalised with the batch mean and the biased batch
    variance, and the buffers ``running_mean`` / ``running_var`` move towards the
    batch mean and the *unbiased* batch variance:
    ``running = (1 - momentum) * running + momentum * batch`` (``momentum=None``:
    a cumulative average over ``num_batches_tracked`` batches). In evaluation the
    running statistics normalise. ``weight`` (gamma, starts at 1) and ``bias`` (beta,
    starts at 0) are learned when ``affine``. Without ``track_running_stats`` batch
    statistics are used in both modes. Forward and backward are one fused op.

    >>> import gradwell as gw
    >>> bn = gw.nn.BatchNorm1d(2)
    >>> bn(gw.tensor([[1.0, 10.0], [3.0, 30.0]]))
    tensor([[-1., -1.],
            [ 1.,  1.]], op=batch_norm)
    >>> bn.running_mean
    tensor([0.2, 2. ])
    """

    weight: Parameter | None
    bias: Parameter | None
    _layouts: tuple[str, ...] = ("(N, C)", "(N, C, L)")

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self.num_features = c = _positive_int(num_features, "num_features", "BatchNorm1d")
        if not eps > 0:
            raise ValueError(f"BatchNorm1d: eps must be positive; got {eps!r}")
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"BatchNorm1d: momentum must be in [0, 1] or None; got {momentum!r}")
        self.eps = float(eps)
        self.momentum = momentum
        self.affine = bool(affine)
        self.track_running_stats = bool(track_running_stats)
        dtype = np.dtype(np.float32 if dtype is None else dtype)
        if self.affine:
            self.weight = Parameter(Tensor(np.ones(c, dtype)))
            self.bias = Parameter(Tensor(np.zeros(c, dtype)))
        else:
            self.weight = self.bias = None
        if self.track_running_stats:
            self.register_buffer("running_mean", Tensor(np.zeros(c, dtype)))
            self.register_buffer("running_var", Tensor(np.ones(c, dtype)))
            self.register_buffer("num_batches_tracked", Tensor(np.zeros((), np.int64)))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def forward(self, x: Any) -> Tensor:
        if not isinstance(x, Tensor):  # plain arrays take the layer's dtype
            like = self.weight if self.affine else self.running_mean
            dtype = np.float32 if like is None else like.data.dtype
            x = Tensor(numeric_array(x, f"{self._short_repr()} input").astype(dtype, copy=False))
        ndims = [layout.count(",") + 1 for layout in self._layouts]
        if x.ndim not in ndims or x.shape[1] != self.num_features:
            layouts = " or ".join(lay.replace("C", str(self.num_features)) for lay in self._layouts)
            raise ValueError(
                f"{self._short_repr()}: expected input of shape {layouts}; got shape {x.shape}"
            )
        shape = x.shape
        if x.ndim > 2:  # channels last, every position a row: (N * L..., C)
            axes = (0, *range(2, x.ndim), 1)
            x = ops.reshape(ops.transpose(x, axes=axes), shape=(-1, self.num_features))
        affine = (self.weight, self.bias) if self.affine else ()
        tracking = self.training and self.track_running_stats
        out = fused.batch_norm(
            x,
            *affine,
            training=self.training or not self.track_running_stats,
            eps=self.eps,
            momentum=self.momentum if tracking else 0.0,
            running_mean=self.running_mean.data if self.track_running_stats else None,
            running_var=self.running_var.data if self.track_running_stats else None,
            num_batches_tracked=self.num_batches_tracked.data if tracking else None,
        )
        if len(shape) > 2:
            moved = (shape[0], *shape[2:], shape[1])
            back = (0, len(shape) - 1, *range(1, len(shape) - 1))
            out = ops.transpose(ops.reshape(out, shape=moved), axes=back)
        return out

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, track_running_stats={self.track_running_stats}"
        )


class BatchNorm2d(BatchNorm1d):
    """Batch normalization of (N, C, H, W) input: each channel over the batch and all pixels.

    The same statistics, buffers and options as :class:`BatchNorm1d`.

    >>> import gradwell as gw
    >>> gw.nn.BatchNorm2d(3)(gw.randn(4, 3, 5, 5, rng=0)).shape
    (4, 3, 5, 5)
    """

    _layouts = ("(N, C, H, W)",)
