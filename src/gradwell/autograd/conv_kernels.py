"""Compiled loops of the sliding-window primitives (numba, by :mod:`gradwell._jit`'s policy).

They work on channels-last images, (N, H, W, C) and C-contiguous: a window's pixels are
then runs of C contiguous values, so im2col and col2im copy and add whole runs, and the
products that consume their columns read and write contiguous rows. ``Geometry`` is the
window arithmetic they share: kernel (kh, kw), stride, the top and left padding (the
padded places are zeros, or skipped by max pooling), dilation, and the output size.

A convolution of a single input channel runs without columns (``direct_conv`` and its two
gradients); ``direct``, at the end, is the one place that chooses.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._jit import inline, jit, reassociating

# The columns of a convolution are built and used a block of images at a time, in a buffer
# of about this size (at least one image): the block stays in cache between im2col and its
# GEMM, and the memory a convolution takes is the block, not all the columns at once.
CHUNK_BYTES = 1 << 20

# (kh, kw, stride h, stride w, pad top, pad left, dilation h, dilation w, out h, out w)
Geometry = tuple[int, int, int, int, int, int, int, int, int, int]


# Below this many channels (and without dilation along the width), a window row is copied
# or added as one run of its kw * C contiguous values rather than kw runs of C: a short run
# costs about what a long one does. With more channels, kw runs of C are a little faster.
RUN_CHANNELS = 16


@jit
def im2col(x: Any, n0: int, geo: Any, cols: Any) -> None:
    """The windows of images ``n0, n0 + 1, ...`` of ``x`` into ``cols``, (n, OH, OW, kh, kw,
    C): a row of kh * kw * C values per output pixel, in the weight's (O, kh, kw, C) order.
    The padded places are zero."""
    if geo[7] == 1 and x.shape[3] < RUN_CHANNELS:
        _im2col_rows(x, n0, geo, cols)
    else:
        _im2col_places(x, n0, geo, cols)


@jit
def col2im(cols: Any, n0: int, geo: Any, out: Any) -> None:
    """The adjoint of ``im2col``: add each window of ``cols`` back into its place in the
    (N, H, W, C) image ``out`` (the padded places are dropped)."""
    if geo[7] == 1 and out.shape[3] < RUN_CHANNELS:
        _col2im_rows(cols, n0, geo, out)
    else:
        _col2im_places(cols, n0, geo, out)


@inline
def _inside(kw: int, w: int, x0: int) -> Any:
    """The kernel columns [j0, j1) of a window row that starts at image column ``x0`` and
    falls inside an image ``w`` wide (without dilation: one run of contiguous pixels)."""
    j0 = min(max(0, -x0), kw)
    return j0, max(min(kw, w - x0), j0)


@jit
def _im2col_rows(x: Any, n0: int, geo: Any, cols: Any) -> None:
    """``im2col`` a window row at a time (dilation 1 along the width)."""
    _, h, w, c = x.shape
    kh, kw, sh, sw, pt, pl, dh, _, oh, ow = geo
    width = kw * c
    for m in range(cols.shape[0]):
        image = x[n0 + m].reshape(h, w * c)
        rows = cols[m].reshape(oh * ow * kh, width)
        for a in range(oh):
            for b in range(ow):
                x0 = b * sw - pl
                j0, j1 = _inside(kw, w, x0)
                for i in range(kh):
                    dst = rows[(a * ow + b) * kh + i]
                    y = a * sh - pt + i * dh
                    if y < 0 or y >= h:
                        dst[:] = 0
                        continue
                    src, inner = image[y][(x0 + j0) * c :], dst[j0 * c :]
                    for t in range((j1 - j0) * c):
                        inner[t] = src[t]
                    for t in range(j0 * c):
                        dst[t] = 0
                    for t in range(j1 * c, width):
                        dst[t] = 0


@jit
def _col2im_rows(cols: Any, n0: int, geo: Any, out: Any) -> None:
    """``col2im`` a window row at a time (dilation 1 along the width)."""
    _, h, w, c = out.shape
    kh, kw, sh, sw, pt, pl, dh, _, oh, ow = geo
    width = kw * c
    for m in range(cols.shape[0]):
        image = out[n0 + m].reshape(h, w * c)
        rows = cols[m].reshape(oh * ow * kh, width)
        for a in range(oh):
            for i in range(kh):
                y = a * sh - pt + i * dh
                if y < 0 or y >= h:
                    continue
                row = image[y]
                for b in range(ow):
                    x0 = b * sw - pl
                    j0, j1 = _inside(kw, w, x0)
                    dst, src = row[(x0 + j0) * c :], rows[(a * ow + b) * kh + i][j0 * c :]
                    for t in range((j1 - j0) * c):
                        dst[t] += src[t]


@jit
def _im2col_places(x: Any, n0: int, geo: Any, cols: Any) -> None:
    """``im2col`` a kernel place (C values) at a time."""
    _, h, w, c = x.shape
    kh, kw, sh, sw, pt, pl, dh, dw, oh, ow = geo
    zero = cols.dtype.type(0)
    for m in range(cols.shape[0]):
        for a in range(oh):
            for b in range(ow):
                for i in range(kh):
                    y = a * sh - pt + i * dh
                    for j in range(kw):
                        xx = b * sw - pl + j * dw
                        if 0 <= y < h and 0 <= xx < w:
                            for ch in range(c):
                                cols[m, a, b, i, j, ch] = x[n0 + m, y, xx, ch]
                        else:
                            for ch in range(c):
                                cols[m, a, b, i, j, ch] = zero


@jit
def _col2im_places(cols: Any, n0: int, geo: Any, out: Any) -> None:
    """``col2im`` a kernel place (C values) at a time."""
    _, h, w, c = out.shape
    kh, kw, sh, sw, pt, pl, dh, dw, oh, ow = geo
    for m in range(cols.shape[0]):
        for a in range(oh):
            for i in range(kh):
                y = a * sh - pt + i * dh
                if y < 0 or y >= h:
                    continue
                for b in range(ow):
                    for j in range(kw):
                        xx = b * sw - pl + j * dw
                        if 0 <= xx < w:
                            for ch in range(c):
                                out[n0 + m, y, xx, ch] += cols[m, a, b, i, j, ch]


# Direct convolution at stride 1, for an input of one channel (a first layer on grey images),
# where im2col would copy every pixel kh * kw times for a product too thin for BLAS to pay.
# An image is laid out as zero-padded channel planes (C, Hp * Wp), and an output pixel (a, b)
# at a * Wp + b of a plane as wide as the padded input: then each kernel place (i, j) of each
# channel is one long multiply-add between two contiguous runs, shifted by i * dh * Wp + j * dw
# (the Wp - OW places at the end of each output row are computed too, and dropped).


@inline
def _span(geo: Any, wp: int) -> int:
    """How many places of an output plane Wp wide hold the output: through its last pixel."""
    return (geo[8] - 1) * wp + geo[9]


@inline
def _to_planes(x: Any, m: int, pt: int, pl: int, planes: Any) -> None:
    """Image ``m`` of channels-last ``x`` into the (C, Hp, Wp) ``planes`` at offset (pt, pl)
    (the places outside are left as they are: zero, for padding)."""
    _, h, w, c = x.shape
    for ch in range(c):
        for y in range(h):
            dst, src = planes[ch, y + pt, pl:], x[m, y, :, ch]
            for xx in range(w):
                dst[xx] = src[xx]


@inline
def _to_output_planes(g: Any, m: int, wp: int, planes: Any) -> None:
    """Image ``m`` of the channels-last output gradient ``g`` into the (O, OH * Wp)
    ``planes``, as the output's layout in ``direct_conv`` (the dropped places untouched)."""
    _, oh, ow, o = g.shape
    for a in range(oh):
        for b in range(ow):
            for q in range(o):
                planes[q, a * wp + b] = g[m, a, b, q]


