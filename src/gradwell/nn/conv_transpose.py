"""Transposed convolution: ``conv_transpose2d`` and the layer ConvTranspose2d.

A transposed convolution is the adjoint of a convolution: every input pixel spreads a
(kh, kw) patch of the weight over the output. Written as the adjoint it is built from, it
is one matrix product per group (the weight's columns times the pixels: the columns of
the output's windows) and ``fold``, which adds each column into its window. Both are
primitives with exact VJPs (``fold``'s is ``unfold``), so the gradient of this
definition, to any order, is the convolution it transposes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..autograd import conv_ops, ops
from ..autograd.tensor import Tensor
from .conv import _as_tensor, _ConvLayer, _pair
from .module import where_called
from .validate import positive_int as _positive_int


def _transposed_geometry(
    stride: Any, padding: Any, output_padding: Any, dilation: Any, who: str
) -> tuple[tuple[int, int], ...]:
    """(stride, padding, output_padding, dilation) as checked pairs; ``output_padding``
    picks among the sizes a strided convolution maps to one, so it is below the stride
    or the dilation (PyTorch's rule)."""
    stride_, dilation_ = _pair(stride, "stride", who), _pair(dilation, "dilation", who)
    pad = _pair(padding, "padding", who, minimum=0)
    extra = _pair(output_padding, "output_padding", who, minimum=0)
    if any(e >= max(s, d) for e, s, d in zip(extra, stride_, dilation_)):
        raise ValueError(
            f"{who}: output_padding {extra} must be smaller than the stride {stride_} or the "
            f"dilation {dilation_}"
        )
    return stride_, pad, extra, dilation_


def conv_transpose2d(
    x: Any,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    groups: int = 1,
    dilation: Any = 1,
) -> Tensor:
    """2-D transposed convolution of (N, C, H, W), as PyTorch's ``conv_transpose2d``.

    The weight is (C, O/groups, kh, kw) (in channels first), the bias (O,). The output is
    (N, O, OH, OW) with ``OH = (H - 1) * stride - 2 * padding + dilation * (kh - 1) +
    output_padding + 1``: the input size of the convolution it transposes
    (``output_padding`` picks among the sizes a strided convolution maps to H).

    >>> import gradwell as gw
    >>> conv_transpose2d(gw.ones(1, 2, 3, 3), gw.ones(2, 4, 3, 3), stride=2).shape
    (1, 4, 7, 7)
    """
    who = f"conv_transpose2d{where_called()}"
    x = _as_tensor(x, weight, who)
    if x.ndim != 4 or weight.ndim != 4:
        raise ValueError(
            f"{who}: expected a (N, C, H, W) input and a (C, O/groups, kh, kw) weight; got "
            f"shapes {x.shape} and {weight.shape}"
        )
    n, c, h, w = x.shape
    cw, og, kh, kw = weight.shape
    groups = _positive_int(groups, "groups", who)
    if cw != c or c % groups:
        raise ValueError(
            f"{who}: the input has {c} channels and the weight {cw} (its first axis) with "
            f"groups={groups}: expected them equal and divisible by {groups}"
        )
    stride_, pad, extra, dilation_ = _transposed_geometry(
        stride, padding, output_padding, dilation, who
    )
    size = [
        (i - 1) * s - 2 * p + d * (k - 1) + e + 1
        for i, s, p, d, k, e in zip((h, w), stride_, pad, dilation_, (kh, kw), extra)
    ]
    if min(size) < 1:
        raise ValueError(f"{who}: padding {pad} leaves no output (size {tuple(size)})")
    o, k = og * groups, og * kh * kw
    # per group: (k, C/groups) columns of the weight times the (C/groups, H*W) pixels
    wt = ops.transpose(ops.reshape(weight, shape=(groups, c // groups, k)), axes=(0, 2, 1))
    cols = ops.matmul(wt, ops.reshape(x, shape=(n, groups, c // groups, h * w)))
    out = conv_ops.fold(
        ops.reshape(cols, shape=(n, o * kh * kw, h * w)), shape=(n, o, *size), kernel=(kh, kw),
        stride=stride_, padding=tuple((p, p) for p in pad), dilation=dilation_,
    )  # fmt: skip
    if bias is not None:
        out = out + ops.reshape(bias, shape=(o, 1, 1))
    return out


class ConvTranspose2d(_ConvLayer):
    """Transposed 2-D convolution over (N, C, H, W), as PyTorch's: weight (C, O/groups, kh,
    kw), bias (O,). It upsamples: with ``stride=2, kernel_size=2`` each pixel becomes a 2x2
    patch. ``init`` as for Conv2d (He uniform over the weight's fan-in by PyTorch's rule,
    ``weight.shape[1] * kh * kw``); the bias starts at zero.

    >>> import gradwell as gw
    >>> gw.nn.ConvTranspose2d(8, 3, 2, stride=2, rng=0)(gw.zeros(1, 8, 5, 5)).shape
    (1, 3, 10, 10)
    """

    _transposed = True

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = 0,
        output_padding: Any = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: Any = 1,
        init: str | Callable[..., Any] = "kaiming",
        rng: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self._build(in_channels, out_channels, kernel_size, groups, bias, init, rng, dtype)
        # Check stride, padding, output_padding and dilation now, not at the first call.
        _transposed_geometry(stride, padding, output_padding, dilation, type(self).__name__)
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.output_padding = output_padding

    def forward(self, x: Any) -> Tensor:
        return conv_transpose2d(
            x, self.weight, self.bias, self.stride, self.padding, self.output_padding,
            self.groups, self.dilation,
        )  # fmt: skip

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"
        s += f", stride={self.stride}"
        for name, default in (("padding", 0), ("output_padding", 0), ("dilation", 1),
                              ("groups", 1)):  # fmt: skip
            if getattr(self, name) not in (default, (default, default)):
                s += f", {name}={getattr(self, name)!r}"
        return s + ("" if self.bias is not None else ", bias=False")
