"""Sliding windows over images: ``unfold`` (im2col) and its adjoint ``fold`` (col2im), and padding.

Convolution, pooling and padding are built from these and the core primitives (matmul,
reshape, max, mean, getitem), so each of them is exact to second order for free: the VJP
of ``unfold`` is ``fold`` and the VJP of ``fold`` is ``unfold``, both linear.

The layout is PyTorch's: ``unfold`` of (N, C, H, W) is (N, C * kh * kw, OH * OW), the
channel outermost, so a (O, C, kh, kw) weight reshaped to (O, C * kh * kw) multiplies it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .ops import ArrayF, primitive

Pair = tuple[int, int]
Padding = tuple[Pair, Pair]  # ((top, bottom), (left, right))


def output_size(size: int, kernel: int, stride: int, pad: Pair, dilation: int) -> int:
    """How many windows fit along one axis."""
    return (size + pad[0] + pad[1] - dilation * (kernel - 1) - 1) // stride + 1


def _windows(
    x: np.ndarray, kernel: Pair, stride: Pair, padding: Padding, dilation: Pair, value: float
) -> np.ndarray:
    """A (N, C, kh, kw, OH, OW) strided view of the padded input: no copy yet."""
    if any(p for pair in padding for p in pair):
        x = np.pad(x, ((0, 0), (0, 0), *padding), constant_values=value)
    n, c, h, w = x.shape
    oh = output_size(h, kernel[0], stride[0], (0, 0), dilation[0])
    ow = output_size(w, kernel[1], stride[1], (0, 0), dilation[1])
    if oh < 1 or ow < 1:
        raise ValueError(
            f"unfold: a kernel of {kernel} with dilation {dilation} does not fit in the "
            f"padded input of {h}x{w}"
        )
    sn, sc, sh, sw = x.strides
    return np.lib.stride_tricks.as_strided(
        x,
        (n, c, kernel[0], kernel[1], oh, ow),
        (sn, sc, sh * dilation[0], sw * dilation[1], sh * stride[0], sw * stride[1]),
        writeable=False,
    )


def _call(F: Any, op: Any, *args: Any, **attrs: Any) -> Any:
    """Run one of this module's primitives on arrays (ArrayF) or, recorded, on Tensors."""
    return op.forward(*args, **attrs) if F is ArrayF else op(*args, **attrs)


@primitive("unfold", reads="")
def unfold(
    x: Any,
    *,
    kernel: Pair,
    stride: Pair = (1, 1),
    padding: Padding = ((0, 0), (0, 0)),
    dilation: Pair = (1, 1),
    value: float = 0.0,
) -> Any:
    """The sliding (kh, kw) windows of (N, C, H, W) as columns: (N, C * kh * kw, OH * OW).

    ``padding`` pads each side with ``value`` (0 for convolution, -inf for max pooling):
    the padded places are constants, so they take no gradient.
    """
    win = _windows(x, kernel, stride, padding, dilation, value)
    n, c, kh, kw, oh, ow = win.shape
    return win.reshape(n, c * kh * kw, oh * ow)


@unfold.defvjp
def _(F, g, out, ins, needs, attrs):
    a = attrs
    return (
        _call(
            F, fold, g, shape=ins[0].shape, kernel=a["kernel"], stride=a.get("stride", (1, 1)),
            padding=a.get("padding", ((0, 0), (0, 0))), dilation=a.get("dilation", (1, 1)),
        ),
    )  # fmt: skip


@primitive("fold", reads="")
def fold(
    cols: Any,
    *,
    shape: tuple[int, ...],
    kernel: Pair,
    stride: Pair = (1, 1),
    padding: Padding = ((0, 0), (0, 0)),
    dilation: Pair = (1, 1),
) -> Any:
    """The adjoint of ``unfold``: add each column back into its window of a (N, C, H, W) image."""
    n, c, h, w = shape
    kh, kw = kernel
    oh = output_size(h, kh, stride[0], padding[0], dilation[0])
    ow = output_size(w, kw, stride[1], padding[1], dilation[1])
    return _fold_windows(cols.reshape(n, c, kh, kw, oh, ow), shape, padding, stride, dilation)