@inline
def _offsets(kh: int, kw: int, dh: int, dw: int, wp: int) -> Any:
    """Where each kernel place (i, j), row-major, starts in a padded plane Wp wide."""
    offsets = np.empty(kh * kw, np.int64)
    for i in range(kh):
        for j in range(kw):
            offsets[i * kw + j] = i * dh * wp + j * dw
    return offsets


@jit
def direct_conv(x: Any, wt: Any, bias: Any, geo: Any, hp: int, wp: int, out: Any) -> None:
    """``out`` (N, OH, OW, O) = the stride-1 convolution of channels-last ``x`` with the
    (O, C, kh, kw) weight ``wt``, plus ``bias`` (O,). Four kernel places per pass over an
    output plane (a quarter of the loads and stores of the output), then one at a time."""
    n, _, _, c = x.shape
    o, _, kh, kw = wt.shape
    _, _, _, _, pt, pl, dh, dw, oh, ow = geo
    span, places = _span(geo, wp), kh * kw
    offsets = _offsets(kh, kw, dh, dw, wp)
    planes = np.zeros((c, hp, wp), out.dtype)
    flat = planes.reshape(c, hp * wp)
    acc = np.empty((o, oh * wp), out.dtype)
    for m in range(n):
        _to_planes(x, m, pt, pl, planes)
        for q in range(o):
            row = acc[q]
            row[:span] = bias[q]
            for ch in range(c):
                v, src = wt[q, ch].reshape(places), flat[ch]
                for k in range(0, places - 3, 4):
                    v0, v1, v2, v3 = v[k], v[k + 1], v[k + 2], v[k + 3]
                    s0, s1 = src[offsets[k] :], src[offsets[k + 1] :]
                    s2, s3 = src[offsets[k + 2] :], src[offsets[k + 3] :]
                    for p in range(span):
                        row[p] += v0 * s0[p] + v1 * s1[p] + v2 * s2[p] + v3 * s3[p]
                for k in range(places - places % 4, places):
                    v0, s0 = v[k], src[offsets[k] :]
                    for p in range(span):
                        row[p] += v0 * s0[p]
        for a in range(oh):
            for b in range(ow):
                for q in range(o):
                    out[m, a, b, q] = acc[q, a * wp + b]


