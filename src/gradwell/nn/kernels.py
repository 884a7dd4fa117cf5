"""Compiled inner loops of the fused layers (numba).

Each is the arithmetic of one fused primitive in ``fused.py``, done in a few
passes over memory instead of a numpy temporary per step. Measured on (32, 512)
float32 on one core: batch-norm forward 28 -> 8 us, dropout 48 -> 8 us (see
benchmarks/README.md). numba's policy is :mod:`gradwell._jit`'s.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._jit import inline as _inline
from .._jit import jit as _jit


@_inline
def _statistics(x: Any, bias: Any, eps: float) -> Any:
    """Per column of (N, C) ``x + bias`` (``bias`` empty: none): batch mean, biased
    variance, 1 / sqrt(var + eps). The sum is formed as it is read, rounded as an
    array ``x + bias`` would be."""
    n, c = x.shape
    dt = x.dtype.type
    has_bias = bias.size > 0
    mean = np.zeros(c, x.dtype)
    var = np.zeros(c, x.dtype)
    for i in range(n):
        for j in range(c):
            mean[j] += x[i, j] + bias[j] if has_bias else x[i, j]
    inv_n = dt(1.0 / n)
    for j in range(c):
        mean[j] *= inv_n
    for i in range(n):
        for j in range(c):
            d = (x[i, j] + bias[j] if has_bias else x[i, j]) - mean[j]
            var[j] += d * d
    inv_std = np.empty(c, x.dtype)
    for j in range(c):
        var[j] *= inv_n
        inv_std[j] = dt(1.0) / np.sqrt(var[j] + dt(eps))
    return mean, var, inv_std


@_inline
def _update_running(
    running_mean: Any, running_var: Any, mean: Any, var: Any, momentum: float, n: int,
    batches: Any,
) -> None:  # fmt: skip
    """Move the running statistics (empty: skipped) by ``momentum`` towards the batch
    mean and the unbiased variance, in place; count the 0-d ``batches`` one up."""
    dt = mean.dtype.type
    keep, step = dt(1.0 - momentum), dt(momentum)
    unbias = dt(momentum * n / (n - 1))
    for j in range(running_mean.size):
        running_mean[j] = running_mean[j] * keep + step * mean[j]
    for j in range(running_var.size):
        running_var[j] = running_var[j] * keep + unbias * var[j]
    batches[()] += 1


@_jit
def batch_norm_train(
    x: Any, gamma: Any, beta: Any, eps: float, running_mean: Any, running_var: Any,
    momentum: float, batches: Any,
) -> Any:  # fmt: skip
    """Normalise (N, C) ``x`` by its batch mean and biased variance, then scale and shift.

    Returns (out, mean, inv_std): backward recomputes the normalised input xhat from
    ``x`` rather than keep it. ``gamma``/``beta`` may be empty (no affine). The
    running statistics (empty to skip) move by ``momentum`` towards the batch mean
    and the unbiased variance, in place, and the 0-d counter ``batches`` counts one up.
    """
    n, c = x.shape
    mean, var, inv_std = _statistics(x, np.empty(0, x.dtype), eps)
    out = np.empty_like(x)
    affine = gamma.size > 0
    for i in range(n):
        for j in range(c):
            h = (x[i, j] - mean[j]) * inv_std[j]
            out[i, j] = h * gamma[j] + beta[j] if affine else h
    _update_running(running_mean, running_var, mean, var, momentum, n, batches)
    return out, mean, inv_std


@_inline
def _gradient_coefficients(gsum: Any, gxhat: Any, inv_std: Any, gamma: Any, n: int) -> Any:
    """(scale, a, b) with gx = g * scale - (xhat * a + b): scale = gamma inv_std
    (inv_std without affine), a = sum(g xhat) scale / N and b = sum(g) scale / N."""
    dt = gsum.dtype.type
    scale = inv_std.copy() if gamma.size == 0 else inv_std * gamma
    inv_n = dt(1.0 / n)
    a = np.empty_like(gsum)
    b = np.empty_like(gsum)
    for j in range(gsum.size):
        a[j] = gxhat[j] * scale[j] * inv_n
        b[j] = gsum[j] * scale[j] * inv_n
    return scale, a, b


@_jit
def batch_norm_train_grad(
    g: Any, x: Any, mean: Any, inv_std: Any, gamma: Any, need_x: bool
) -> Any:  # fmt: skip
    """Gradients of ``batch_norm_train``: (gx, d gamma = sum g xhat, d beta = sum g),
    with xhat = (x - mean) inv_std recomputed as forward computed it.

    gx = gamma inv_std / N (N g - sum g - xhat sum(g xhat)); empty when not needed.
    """
    n, c = g.shape
    gsum = np.zeros(c, g.dtype)
    gxhat = np.zeros(c, g.dtype)
    for i in range(n):
        for j in range(c):
            gi = g[i, j]
            gsum[j] += gi
            gxhat[j] += gi * ((x[i, j] - mean[j]) * inv_std[j])
    if not need_x:
        return np.empty((0, 0), g.dtype), gxhat, gsum
    scale, a, b = _gradient_coefficients(gsum, gxhat, inv_std, gamma, n)
    gx = np.empty_like(g)
    for i in range(n):
        for j in range(c):
            h = (x[i, j] - mean[j]) * inv_std[j]
            gx[i, j] = g[i, j] * scale[j] - (h * a[j] + b[j])
    return gx, gxhat, gsum


@_jit
def _mix64(z: Any) -> Any:
    # SplitMix64's finaliser: a strong 64-bit hash of a counter.
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@_jit
def _kept(seed: Any, i: int, threshold: Any) -> bool:
    # Element i is kept when the top 32 bits of its hash, uniform in [0, 2^32), reach
    # the threshold rate * 2^32.
    golden = np.uint64(0x9E3779B97F4A7C15)
    return (_mix64(seed + np.uint64(i + 1) * golden) >> np.uint64(32)) >= threshold


@_jit
def _threshold(rate: float) -> Any:
    return np.uint64(min(rate * 4294967296.0, 4294967295.0))


@_jit
def dropout_mask(shape: Any, dtype_like: Any, rate: float, seed: Any) -> Any:
    """0 with probability ``rate``, else 1 / (1 - rate); element i hashes (seed, i).

    Counter-based, so the mask depends only on the seed (drawn from the layer's
    Generator) and is the same however the loop is run.
    """
    mask = np.empty(shape, dtype_like.dtype)
    flat = mask.ravel()
    scale = dtype_like.dtype.type(1.0 / (1.0 - rate))
    zero = dtype_like.dtype.type(0.0)
    threshold = _threshold(rate)
    for i in range(flat.size):
        flat[i] = scale if _kept(seed, i, threshold) else zero
    return mask


@_jit
def dropout_forward(x: Any, rate: float, seed: Any) -> Any:
    """(x times the mask of ``dropout_mask``, that mask) in one pass over float ``x``."""
    mask = np.empty(x.shape, x.dtype)
    out = np.empty(x.shape, x.dtype)
    flat, flat_mask, flat_out = x.ravel(), mask.ravel(), out.ravel()  # C order, as the mask
    scale = x.dtype.type(1.0 / (1.0 - rate))
    zero = x.dtype.type(0.0)
    threshold = _threshold(rate)
    for i in range(flat.size):
        m = scale if _kept(seed, i, threshold) else zero
        flat_mask[i] = m
        flat_out[i] = flat[i] * m
    return out, mask


@_jit
def batch_norm_relu_dropout_train(
    x: Any, bias: Any, gamma: Any, beta: Any, eps: float, running_mean: Any,
    running_var: Any, momentum: float, batches: Any, rate: float, seed: Any,
) -> Any:  # fmt: skip
    """``batch_norm_train`` of ``x + bias`` (``bias`` empty: of ``x``), then relu, then
    dropout with the mask of ``dropout_mask`` (``rate`` 0: none): the same numbers as
    the ops in a row. Returns (out, mean, inv_std): backward recomputes xhat from
    ``x`` and ``bias`` rather than keep it."""
    return _batch_norm_relu_dropout_train(
        x, bias, gamma, beta, eps, running_mean, running_var, momentum, batches, rate, seed
    )


@_inline
def _batch_norm_relu_dropout_train(
    x: Any, bias: Any, gamma: Any, beta: Any, eps: float, running_mean: Any,
    running_var: Any, momentum: float, batches: Any, rate: float, seed: Any,
) -> Any:  # fmt: skip
    n, c = x.shape
    dt = x.dtype.type
    has_bias = bias.size > 0
    mean, var, inv_std = _statistics(x, bias, eps)
    out = np.empty_like(x)
    affine = gamma.size > 0
    zero = dt(0.0)
    scale = dt(1.0 / (1.0 - rate))
    threshold = _threshold(rate)
    for i in range(n):
        for j in range(c):
            h = ((x[i, j] + bias[j] if has_bias else x[i, j]) - mean[j]) * inv_std[j]
            o = h * gamma[j] + beta[j] if affine else h
            r = o if o > zero or o != o else zero  # np.maximum(o, 0): NaN stays, -0.0 -> 0.0
            if rate > 0.0:  # the same in every iteration: compiled out of the loop
                r = r * (scale if _kept(seed, i * c + j, threshold) else zero)
            out[i, j] = r
    _update_running(running_mean, running_var, mean, var, momentum, n, batches)
    return out, mean, inv_std


@_jit
def batch_norm_relu_dropout_grad(
    g: Any, out: Any, x: Any, bias: Any, mean: Any, inv_std: Any, gamma: Any, need_x: bool,
    rate: float,
) -> Any:  # fmt: skip
    """Gradients of ``batch_norm_relu_dropout_train`` as ``batch_norm_train_grad`` gives
    them. The upstream gradient passes the dropout and relu gates as their VJPs pass it,
    and both gates are read from the output: an output above 0 passed both (factor
    1 / (1 - rate)); any other (0, or NaN) passed none. xhat is recomputed from
    ``x`` and ``bias`` as forward computed it."""
    return _batch_norm_relu_dropout_grad(g, out, x, bias, mean, inv_std, gamma, need_x, rate)


@_inline
def _batch_norm_relu_dropout_grad(
    g: Any, out: Any, x: Any, bias: Any, mean: Any, inv_std: Any, gamma: Any, need_x: bool,
    rate: float,
) -> Any:  # fmt: skip
    n, c = g.shape
    dt = g.dtype.type
    zero = dt(0.0)
    factor = dt(1.0 / (1.0 - rate))
    has_bias = bias.size > 0
    gsum = np.zeros(c, g.dtype)
    gxhat = np.zeros(c, g.dtype)
    for i in range(n):
        for j in range(c):
            gi = g[i, j] * (factor * (out[i, j] > zero))  # no branch: the gates are random
            h = ((x[i, j] + bias[j] if has_bias else x[i, j]) - mean[j]) * inv_std[j]
            gsum[j] += gi
            gxhat[j] += gi * h
    if not need_x:
        return np.empty((0, 0), g.dtype), gxhat, gsum
    scale, a, b = _gradient_coefficients(gsum, gxhat, inv_std, gamma, n)
    gx = np.empty_like(g)
    for i in range(n):
        for j in range(c):
            gi = g[i, j] * (factor * (out[i, j] > zero))
            h = ((x[i, j] + bias[j] if has_bias else x[i, j]) - mean[j]) * inv_std[j]
            gx[i, j] = gi * scale[j] - (h * a[j] + b[j])
    return gx, gxhat, gsum


@_jit
def softmax_cross_entropy(x: Any, target: Any) -> Any:
    """Per-row loss logsumexp(x_i) - x_i[t_i], the softmax probabilities of (N, C)
    logits, the summed loss (accumulated in float64) and whether every target was a
    class index in [0, C) -- if not, nothing else is meaningful and the caller takes
    its general path. Stable for any finite logits.
    """
    n, c = x.shape
    p = np.empty_like(x)
    loss = np.empty(n, x.dtype)
    for i in range(n):
        if target[i] < 0 or target[i] >= c:
            return loss, p, 0.0, False
    total = 0.0
    for i in range(n):
        m = x[i, 0]
        for j in range(1, c):
            if x[i, j] > m:
                m = x[i, j]
        row = x.dtype.type(0.0)
        for j in range(c):
            e = np.exp(x[i, j] - m)
            p[i, j] = e
            row += e
        inv = x.dtype.type(1.0) / row
        for j in range(c):
            p[i, j] *= inv
        loss[i] = np.log(row) + (m - x[i, target[i]])  # small terms first: exact at 1e4
        total += loss[i]
    return loss, p, total, True


@_jit
def softmax_cross_entropy_grad(p: Any, target: Any, g: float) -> Any:
    """g * (p - onehot(target)): the gradient of the summed per-row losses, scaled by g."""
    n, c = p.shape
    scale = p.dtype.type(g)
    gx = np.empty_like(p)
    for i in range(n):
        for j in range(c):
            gx[i, j] = p[i, j] * scale
        gx[i, target[i]] -= scale
    return gx


@_jit
def linear_small(x: Any, w: Any, b: Any) -> Any:
    """x @ w.T + b (``b`` empty: no bias) as plain loops, for products of a few thousand
    multiply-adds, where a BLAS call costs more than the arithmetic."""
    return _linear_small(x, w, b)


@_inline
def _linear_small(x: Any, w: Any, b: Any) -> Any:
    n, k = x.shape
    m = w.shape[0]
    out = np.empty((n, m), x.dtype)
    for i in range(n):
        for j in range(m):
            acc = x.dtype.type(0.0)
            for t in range(k):
                acc += x[i, t] * w[j, t]
            out[i, j] = acc + b[j] if b.size else acc
    return out


@_jit
def linear_small_grad(g: Any, x: Any, w: Any, need_x: bool, need_w: bool, need_b: bool) -> Any:
    """The gradients of ``linear_small`` for upstream ``g``: (g @ w, g.T @ x, g summed over
    rows), each empty when not needed."""
    return _linear_small_grad(g, x, w, need_x, need_w, need_b)


@_inline
def _linear_small_grad(
    g: Any, x: Any, w: Any, need_x: bool, need_w: bool, need_b: bool
) -> Any:  # fmt: skip
    n, m = g.shape
    k = x.shape[1]
    gx = np.zeros((n if need_x else 0, k), g.dtype)
    gw = np.zeros((m if need_w else 0, k), g.dtype)
    gb = np.zeros(m if need_b else 0, g.dtype)
    for i in range(n):
        for j in range(m):
            gij = g[i, j]
            if need_b:
                gb[j] += gij
            if need_w:
                for t in range(k):
                    gw[j, t] += gij * x[i, t]
            if need_x:
                for t in range(k):
                    gx[i, t] += gij * w[j, t]
    return gx, gw, gb


# A Linear -> BatchNorm1d -> ReLU (-> Dropout) block whose product is small enough for
# ``linear_small``: one call each way instead of two. On a 2-8-8-2 model the calls,
# not the arithmetic, are the cost (about 1.5 to 3 us each).


@_jit
def linear_batch_norm_relu_dropout_small(
    x: Any, w: Any, b: Any, gamma: Any, beta: Any, eps: float, running_mean: Any,
    running_var: Any, momentum: float, batches: Any, rate: float, seed: Any,
) -> Any:  # fmt: skip
    """``linear_small``, then ``batch_norm_relu_dropout_train`` of its output (the bias
    already added): (out, the product y, mean, inv_std)."""
    y = _linear_small(x, w, b)
    out, mean, inv_std = _batch_norm_relu_dropout_train(
        y, np.empty(0, y.dtype), gamma, beta, eps, running_mean, running_var, momentum,
        batches, rate, seed,
    )  # fmt: skip
    return out, y, mean, inv_std


@_jit
def linear_batch_norm_relu_dropout_small_grad(
    g: Any, out: Any, y: Any, x: Any, w: Any, mean: Any, inv_std: Any, gamma: Any,
    rate: float, need_x: bool, need_w: bool, need_b: bool,
) -> Any:  # fmt: skip
    """The gradients of ``linear_batch_norm_relu_dropout_small``: (gx, gw, gb, d gamma,
    d beta), the linear's empty when not needed, as the two kernels in a row give them."""
    gy, ggamma, gbeta = _batch_norm_relu_dropout_grad(
        g, out, y, np.empty(0, y.dtype), mean, inv_std, gamma, True, rate
    )
    gx, gw, gb = _linear_small_grad(gy, x, w, need_x, need_w, need_b)
    return gx, gw, gb, ggamma, gbeta