def _fold_windows(
    cols: np.ndarray, shape: tuple[int, ...], padding: Padding, stride: Pair, dilation: Pair
) -> np.ndarray:
    """Add (N, C, kh, kw, OH, OW) window values (any strides) into a (N, C, H, W) image."""
    n, c, h, w = shape
    (pt, pb), (pl, pr) = padding
    _, _, kh, kw, oh, ow = cols.shape
    sh, sw = stride
    dh, dw = dilation
    out = np.zeros((n, c, h + pt + pb, w + pl + pr), dtype=cols.dtype)
    for i in range(kh):  # one strided add per kernel offset: kh * kw numpy calls
        for j in range(kw):
            top, left = i * dh, j * dw
            out[:, :, top : top + sh * (oh - 1) + 1 : sh, left : left + sw * (ow - 1) + 1 : sw] += (
                cols[:, :, i, j]
            )
    return out[:, :, pt : pt + h, pl : pl + w]


@fold.defvjp
def _(F, g, out, ins, needs, attrs):
    a = attrs
    return (
        _call(
            F, unfold, g, kernel=a["kernel"], stride=a.get("stride", (1, 1)),
            padding=a.get("padding", ((0, 0), (0, 0))), dilation=a.get("dilation", (1, 1)),
        ),
    )  # fmt: skip


@primitive("pad", reads="")
def pad(x: Any, *, widths: tuple[Pair, ...], value: float = 0.0) -> Any:
    """Pad each axis by (before, after) with the constant ``value``."""
    return np.pad(x, widths, constant_values=value)


@pad.defvjp
def _(F, g, out, ins, needs, attrs):
    index = tuple(slice(b, b + s) for (b, _), s in zip(attrs["widths"], ins[0].shape))
    return (F.getitem(g, index=index),)


@primitive("conv2d", saves=True, reads="i")
def conv2d(
    x: Any, w: Any, *bias: Any, stride: Pair, padding: Padding, dilation: Pair
) -> tuple[Any, Any]:
    """Convolution of (N, C, H, W) with a (O, C, kh, kw) weight as one GEMM.

    The columns are laid out (C * kh * kw, N * OH * OW), so the whole batch is a single
    product with the (O, C * kh * kw) weight; they are saved for the weight's gradient.
    """
    o, c, kh, kw = w.shape
    win = _windows(x, (kh, kw), stride, padding, dilation, 0.0)
    n, _, _, _, oh, ow = win.shape
    cols = win.transpose(1, 2, 3, 0, 4, 5).reshape(c * kh * kw, n * oh * ow)
    out = w.reshape(o, -1) @ cols
    if bias:
        out += bias[0][:, None]
    return out.reshape(o, n, oh, ow).transpose(1, 0, 2, 3), cols


@conv2d.defvjp
def _(F, g, out, ins, needs, attrs):
    x, w = ins[0], ins[1]
    o, c, kh, kw = w.shape
    n, _, oh, ow = g.shape
    cols = attrs["saved"]
    g2 = g.transpose(1, 0, 2, 3).reshape(o, n * oh * ow)
    gx = gw = None
    if needs[0]:
        gcols = (w.reshape(o, -1).T @ g2).reshape(c, kh, kw, n, oh, ow)
        gx = _fold_windows(
            gcols.transpose(3, 0, 1, 2, 4, 5), x.shape, attrs["padding"], attrs["stride"],
            attrs["dilation"],
        )  # fmt: skip
    if needs[1]:
        gw = (g2 @ cols.T).reshape(w.shape)
    if len(ins) == 2:
        return gx, gw
    return gx, gw, (g2.sum(axis=1) if needs[2] else None)


@conv2d.defreference
def _conv2d_reference(out, x, w, *bias, stride, padding, dilation, saved):
    o, c, kh, kw = w.shape
    cols = unfold(x, kernel=(kh, kw), stride=stride, padding=padding, dilation=dilation)
    y = (w.reshape(o, c * kh * kw) @ cols).reshape(out.shape)
    return y + bias[0].reshape(o, 1, 1) if bias else y