@reassociating
def direct_conv_weight_grad(x: Any, g: Any, geo: Any, hp: int, wp: int, gw: Any) -> None:
    """``gw`` (O, C, kh, kw) = the weight's gradient of ``direct_conv`` for the channels-last
    output gradient ``g`` (N, OH, OW, O): a dot product per kernel place and image, four
    in one pass over the output gradient's plane."""
    n, _, _, c = x.shape
    o, _, kh, kw = gw.shape
    _, _, _, _, pt, pl, dh, dw, oh, ow = geo
    span, places = _span(geo, wp), kh * kw
    offsets = _offsets(kh, kw, dh, dw, wp)
    planes = np.zeros((c, hp, wp), x.dtype)
    flat = planes.reshape(c, hp * wp)
    grads = np.zeros((o, oh * wp), g.dtype)  # the dropped places stay zero
    gw[...] = 0
    zero = gw.dtype.type(0)
    for m in range(n):
        _to_planes(x, m, pt, pl, planes)
        _to_output_planes(g, m, wp, grads)
        for q in range(o):
            gq = grads[q]
            for ch in range(c):
                total, src = gw[q, ch].reshape(places), flat[ch]
                for k in range(0, places - 3, 4):
                    s0, s1 = src[offsets[k] :], src[offsets[k + 1] :]
                    s2, s3 = src[offsets[k + 2] :], src[offsets[k + 3] :]
                    t0 = t1 = t2 = t3 = zero
                    for p in range(span):
                        t0 += gq[p] * s0[p]
                        t1 += gq[p] * s1[p]
                        t2 += gq[p] * s2[p]
                        t3 += gq[p] * s3[p]
                    total[k] += t0
                    total[k + 1] += t1
                    total[k + 2] += t2
                    total[k + 3] += t3
                for k in range(places - places % 4, places):
                    t0, s0 = zero, src[offsets[k] :]
                    for p in range(span):
                        t0 += gq[p] * s0[p]
                    total[k] += t0


