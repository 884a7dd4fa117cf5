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
from ..autograd.creation import _rng
from ..autograd.tensor import Tensor
from .init import BY_NAME as _INITS
from .module import Module
from .parameter import Parameter
from .validate import positive_int as _positive_int


def _pair(value: Any, name: str, who: str, minimum: int = 1) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(pair) != 2 or any(
        isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum for v in pair
    ):
        raise ValueError(
            f"{who}: {name} must be an integer >= {minimum} or a pair of them; got {value!r}"
        )
    return int(pair[0]), int(pair[1])


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
    who = "conv2d"
    x = _as_tensor(x, weight, who)
    if x.ndim != 4 or weight.ndim != 4:
        raise ValueError(
            f"{who}: expected a (N, C, H, W) input and a (O, C/groups, kh, kw) weight; got "
            f"shapes {x.shape} and {weight.shape}"
        )
    n, c, _, _ = x.shape
    o, cg, kh, kw = weight.shape
    if c % groups or o % groups or cg * groups != c:
        raise ValueError(
            f"{who}: the input has {c} channels and the weight {o} x {cg} (out x in per group) "
            f"with groups={groups}: expected in channels = {cg} * {groups} and out channels "
            f"divisible by {groups}"
        )
    stride_, dilation_ = _pair(stride, "stride", who), _pair(dilation, "dilation", who)
    pad = _padding(padding, (kh, kw), dilation_, stride_, who)
    if groups == 1:  # the whole batch as one product
        attrs = {"stride": stride_, "padding": pad, "dilation": dilation_}
        return conv_ops.conv2d(x, weight, *(() if bias is None else (bias,)), **attrs)
    cols = conv_ops.unfold(x, kernel=(kh, kw), stride=stride_, padding=pad, dilation=dilation_)
    oh = conv_ops.output_size(x.shape[2], kh, stride_[0], pad[0], dilation_[0])
    ow = conv_ops.output_size(x.shape[3], kw, stride_[1], pad[1], dilation_[1])
    k = cg * kh * kw
    w = ops.reshape(weight, shape=(groups, o // groups, k))
    out = ops.matmul(w, ops.reshape(cols, shape=(n, groups, k, oh * ow)))
    out = ops.reshape(out, shape=(n, o, oh, ow))
    if bias is not None:
        out = out + ops.reshape(bias, shape=(o, 1, 1))
    return out


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
    who = "conv1d"
    x = _as_tensor(x, weight, who)
    if x.ndim != 3 or weight.ndim != 3:
        raise ValueError(
            f"{who}: expected a (N, C, L) input and a (O, C/groups, k) weight; got shapes "
            f"{x.shape} and {weight.shape}"
        )
    if not isinstance(padding, str):
        padding = (0, _single(padding, "padding", who))
    out = conv2d(
        ops.reshape(x, shape=(x.shape[0], x.shape[1], 1, x.shape[2])),
        ops.reshape(weight, shape=(*weight.shape[:2], 1, weight.shape[2])),
        bias,
        (1, _single(stride, "stride", who)),
        padding,
        (1, _single(dilation, "dilation", who)),
        groups,
    )
    return ops.reshape(out, shape=(out.shape[0], out.shape[1], out.shape[3]))


def _single(value: Any, name: str, who: str) -> int:
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{who}: {name} must be an integer; got {value!r}")
    return int(value)


class _ConvNd(Module):
    _dims = 2

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
        who = type(self).__name__
        self.in_channels = _positive_int(in_channels, "in_channels", who)
        self.out_channels = _positive_int(out_channels, "out_channels", who)
        self.groups = _positive_int(groups, "groups", who)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(
                f"{who}: in_channels ({in_channels}) and out_channels ({out_channels}) must "
                f"both be divisible by groups ({groups})"
            )
        if self._dims == 2:
            self.kernel_size: tuple[int, ...] = _pair(kernel_size, "kernel_size", who)
        else:
            self.kernel_size = (_single(kernel_size, "kernel_size", who),)
        self.stride, self.padding, self.dilation = stride, padding, dilation
        if isinstance(init, str):
            if init not in _INITS:
                raise ValueError(f"{who}: unknown init {init!r}; expected one of {sorted(_INITS)}")
            init = _INITS[init]
        dtype = np.dtype(np.float32 if dtype is None else dtype)
        shape = (self.out_channels, self.in_channels // self.groups, *self.kernel_size)
        self.weight = Parameter(Tensor(np.empty(shape, dtype)))
        init(self.weight, rng=_rng(rng))
        self.bias = Parameter(Tensor(np.zeros(self.out_channels, dtype))) if bias else None
        # Check stride, padding and dilation now, not at the first call.
        k2 = (
            (self.kernel_size[0], self.kernel_size[-1])
            if self._dims == 2
            else (1, self.kernel_size[0])
        )
        one = (lambda v: v) if self._dims == 2 else (lambda v: (1, _single(v, "", who)))
        _padding(
            padding if isinstance(padding, str) or self._dims == 2 else one(padding),
            k2, _pair(one(dilation), "dilation", who, 1), _pair(one(stride), "stride", who), who,
        )  # fmt: skip

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