# ---------------------------------------------------------------------------
# The one dispatcher by size: which program computes a linear layer. Everything that
# depends on the operands' sizes is here, next to the kernels; the VJPs do not see it.

SMALL_BATCH = 64
LARGE_WEIGHT = 4096  # below it, the product is dispatch-bound and the plain call is faster
TINY_PRODUCT = 8192  # multiply-adds up to which compiled loops beat a BLAS call (~0.5 us)
NO_BIAS = {"f": np.empty(0, np.float32), "d": np.empty(0, np.float64)}  # "no bias" per dtype


def tiny(x: Any, w: Any, bias: tuple[Any, ...]) -> bool:
    """Whether x @ w.T (+ b) is small enough for ``linear_small``: 2-D float32 or float64
    operands of one dtype."""
    return (
        x.ndim == 2
        and x.shape[0] * w.size <= TINY_PRODUCT
        and x.dtype == w.dtype
        and x.dtype.char in NO_BIAS
        and (not bias or bias[0].dtype == x.dtype)
    )


def product(x2: np.ndarray, w: np.ndarray) -> np.ndarray:
    """x2 @ w.T for 2-D arrays, C-contiguous."""
    if x2.shape[0] <= SMALL_BATCH and w.size >= LARGE_WEIGHT:
        # OpenBLAS is slow at a short, wide x @ w.T; the transposed product w @ x.T
        # plus a copy back measured about 35% faster for 32 rows (784 -> 512).
        return np.ascontiguousarray(np.dot(w, x2.T).T)
    return np.dot(x2, w.T)  # np.dot: less overhead than `@` on small arrays