@jit
def direct_conv_input_grad(g: Any, wt: Any, geo: Any, hp: int, wp: int, gx: Any) -> None:
    """``gx`` (N, H, W, C) = the input's gradient of ``direct_conv``: each output gradient
    plane, shifted to each kernel place, added into the padded input planes."""
    n, h, w, c = gx.shape
    o, _, kh, kw = wt.shape
    _, _, _, _, pt, pl, dh, dw, oh, ow = geo
    span = _span(geo, wp)
    grads = np.zeros((o, oh * wp), g.dtype)
    planes = np.empty((c, hp * wp), g.dtype)
    for m in range(n):
        _to_output_planes(g, m, wp, grads)
        planes[...] = 0
        for ch in range(c):
            for q in range(o):
                gq = grads[q]
                for i in range(kh):
                    for j in range(kw):
                        v = wt[q, ch, i, j]
                        dst = planes[ch, i * dh * wp + j * dw :]
                        for p in range(span):
                            dst[p] += v * gq[p]
        for y in range(h):
            for xx in range(w):
                for ch in range(c):
                    gx[m, y, xx, ch] = planes[ch, (y + pt) * wp + xx + pl]


@jit
def max_pool(x: Any, geo: Any, index_like: Any) -> Any:
    """Max pooling of (N, H, W, C) ``x``: (out (N, OH, OW, C), where each maximum is in its
    window, i * kw + j, in the integer dtype of ``index_like``). The first maximum in the
    window's row-major order wins a tie, a NaN wins over numbers (the last NaN), as
    PyTorch; padding never wins (-1 where a window has nothing else)."""
    n, h, w, c = x.shape
    kh, kw, sh, sw, pt, pl, dh, dw, oh, ow = geo
    out = np.empty((n, oh, ow, c), x.dtype)
    where = np.empty((n, oh, ow, c), index_like.dtype)
    best = np.empty(c, x.dtype)
    for m in range(n):
        for a in range(oh):
            for b in range(ow):
                where[m, a, b, :] = -1
                for i in range(kh):
                    y = a * sh - pt + i * dh
                    if y < 0 or y >= h:
                        continue
                    for j in range(kw):
                        xx = b * sw - pl + j * dw
                        if xx < 0 or xx >= w:
                            continue
                        for ch in range(c):
                            v = x[m, y, xx, ch]
                            if where[m, a, b, ch] < 0 or v > best[ch] or v != v:
                                best[ch] = v
                                where[m, a, b, ch] = i * kw + j
                out[m, a, b, :] = best
    return out, where


@jit
def max_pool_grad(g: Any, where: Any, geo: Any, h: int, w: int) -> Any:
    """The VJP of ``max_pool``: each output's gradient added to its maximum's place."""
    n, oh, ow, c = g.shape
    kh, kw, sh, sw, pt, pl, dh, dw, _, _ = geo
    offset = np.empty(kh * kw, np.int64)  # window place -> its offset in the image plane
    for i in range(kh):
        for j in range(kw):
            offset[i * kw + j] = i * dh * w + j * dw
    gx = np.zeros((n, h * w, c), g.dtype)
    for m in range(n):
        for a in range(oh):
            for b in range(ow):
                corner = (a * sh - pt) * w + b * sw - pl
                for ch in range(c):
                    k = where[m, a, b, ch]
                    if k >= 0:
                        gx[m, corner + offset[k], ch] += g[m, a, b, ch]
    return gx.reshape(n, h, w, c)


def direct(channels: int, geo: Geometry) -> bool:
    """Whether a convolution runs ``direct_conv`` rather than im2col and a product: a single
    input channel at stride 1, where the columns would be the image copied kh * kw times for
    a product too thin (kh * kw by O) for BLAS to pay for them."""
    return channels == 1 and geo[2] == geo[3] == 1
