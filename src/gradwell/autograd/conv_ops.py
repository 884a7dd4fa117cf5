"""Sliding windows over images: ``unfold`` (im2col) and its adjoint ``fold`` (col2im), and padding.

Average pooling, grouped convolution and padding are built from these and the core
primitives (matmul, reshape, mean, getitem), so each of them is exact to second order for
free: the VJP of ``unfold`` is ``fold`` and the VJP of ``fold`` is ``unfold``, both linear.
``conv2d`` and ``max_pool2d`` are primitives of their own with compiled kernels
(``conv_kernels.py``, on channels-last images), and their references (what
``create_graph`` differentiates) are built from ``unfold`` and ``getitem``.

The layout is PyTorch's: ``unfold`` of (N, C, H, W) is (N, C * kh * kw, OH * OW), the
channel outermost, so a (O, C, kh, kw) weight reshaped to (O, C * kh * kw) multiplies it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import conv_kernels as kernels
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


def channels_last(x: np.ndarray, dtype: Any = None) -> np.ndarray:
    """(N, C, H, W) as a C-contiguous (N, H, W, C) array: free for the outputs of ``conv2d``
    and ``max_pool2d`` (channels-last in memory behind their (N, C, H, W) shape)."""
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1), dtype=dtype)


def _geometry(
    h: int, w: int, kernel: Pair, stride: Pair, padding: Padding, dilation: Pair, who: str
) -> kernels.Geometry:
    oh = output_size(h, kernel[0], stride[0], padding[0], dilation[0])
    ow = output_size(w, kernel[1], stride[1], padding[1], dilation[1])
    if oh < 1 or ow < 1:
        raise ValueError(
            f"{who}: a kernel of {kernel} with dilation {dilation} does not fit in the "
            f"padded input of {h + sum(padding[0])}x{w + sum(padding[1])}"
        )
    return (*kernel, *stride, padding[0][0], padding[1][0], *dilation, oh, ow)


def _pointwise(geo: kernels.Geometry) -> bool:
    """A 1x1 kernel at stride 1 without padding: the columns are the image itself."""
    return geo[:6] == (1, 1, 1, 1, 0, 0)


def _blocks(n: int, geo: kernels.Geometry, width: int, itemsize: int) -> range:
    """The first image of each block whose columns are built, used and dropped in turn."""
    per_image = geo[8] * geo[9] * width * itemsize
    return range(0, n, max(1, kernels.CHUNK_BYTES // per_image))


def _columns(n: int, geo: kernels.Geometry, c: int, dtype: Any, step: int) -> np.ndarray:
    """The reused buffer of a block's columns: (images, OH, OW, kh, kw, C)."""
    return np.empty((min(n, step), geo[8], geo[9], geo[0], geo[1], c), dtype)


def _im2col(xt: np.ndarray, n0: int, geo: kernels.Geometry, cols: np.ndarray) -> np.ndarray:
    """The (pixels, kh * kw * C) columns of images ``n0, n0 + 1, ...``, built in ``cols``."""
    kernels.im2col(xt, n0, geo, cols)
    return cols.reshape(-1, geo[0] * geo[1] * cols.shape[-1])