def linear(x: Any, w: Any, bias: tuple[Any, ...]) -> Any:
    """x @ w.T + b (``bias``: (b,) or empty) over every leading axis of ``x``."""
    if tiny(x, w, bias):
        return linear_small(x, w, bias[0] if bias else NO_BIAS[x.dtype.char])
    out = product(x if x.ndim == 2 else x.reshape(-1, x.shape[-1]), w)
    if x.ndim != 2:
        out = out.reshape(x.shape[:-1] + (w.shape[0],))
    if bias:
        out += bias[0]  # `out` is fresh from the matmul: adding in place is safe
    return out


def linear_grad(g: Any, x: Any, w: Any, bias: tuple[Any, ...], needs: Any) -> tuple[Any, ...]:
    """The gradients of ``linear`` for upstream ``g``: (x, w[, b]), None where not needed."""
    has_bias = bool(bias)
    need_b = has_bias and needs[2]
    if tiny(x, w, bias):
        gx, gw, gb = linear_small_grad(g, x, w, needs[0], needs[1], need_b)
    else:  # weight and bias gradients sum over every leading axis: (rows, features)
        g2 = g if g.ndim == 2 else g.reshape(-1, g.shape[-1])
        gx = np.dot(g2, w).reshape(x.shape) if needs[0] else None
        gw = np.dot(g2.T, x if x.ndim == 2 else x.reshape(-1, x.shape[-1])) if needs[1] else None
        gb = np.add.reduce(g2, 0) if need_b else None
    grads = (gx if needs[0] else None, gw if needs[1] else None)
    return (*grads, gb if need_b else None) if has_bias else grads
