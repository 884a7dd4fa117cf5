"""Convolutions: ``conv2d`` / ``conv1d`` and the layers Conv2d / Conv1d.

A convolution is im2col and one matrix product: ``unfold`` lays every (kh, kw) window of
the input out as a column, and the (O, C/groups * kh * kw) weight multiplies the columns
of its group. Both pieces are primitives with exact VJPs (``unfold``'s is ``fold``), so
the gradients, to any order, follow from this one definition.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .._numeric import numeric_array
from ..autograd import conv_ops, ops
from ..autograd.tensor import Tensor
from .layers import weight_and_bias
from .module import Module, where_called
from .validate import positive_int as _positive_int


def _ints(value: Any, name: str, who: str, dims: int, minimum: int = 1) -> tuple[int, ...]:
    """``value`` as ``dims`` integers >= ``minimum``: one integer for every axis, or one each."""
    ints = (value,) * dims if isinstance(value, (int, np.integer)) else value
    try:
        ints = tuple(ints)
    except TypeError:
        ints = ()
    if len(ints) != dims or any(
        isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum for v in ints
    ):
        each = " or a pair of them" if dims == 2 else ""
        raise ValueError(f"{who}: {name} must be an integer >= {minimum}{each}; got {value!r}")
    return tuple(int(v) for v in ints)


def _pair(value: Any, name: str, who: str, minimum: int = 1) -> tuple[int, int]:
    first, second = _ints(value, name, who, 2, minimum)
    return first, second


def _single(value: Any, name: str, who: str, minimum: int = 0) -> int:
    """One integer (the ONNX exporter reads a built 1-D layer's arguments with it)."""
    return _ints(value, name, who, 1, minimum)[0]


def _padding(
    padding: Any, kernel: tuple[int, int], dilation: tuple[int, int], stride: Any, who: str
) -> Any:
    """Padding as ((top, bottom), (left, right)); "same" puts an odd extra pixel after (PyTorch)."""
    if padding == "valid":
        return ((0, 0), (0, 0))
    if padding == "same":
        if tuple(stride) != (1, 1):
            raise ValueError(f"{who}: padding='same' needs stride 1; got stride {tuple(stride)}")
        total = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return tuple((t // 2, t - t // 2) for t in total)
    if isinstance(padding, str):
        raise ValueError(f"{who}: padding must be 'same', 'valid' or integers; got {padding!r}")
    ph, pw = _pair(padding, "padding", who, minimum=0)
    return ((ph, ph), (pw, pw))


def _geometry(
    kernel: tuple[int, ...], stride: Any, padding: Any, dilation: Any, who: str
) -> tuple[tuple[int, int], Any, tuple[int, int]]:
    """(stride, padding ((top, bottom), (left, right)), dilation) of a convolution with this
    1-D or 2-D kernel, checked, as pairs: a 1-D convolution runs on a height of 1."""
    dims = len(kernel)
    stride_, dilation_ = _ints(stride, "stride", who, dims), _ints(dilation, "dilation", who, dims)
    if not isinstance(padding, str):
        padding = _ints(padding, "padding", who, dims, minimum=0)
    if dims == 1:
        kernel, stride_, dilation_ = (1, *kernel), (1, *stride_), (1, *dilation_)
        padding = padding if isinstance(padding, str) else (0, *padding)
    pad = _padding(padding, (kernel[0], kernel[1]), (dilation_[0], dilation_[1]), stride_, who)
    return (stride_[0], stride_[1]), pad, (dilation_[0], dilation_[1])


def _check_fits(who: str, out: Any, padded: Any, kernel: Any, dilation: Any, dims: int) -> None:
    """Raise unless every axis has at least one window; a 1-D one is shown as 1-D."""
    if min(out) < 1:
        raise ValueError(
            f"{who}: a kernel of {tuple(kernel[-dims:])} with dilation "
            f"{tuple(dilation[-dims:])} does not fit in the padded input of "
            f"{'x'.join(str(size) for size in padded[-dims:])}"
        )


def _as_tensor(x: Any, like: Tensor, who: str) -> Tensor:
    if isinstance(x, Tensor):
        return x
    return Tensor(numeric_array(x, f"{who} input").astype(like.data.dtype, copy=False))


def conv2d(
    x: Any,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> Tensor:
    """2-D convolution (cross-correlation, as in PyTorch) of (N, C, H, W) with a weight.

    The weight is (O, C/groups, kh, kw), the bias (O,).

    ``padding``: an integer, a pair, "valid" (none) or "same" (output size = input size,
    stride 1). Returns (N, O, OH, OW).

    >>> import gradwell as gw
    >>> conv2d(gw.ones(1, 1, 4, 4), gw.ones(2, 1, 3, 3), padding=1).shape
    (1, 2, 4, 4)
    """
    return _conv(x, weight, bias, stride, padding, dilation, groups, 2, f"conv2d{where_called()}")


def conv1d(
    x: Any,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> Tensor:
    """1-D convolution of (N, C, L) with a (O, C/groups, k) weight: conv2d on a height of 1."""
    return _conv(x, weight, bias, stride, padding, dilation, groups, 1, f"conv1d{where_called()}")


_LAYOUTS = {  # (input, weight) of a 2-D and a 1-D convolution; the input's is pooling's too
    2: ("(N, C, H, W)", "(O, C/groups, kh, kw)"),
    1: ("(N, C, L)", "(O, C/groups, k)"),
}


def _conv(
    x: Any, weight: Tensor, bias: Any, stride: Any, padding: Any, dilation: Any, groups: Any,
    dims: int, who: str,
) -> Tensor:  # fmt: skip
    """conv2d and conv1d: a 1-D convolution is the 2-D one on a height of 1."""
    x = _as_tensor(x, weight, who)
    if x.ndim != dims + 2 or weight.ndim != dims + 2:
        layout, weight_layout = _LAYOUTS[dims]
        raise ValueError(
            f"{who}: expected a {layout} input and a {weight_layout} weight; got shapes "
            f"{x.shape} and {weight.shape}"
        )
    groups = _positive_int(groups, "groups", who)
    n, c = x.shape[:2]
    o, cg = weight.shape[:2]
    if c % groups or o % groups or cg * groups != c:
        raise ValueError(
            f"{who}: the input has {c} channels and the weight {o} x {cg} (out x in per group) "
            f"with groups={groups}: expected in channels = {cg} * {groups} and out channels "
            f"divisible by {groups}"
        )
    stride_, pad, dilation_ = _geometry(weight.shape[2:], stride, padding, dilation, who)
    if dims == 1:
        x = ops.reshape(x, shape=(n, c, 1, x.shape[2]))
        weight = ops.reshape(weight, shape=(o, cg, 1, weight.shape[2]))
    kh, kw = weight.shape[2:]
    oh, ow = (
        conv_ops.output_size(size, k, s, p, d)
        for size, k, s, p, d in zip(x.shape[2:], (kh, kw), stride_, pad, dilation_)
    )
    padded = [size + sum(p) for size, p in zip(x.shape[2:], pad)]
    _check_fits(who, (oh, ow), padded, (kh, kw), dilation_, dims)
    if groups == 1:  # the whole batch as one product
        attrs = {"stride": stride_, "padding": pad, "dilation": dilation_}
        out = conv_ops.conv2d(x, weight, *(() if bias is None else (bias,)), **attrs)
    else:
        cols = conv_ops.unfold(x, kernel=(kh, kw), stride=stride_, padding=pad, dilation=dilation_)
        k = cg * kh * kw
        w = ops.reshape(weight, shape=(groups, o // groups, k))
        out = ops.matmul(w, ops.reshape(cols, shape=(n, groups, k, oh * ow)))
        out = ops.reshape(out, shape=(n, o, oh, ow))
        if bias is not None:
            out = out + ops.reshape(bias, shape=(o, 1, 1))
    return out if dims == 2 else ops.reshape(out, shape=(n, o, ow))


class _ConvLayer(Module):
    """What the convolution layers share: the channel and group checks, the kernel, and
    the weight and bias (``_transposed``: the weight is (in, out/groups, ...))."""

    _dims = 2
    _transposed = False

    def _build(
        self, in_channels: Any, out_channels: Any, kernel_size: Any, groups: Any, bias: bool,
        init: Any, rng: Any, dtype: Any,
    ) -> None:  # fmt: skip
        who = type(self).__name__
        self.in_channels = _positive_int(in_channels, "in_channels", who)
        self.out_channels = _positive_int(out_channels, "out_channels", who)
        self.groups = _positive_int(groups, "groups", who)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(
                f"{who}: in_channels ({in_channels}) and out_channels ({out_channels}) must "
                f"both be divisible by groups ({groups})"
            )
        self.kernel_size: tuple[int, ...] = _ints(kernel_size, "kernel_size", who, self._dims)
        first, second = (self.in_channels, self.out_channels)[:: 1 if self._transposed else -1]
        shape = (first, second // self.groups, *self.kernel_size)
        self.weight, self.bias = weight_and_bias(
            who, shape, self.out_channels, bias, init, rng, dtype
        )


class _ConvNd(_ConvLayer):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
        bias: bool = True,
        init: str | Callable[..., Any] = "kaiming",
        rng: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self._build(in_channels, out_channels, kernel_size, groups, bias, init, rng, dtype)
        # Check stride, padding and dilation now, not at the first call.
        _geometry(self.kernel_size, stride, padding, dilation, type(self).__name__)
        self.stride, self.padding, self.dilation = stride, padding, dilation

    def forward(self, x: Any) -> Tensor:
        fn = conv2d if self._dims == 2 else conv1d
        return fn(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        k = self.kernel_size if self._dims == 2 else self.kernel_size[0]
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={k}, stride={self.stride}"
        if self.padding not in (0, (0, 0)):
            s += f", padding={self.padding!r}"
        if self.dilation not in (1, (1, 1)):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        return s + ("" if self.bias is not None else ", bias=False")


class Conv2d(_ConvNd):
    """2-D convolution over (N, C, H, W), as PyTorch's: weight (O, C/groups, kh, kw), bias (O,).

    ``padding``: an integer, a pair, "valid" or "same". ``init`` as for Linear (He uniform
    by default); the bias starts at zero. ``rng``: a seed or a numpy Generator.

    >>> import gradwell as gw
    >>> gw.nn.Conv2d(3, 8, 3, padding="same", rng=0)(gw.zeros(2, 3, 10, 10)).shape
    (2, 8, 10, 10)
    """

    _dims = 2


class Conv1d(_ConvNd):
    """1-D convolution over (N, C, L): weight (O, C/groups, k), bias (O,).

    >>> import gradwell as gw
    >>> gw.nn.Conv1d(4, 2, 3, rng=0)(gw.zeros(5, 4, 10)).shape
    (5, 2, 8)
    """

    _dims = 1