@primitive("conv2d", reads="i")
def conv2d(x: Any, w: Any, *bias: Any, stride: Pair, padding: Padding, dilation: Pair) -> Any:
    """Convolution of (N, C, H, W) with a (O, C, kh, kw) weight: im2col and one GEMM, or, for
    a single input channel at stride 1, a direct loop (``kernels.direct`` chooses).

    Channels last: the columns of (N * OH * OW) output pixels are (kh * kw * C) rows of the
    channels-last input, built a block at a time (``kernels.im2col``) and multiplied by the
    weight laid out (kh * kw * C, O); the product is the output in (N, OH, OW, O) memory,
    returned as its (N, O, OH, OW) view. Nothing is saved: backward rebuilds the columns.
    """
    o, c, kh, kw = w.shape
    dtype = np.result_type(x.dtype, w.dtype)
    xt = channels_last(x, dtype)
    n, h, wd, _ = xt.shape
    geo = _geometry(h, wd, (kh, kw), stride, padding, dilation, "conv2d")
    oh, ow = geo[8], geo[9]
    out = np.empty((n, oh, ow, o), dtype)
    if kernels.direct(c, geo):
        b = np.asarray(bias[0], dtype) if bias else np.zeros(o, dtype)
        kernels.direct_conv(xt, np.ascontiguousarray(w, dtype), b, geo, *_padded(xt, padding), out)
        return out.transpose(0, 3, 1, 2)
    rows, k = n * oh * ow, kh * kw * c
    wk = np.ascontiguousarray(w.transpose(2, 3, 1, 0).reshape(k, o), dtype=dtype)
    if _pointwise(geo):
        np.dot(xt.reshape(rows, c), wk, out=out.reshape(rows, o))
        if bias:
            out += bias[0]
        return out.transpose(0, 3, 1, 2)
    blocks = _blocks(n, geo, k, out.itemsize)
    cols = _columns(n, geo, c, dtype, blocks.step)
    for n0 in blocks:
        block = _im2col(xt, n0, geo, cols[: min(n - n0, blocks.step)])
        product = out[n0 : n0 + len(block) // (oh * ow)].reshape(-1, o)
        np.dot(block, wk, out=product)
        if bias:  # while the block is in cache
            product += bias[0]
    return out.transpose(0, 3, 1, 2)


@conv2d.defvjp
def _(F, g, out, ins, needs, attrs):
    x, w = ins[0], ins[1]
    o, c, kh, kw = w.shape
    dtype = g.dtype
    xt = channels_last(x, dtype)
    n, h, wd, _ = xt.shape
    geo = _geometry(h, wd, (kh, kw), attrs["stride"], attrs["padding"], attrs["dilation"], "")
    rows = n * geo[8] * geo[9]
    gt = channels_last(g)
    if kernels.direct(c, geo):
        size = _padded(xt, attrs["padding"])
        gx, gw = _direct_grads(xt, gt, np.ascontiguousarray(w, dtype), geo, size, needs)
    else:
        gx, gw = _im2col_grads(xt, gt, w, geo, needs)
    grads = (None if gx is None else gx.transpose(0, 3, 1, 2), gw)
    if len(ins) == 2:
        return grads
    # (a product with ones: a BLAS pass, several times faster than a sum over the rows)
    return (*grads, np.dot(np.ones(rows, dtype), gt.reshape(rows, o)) if needs[2] else None)


def _padded(xt: np.ndarray, padding: Padding) -> tuple[int, int]:
    """The padded height and width of a channels-last image."""
    return xt.shape[1] + sum(padding[0]), xt.shape[2] + sum(padding[1])


def _direct_grads(
    xt: np.ndarray, gt: np.ndarray, w: np.ndarray, geo: kernels.Geometry, size: Pair, needs: Any
) -> tuple[Any, Any]:
    """The (channels-last) input's and the weight's gradients of ``kernels.direct_conv``."""
    gx = gw = None
    if needs[0]:
        gx = np.empty(xt.shape, gt.dtype)
        kernels.direct_conv_input_grad(gt, w, geo, *size, gx)
    if needs[1]:
        gw = np.empty(w.shape, gt.dtype)
        kernels.direct_conv_weight_grad(xt, gt, geo, *size, gw)
    return gx, gw


def _im2col_grads(
    xt: np.ndarray, gt: np.ndarray, w: np.ndarray, geo: kernels.Geometry, needs: Any
) -> tuple[Any, Any]:
    """The (channels-last) input's and the weight's gradients of the im2col convolution."""
    o, c, kh, kw = w.shape
    n, dtype = xt.shape[0], gt.dtype
    rows, k = n * geo[8] * geo[9], kh * kw * c
    g2 = gt.reshape(rows, o)
    wk = np.ascontiguousarray(w.transpose(0, 2, 3, 1).reshape(o, k), dtype=dtype)
    gx = gwk = None
    if _pointwise(geo):
        gx = np.dot(g2, wk).reshape(xt.shape) if needs[0] else None
        gwk = np.dot(g2.T, xt.reshape(rows, c)) if needs[1] else None
    else:
        gx = np.zeros(xt.shape, dtype) if needs[0] else None
        gwk = np.zeros((o, k), dtype) if needs[1] else None
        blocks = _blocks(n, geo, k, np.dtype(dtype).itemsize)
        cols = _columns(n, geo, c, dtype, blocks.step)
        part = np.empty((o, k), dtype) if needs[1] and len(blocks) > 1 else gwk
        for n0 in blocks:
            block = cols[: min(n - n0, blocks.step)]
            gblock = gt[n0 : n0 + len(block)].reshape(-1, o)
            if gwk is not None:  # the weight's gradient: one GEMM per block, summed
                np.dot(gblock.T, _im2col(xt, n0, geo, block), out=part)
                if part is not gwk:
                    gwk += part
            if gx is not None:  # the input's: the columns' gradient, added back (col2im)
                np.dot(gblock, wk, out=block.reshape(-1, k))
                kernels.col2im(block, n0, geo, gx)
    if gwk is None:
        return gx, None
    return gx, np.ascontiguousarray(gwk.reshape(o, kh, kw, c).transpose(0, 3, 1, 2))


@conv2d.defreference
def _conv2d_reference(out, x, w, *bias, stride, padding, dilation):
    o, c, kh, kw = w.shape
    cols = unfold(x, kernel=(kh, kw), stride=stride, padding=padding, dilation=dilation)
    y = (w.reshape(o, c * kh * kw) @ cols).reshape(out.shape)
    return y + bias[0].reshape(o, 1, 1) if bias else y


@primitive("max_pool2d", saves=True, reads="")
def max_pool2d(x: Any, *, kernel: Pair, stride: Pair, padding: Padding, dilation: Pair) -> Any:
    """The largest value of each (kh, kw) window of (N, C, H, W); padded places never win.

    One compiled pass over the channels-last input (``kernels.max_pool``) that also keeps
    where in its window each maximum was (the first of equal ones, as PyTorch; one byte
    each for windows of up to 127 places): backward hands each output's gradient to that
    place. The output is channels-last in memory, like conv2d's.
    """
    xt = channels_last(x)
    geo = _geometry(xt.shape[1], xt.shape[2], kernel, stride, padding, dilation, "max_pool2d")
    index = np.int8 if kernel[0] * kernel[1] <= 127 else np.int32
    out, where = kernels.max_pool(xt, geo, np.empty(0, index))
    return out.transpose(0, 3, 1, 2), (where, geo)


@max_pool2d.defvjp
def _(F, g, out, ins, needs, attrs):
    where, geo = attrs["saved"]
    h, w = ins[0].shape[2:]
    return (kernels.max_pool_grad(channels_last(g), where, geo, h, w).transpose(0, 3, 1, 2),)


@max_pool2d.defreference
def _max_pool2d_reference(out, x, *, saved, **_):
    """The input's values at the places forward chose: a gather, exact to any order."""
    where, (kh, kw, sh, sw, pt, pl, dh, dw, oh, ow) = saved
    n, c, h, w = x.shape
    i, j = np.divmod(where.astype(np.int64), kw)  # (N, OH, OW, C)
    rows = np.arange(oh).reshape(1, oh, 1, 1) * sh - pt + i * dh
    cols = np.arange(ow).reshape(1, 1, ow, 1) * sw - pl + j * dw
    images = np.arange(n).reshape(n, 1, 1, 1)
    channels = np.arange(c).reshape(1, 1, 1, c)
    return x[images, channels, rows, cols].transpose(0, 3, 1, 2)  # (N, C, OH, OW)
