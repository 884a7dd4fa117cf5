"""Pooling: max and average over sliding windows (1-D and 2-D), and adaptive average pooling.

Max pooling is its own primitive (``conv_ops.max_pool2d``, one compiled pass that keeps
where each maximum was): it hands the gradient to the window's largest element, the first
of equal ones, as PyTorch. An averaged window is a column of ``unfold`` reduced with the
core ``mean``, so average pooling spreads the gradient evenly, by mean's own VJP.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._numeric import numeric_array
from ..autograd import conv_ops, ops
from ..autograd.tensor import Tensor
from .conv import _LAYOUTS, _check_fits, _ints
from .module import Module, where_called


def _input(x: Any, dims: int, who: str) -> Tensor:
    if not isinstance(x, Tensor):
        arr = numeric_array(x, f"{who} input")
        x = Tensor(arr.astype(np.float32) if arr.dtype.kind != "f" else arr)
    if x.ndim != dims + 2:
        raise ValueError(f"{who}: expected a {_LAYOUTS[dims][0]} input; got shape {x.shape}")
    return x


def _dims(name: str) -> int:
    return 1 if name.endswith("1d") else 2


def _window(
    kernel_size: Any, stride: Any, padding: Any, dilation: Any, dims: int, who: str
) -> tuple[tuple[int, int], ...]:
    """(kernel, stride, padding, dilation) of a 1-D or 2-D pooling, checked, as pairs (a
    1-D pooling runs on a height of 1); ``stride`` None is the kernel (PyTorch's default)."""
    kernel = _ints(kernel_size, "kernel_size", who, dims)
    stride_ = kernel if stride is None else _ints(stride, "stride", who, dims)
    pad = _ints(padding, "padding", who, dims, minimum=0)
    if any(p > k // 2 for p, k in zip(pad, kernel)):
        raise ValueError(f"{who}: padding {pad} must be at most half the kernel {kernel}")
    dilation_ = _ints(dilation, "dilation", who, dims)
    pairs = [kernel, stride_, pad, dilation_]
    if dims == 1:
        pairs = [(first, *v) for first, v in zip((1, 1, 0, 1), pairs)]
    return tuple((v[0], v[1]) for v in pairs)


def _pooled_size(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """Windows along one axis; ``ceil_mode`` counts a last, partial window too, when it
    starts inside the input or its left padding (PyTorch's rule)."""
    span = size + 2 * p - d * (k - 1) - 1
    if not ceil_mode:
        return span // s + 1
    out = -(-span // s) + 1
    return out - 1 if (out - 1) * s >= size + p else out


def _divisors(size: int, out: int, k: int, s: int, p: int, count_include_pad: bool) -> np.ndarray:
    """How many places each window of average pooling counts along one axis: the window
    within the padded input (PyTorch's default), or within the input only."""
    start = np.arange(out) * s - p
    stop = np.minimum(start + k, size + p)
    if not count_include_pad:
        start, stop = np.maximum(start, 0), np.minimum(stop, size)
    return (stop - start).astype(np.float64)


def _pool(
    x: Any,
    kernel_size: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    name: str,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> Tensor:
    """The pooling function ``name`` ("max_pool2d", "avg_pool1d", ...): a 1-D pooling is
    the 2-D one on a height of 1."""
    dims = _dims(name)
    who = f"{name}{where_called()}"
    x = _input(x, dims, who)
    kernel, stride_, pad, dilation_ = _window(kernel_size, stride, padding, dilation, dims, who)
    if dims == 1:
        x = ops.reshape(x, shape=(x.shape[0], x.shape[1], 1, x.shape[2]))
    n, c, h, w = x.shape
    oh, ow = (
        _pooled_size(size, k, s, p, d, bool(ceil_mode))
        for size, k, s, p, d in zip((h, w), kernel, stride_, pad, dilation_)
    )
    _check_fits(who, (oh, ow), (h + 2 * pad[0], w + 2 * pad[1]), kernel, dilation_, dims)
    # the last partial window of ceil_mode reads past the padding: pad that side further
    widths = tuple(
        (p, max((o - 1) * s + d * (k - 1) + 1 - size - p, p))
        for size, o, k, s, p, d in zip((h, w), (oh, ow), kernel, stride_, pad, dilation_)
    )
    if name.startswith("max"):
        out = conv_ops.max_pool2d(
            x, kernel=kernel, stride=stride_, padding=widths, dilation=dilation_
        )
    else:
        cols = conv_ops.unfold(x, kernel=kernel, stride=stride_, padding=widths, dilation=dilation_)
        windows = ops.reshape(cols, shape=(n, c, kernel[0] * kernel[1], oh, ow))
        counts = np.outer(
            *(_divisors(size, o, k, s, p, count_include_pad)
              for size, o, k, s, p in zip((h, w), (oh, ow), kernel, stride_, pad))
        )  # fmt: skip
        if (counts == kernel[0] * kernel[1]).all():
            out = ops.mean(windows, axis=2, keepdims=False)
        else:
            scale = Tensor((1.0 / counts).astype(x.dtype))
            out = ops.sum(windows, axis=2, keepdims=False) * scale
    return out if dims == 2 else ops.reshape(out, shape=(n, c, ow))


def max_pool2d(
    x: Any,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
) -> Tensor:
    """The largest value of each (kh, kw) window of (N, C, H, W); ``stride`` defaults to the
    kernel. ``ceil_mode``: keep a last window that runs past the input's end.

    >>> import gradwell as gw
    >>> max_pool2d(gw.arange(16.0).reshape(1, 1, 4, 4), 2)
    tensor([[[[ 5.,  7.],
              [13., 15.]]]])
    """
    return _pool(x, kernel_size, stride, padding, dilation, "max_pool2d", ceil_mode)


def avg_pool2d(
    x: Any,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> Tensor:
    """The mean of each window of (N, C, H, W). ``count_include_pad`` (PyTorch's default):
    the zero padding counts in the mean; False: only the input's own values do.
    ``ceil_mode``: keep a last window that runs past the input's end (the part past the
    padding never counts)."""
    return _pool(x, kernel_size, stride, padding, 1, "avg_pool2d", ceil_mode,
                   count_include_pad)  # fmt: skip


def max_pool1d(
    x: Any,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
) -> Tensor:
    """The largest value of each window of (N, C, L)."""
    return _pool(x, kernel_size, stride, padding, dilation, "max_pool1d", ceil_mode)


def avg_pool1d(
    x: Any,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> Tensor:
    """The mean of each window of (N, C, L) (``ceil_mode``, ``count_include_pad`` as for
    :func:`avg_pool2d`)."""
    return _pool(x, kernel_size, stride, padding, 1, "avg_pool1d", ceil_mode,
                   count_include_pad)  # fmt: skip


def _bins(size: int, out: int, dtype: np.dtype) -> np.ndarray:
    """(out, size): row i averages PyTorch's bin floor(i*size/out) .. ceil((i+1)*size/out)."""
    m = np.zeros((out, size), dtype)
    for i in range(out):
        lo, hi = (i * size) // out, -((-(i + 1) * size) // out)
        m[i, lo:hi] = 1.0 / (hi - lo)
    return m


def _output_size(output_size: Any, who: str) -> tuple[Any, Any]:
    """Adaptive pooling's (oh, ow), checked: integers >= 1, or None to keep that size."""
    size = output_size
    if isinstance(size, (int, np.integer)) or size is None:
        size = (size, size)
    if (
        not isinstance(size, (tuple, list))
        or len(size) != 2
        or any(
            o is not None and (isinstance(o, bool) or not isinstance(o, (int, np.integer)) or o < 1)
            for o in size
        )
    ):
        raise ValueError(
            f"{who}: output_size must be an integer >= 1 or a pair of them (None keeps that "
            f"size); got {output_size!r}"
        )
    return size[0], size[1]


def adaptive_avg_pool2d(x: Any, output_size: Any) -> Tensor:
    """Average (N, C, H, W) down to (N, C, oh, ow) in PyTorch's bins (``None`` keeps a size).

    Each bin's mean is a product with an averaging matrix on each side: ``Ph @ x @ Pw.T``.

    >>> import gradwell as gw
    >>> adaptive_avg_pool2d(gw.ones(2, 3, 7, 5), 1).shape
    (2, 3, 1, 1)
    """
    who = f"adaptive_avg_pool2d{where_called()}"
    x = _input(x, 2, who)
    oh, ow = (s if o is None else o for o, s in zip(_output_size(output_size, who), x.shape[2:]))
    rows = Tensor(_bins(x.shape[2], oh, x.dtype))
    cols = Tensor(np.ascontiguousarray(_bins(x.shape[3], ow, x.dtype).T))
    return ops.matmul(ops.matmul(rows, x), cols)


class _Pool(Module):
    """What the pooling layers share: the window's arguments, checked at construction,
    and the forward, the function ``_name``."""

    _name = "max_pool2d"
    count_include_pad = True  # average pooling's; max pooling has no divisor

    def __init__(
        self,
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        dilation: Any = 1,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__()
        # Check the window now, not at the first call.
        _window(kernel_size, stride, padding, dilation, _dims(self._name), type(self).__name__)
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.dilation, self.ceil_mode = dilation, ceil_mode

    def forward(self, x: Any) -> Tensor:
        return _pool(x, self.kernel_size, self.stride, self.padding, self.dilation, self._name,
                     self.ceil_mode, self.count_include_pad)  # fmt: skip

    def extra_repr(self) -> str:
        s = f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
        s += f", dilation={self.dilation}" if self.dilation != 1 else ""
        return s + (", ceil_mode=True" if self.ceil_mode else "")


class MaxPool2d(_Pool):
    """Max pooling over (N, C, H, W) (``stride`` defaults to ``kernel_size``).

    >>> import gradwell as gw
    >>> gw.nn.MaxPool2d(2)(gw.zeros(1, 3, 8, 6)).shape
    (1, 3, 4, 3)
    """

    _name = "max_pool2d"


class MaxPool1d(_Pool):
    """Max pooling over (N, C, L)."""

    _name = "max_pool1d"


class _AvgPool(_Pool):
    def __init__(
        self,
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
    ) -> None:
        super().__init__(kernel_size, stride, padding, 1, ceil_mode)
        self.count_include_pad = count_include_pad

    def extra_repr(self) -> str:
        return super().extra_repr() + (
            "" if self.count_include_pad else ", count_include_pad=False"
        )


class AvgPool2d(_AvgPool):
    """Average pooling over (N, C, H, W); zero padding counts in the mean unless
    ``count_include_pad=False``."""

    _name = "avg_pool2d"


class AvgPool1d(_AvgPool):
    """Average pooling over (N, C, L)."""

    _name = "avg_pool1d"


class AdaptiveAvgPool2d(Module):
    """Average (N, C, H, W) to a fixed (oh, ow), whatever H and W are.

    >>> import gradwell as gw
    >>> gw.nn.AdaptiveAvgPool2d((2, 3))(gw.zeros(1, 4, 9, 7)).shape
    (1, 4, 2, 3)
    """

    def __init__(self, output_size: Any) -> None:
        super().__init__()
        _output_size(output_size, type(self).__name__)  # checked now, not at the first call
        self.output_size = output_size

    def forward(self, x: Any) -> Tensor:
        return adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"
