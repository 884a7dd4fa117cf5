"""The fused primitives of the nn layers and losses: forward and VJP side by side.

Each one replaces a chain of small ops with a few numpy passes (speed) or a
formula that stays finite where the chain would not (stability):

* ``linear``: x @ W.T + b as one matmul and an in-place bias add.
* ``batch_norm``: normalisation with the closed-form backward.
* ``cross_entropy``: log-softmax and the negative log-likelihood in one pass;
  the gradient is ``p - target``, finite for logits of any size.
* ``bce_with_logits``: the logistic loss written so that exp never overflows,
  with the exact gradient ``sigmoid(x) - y`` (also at x = 0, where a composition
  of relu and abs would give the wrong one-sided value).
* ``batch_norm_relu_dropout`` and ``linear_batch_norm_relu_dropout``: the chains
  that a compiled step (:mod:`gradwell.autograd.tape`) runs as one op, with
  the numbers of the ops in a row, bit for bit.

The VJPs follow the engine's rule: with ``F = ArrayF`` they run on arrays using
what the forward saved; with ``F = TensorF`` (``create_graph=True``) they
recompute what depends on the inputs with recorded ops, so second derivatives
are exact.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..autograd import ops
from ..autograd.ops import TensorF, primitive
from . import kernels
from .module import where_called

# ---------------------------------------------------------------------------
# linear


_SMALL_BATCH = 64
_LARGE_WEIGHT = 4096  # below it, the product is dispatch-bound and the plain call is faster
_TINY_PRODUCT = 8192  # multiply-adds up to which compiled loops beat a BLAS call (~0.5 us)
_NO_BIAS = {"f": np.empty(0, np.float32), "d": np.empty(0, np.float64)}


def _tiny(x: Any, w: Any, bias: tuple[Any, ...]) -> bool:
    """Whether x @ w.T (+ b) is small enough for ``kernels.linear_small``: 2-D float32 or
    float64 operands of one dtype."""
    return (
        x.ndim == 2
        and x.shape[0] * w.size <= _TINY_PRODUCT
        and x.dtype == w.dtype
        and x.dtype.char in _NO_BIAS
        and (not bias or bias[0].dtype == x.dtype)
    )


@primitive("linear", reads="i")
def linear(x: Any, w: Any, *bias: Any) -> Any:
    """x @ w.T + b for w of shape (out_features, in_features); x may have leading axes."""
    if w.ndim != 2 or x.ndim == 0 or x.shape[-1] != w.shape[1]:
        raise ValueError(
            f"linear{where_called()}: the input's last axis must have in_features="
            f"{w.shape[1] if w.ndim == 2 else '?'} values for a weight of shape {w.shape} "
            f"(out_features, in_features); got an input of shape {x.shape}"
        )
    x2 = x if x.ndim == 2 else x.reshape(-1, x.shape[-1])  # one matmul over leading axes
    if _tiny(x, w, bias):
        return kernels.linear_small(x, w, bias[0] if bias else _NO_BIAS[x.dtype.char])
    out = _product(x2, w)
    if x.ndim != 2:
        out = out.reshape(x.shape[:-1] + (w.shape[0],))
    if bias:
        out += bias[0]  # `out` is fresh from the matmul: adding in place is safe
    return out


def _product(x2: np.ndarray, w: np.ndarray) -> np.ndarray:
    """x2 @ w.T for 2-D arrays, C-contiguous."""
    if x2.shape[0] <= _SMALL_BATCH and w.size >= _LARGE_WEIGHT:
        # OpenBLAS is slow at a short, wide x @ w.T; the transposed product w @ x.T
        # plus a copy back measured about 35% faster for 32 rows (784 -> 512).
        return np.ascontiguousarray(np.dot(w, x2.T).T)
    return np.dot(x2, w.T)  # np.dot: less overhead than `@` on small arrays


@linear.defvjp
def _(F, g, out, ins, needs, attrs):
    x, w = ins[0], ins[1]
    if F is not TensorF and _tiny(x, w, ins[2:]):
        need_b = len(ins) == 3 and needs[2]
        gx, gw, gb = kernels.linear_small_grad(g, x, w, needs[0], needs[1], need_b)
        grads = (gx if needs[0] else None, gw if needs[1] else None)
        return grads if len(ins) == 2 else (*grads, gb if need_b else None)
    if F is not TensorF and g.ndim == 2 and x.ndim == 2:  # the common case, on arrays
        gx = np.dot(g, w) if needs[0] else None
        gw = np.dot(g.T, x) if needs[1] else None
        if len(ins) == 2:
            return gx, gw
        return gx, gw, (np.add.reduce(g, 0) if needs[2] else None)
    gx = F.matmul(g, w) if needs[0] else None
    if len(ins) == 2 and not needs[1]:
        return gx, None
    # Weight and bias gradients sum over every leading axis: view them as (rows, features).
    g2 = g if g.ndim == 2 else F.reshape(g, (-1, g.shape[-1]))
    gw = None
    if needs[1]:
        x2 = x if x.ndim == 2 else F.reshape(x, (-1, x.shape[-1]))
        gw = F.matmul(F.transpose(g2), x2)
    if len(ins) == 2:
        return gx, gw
    return gx, gw, (F.sum(g2, 0) if needs[2] else None)


# ---------------------------------------------------------------------------
# batch_norm

_NO_AFFINE = np.empty(0, np.float32)  # "no gamma/beta" (or no running stats) for the kernels
_UNCOUNTED = np.zeros((), np.int64)  # a counter nobody reads, for batches not tracked


def _train_arguments(
    x: Any,
    affine: tuple[Any, ...],
    eps: float,
    momentum: float | None,
    running_mean: np.ndarray | None,
    running_var: np.ndarray | None,
    num_batches_tracked: np.ndarray | None,
) -> tuple[Any, ...]:
    """The arguments of ``kernels.batch_norm_train`` for a batch normalised in training."""
    if x.shape[0] < 2:
        raise ValueError(
            f"batch_norm{where_called()}: expected more than 1 value per channel when "
            f"training (batch statistics of a single example are meaningless); got input "
            f"shape {x.shape}. Use a batch of at least 2, or eval() mode"
        )
    gamma, beta = affine if affine else (_NO_AFFINE, _NO_AFFINE)
    if momentum is not None:
        step = float(momentum)
    else:  # a cumulative average over the batches seen
        step = 0.0 if num_batches_tracked is None else 1.0 / (int(num_batches_tracked) + 1)
    return (
        np.ascontiguousarray(x), gamma, beta, eps,
        _NO_AFFINE if running_mean is None else running_mean,
        _NO_AFFINE if running_var is None else running_var,
        step,
        _UNCOUNTED if num_batches_tracked is None else num_batches_tracked,
    )  # fmt: skip


@primitive("batch_norm", saves=True, reads="i")
def batch_norm(
    x: Any,
    *affine: Any,
    training: bool,
    eps: float,
    momentum: float | None,
    running_mean: np.ndarray | None,
    running_var: np.ndarray | None,
    num_batches_tracked: np.ndarray | None = None,
) -> Any:
    """(x - mean) / sqrt(var + eps) * gamma + beta over the batch axis of (N, C) input.

    ``affine`` is ``(gamma, beta)`` or empty. In training the batch mean and biased
    variance normalise, and the running statistics (arrays, updated in place when
    given) move by ``momentum`` towards the batch mean and the unbiased variance.
    Otherwise the running statistics normalise. ``num_batches_tracked`` (a 0-d
    array, counted up in place in training) makes ``momentum=None`` a cumulative
    average. Every update of the layer's state happens here, inside the op, so a
    replayed op (:mod:`gradwell.autograd.tape`) updates it too.
    """
    if training:
        args = _train_arguments(
            x, affine, eps, momentum, running_mean, running_var, num_batches_tracked
        )
        out, mean, inv_std = kernels.batch_norm_train(*args)
        return out, (mean, inv_std)
    assert running_mean is not None and running_var is not None  # checked by the callers
    inv_std = 1.0 / np.sqrt(running_var + eps)
    scale = inv_std * affine[0] if affine else inv_std
    shift = -running_mean * scale
    if affine:
        shift += affine[1]
    out = x * scale
    out += shift
    # Copies: the running statistics may move before a retained graph is reused.
    return out, (running_mean.copy(), inv_std)


@batch_norm.defvjp
def _(F, g, out, ins, needs, attrs):
    x = ins[0]
    gamma = ins[1] if len(ins) == 3 else None
    training = attrs["training"]
    n = x.shape[0]
    if F is TensorF:  # recompute from the inputs with recorded ops: second order works
        if training:
            mu = F.sum(x, 0) * (1.0 / n)
            xc = x - mu
            inv_std = (F.sum(xc * xc, 0) * (1.0 / n) + attrs["eps"]) ** -0.5
            xhat = xc * inv_std
        else:
            mu, inv_std = attrs["saved"]
            xhat = (x - mu) * inv_std
    elif training:
        mean, inv_std = attrs["saved"]
        gx, gxhat, gsum = kernels.batch_norm_train_grad(
            np.ascontiguousarray(g), x, mean, inv_std, _NO_AFFINE if gamma is None else gamma,
            needs[0],
        )  # fmt: skip
        if gamma is None:
            return (gx if needs[0] else None,)
        return (
            (gx if needs[0] else None),
            (gxhat if needs[1] else None),
            (gsum if needs[2] else None),
        )
    else:
        mu, inv_std = attrs["saved"]
        xhat = None  # made below only if the gamma gradient needs it
    scale = inv_std if gamma is None else inv_std * gamma
    need_gamma = gamma is not None and needs[1]
    need_beta = gamma is not None and needs[2]
    if xhat is None and need_gamma:
        xhat = (x - mu) * inv_std
    gsum = F.sum(g, 0) if need_beta or (training and needs[0]) else None
    gxhat = F.sum(g * xhat, 0) if need_gamma or (training and needs[0]) else None
    gx = None
    if needs[0]:
        if training:
            # d/dx of the normalisation: (gamma * inv_std / N) (N g - sum g - xhat sum(g xhat))
            c = scale * (1.0 / n)
            gx = g * scale - (xhat * (gxhat * c) + gsum * c)
        else:
            gx = g * scale
    if gamma is None:
        return (gx,)
    return gx, (gxhat if need_gamma else None), (gsum if need_beta else None)


@primitive("batch_norm_relu_dropout", saves=True)
def batch_norm_relu_dropout(
    x: Any,
    *affine: Any,
    eps: float,
    momentum: float | None,
    running_mean: np.ndarray | None,
    running_var: np.ndarray | None,
    num_batches_tracked: np.ndarray | None,
    rate: float,
    rng: np.random.Generator | None,
) -> Any:
    """Training-mode ``batch_norm``, ``relu`` and ``dropout(rate)`` (0: none) in one pass.

    A compiled step runs it where a plan has the three ops (or the first two) in a
    row (:data:`FUSIONS`): the same numbers, the same state
    updates and the same draw from ``rng``, with one kernel each way instead of
    three. It keeps only the batch mean and 1 / std: backward recomputes the normalised
    input from the input and reads both gates (relu's and the mask's) from the output.
    """
    out, mean, inv_std = _batch_norm_relu_dropout(
        x, _NO_BIAS[x.dtype.char], affine, eps, momentum, running_mean, running_var,
        num_batches_tracked, rate, rng,
    )  # fmt: skip
    return out, (mean, inv_std)


def _batch_norm_relu_dropout(
    x: Any, bias: Any, affine: tuple[Any, ...], eps: float, momentum: float | None,
    running_mean: Any, running_var: Any, num_batches_tracked: Any, rate: float, rng: Any,
) -> tuple[Any, Any, Any]:  # fmt: skip
    """(out, mean, inv_std) of the fused chain on ``x + bias`` (``bias`` empty: none)."""
    args = _train_arguments(
        x, affine, eps, momentum, running_mean, running_var, num_batches_tracked
    )
    kernel: Any = kernels.batch_norm_relu_dropout_train
    return kernel(args[0], bias, *args[1:], float(rate), _seed(rng, rate))  # type: ignore[no-any-return]


def _seed(rng: np.random.Generator | None, rate: float) -> np.uint64:
    """The dropout mask's seed: one draw from the layer's Generator, as ``dropout`` makes."""
    return np.uint64(rng.bit_generator.random_raw() if rng is not None and rate > 0.0 else 0)


def _gated_batch_norm_vjp(
    F: Any, g: Any, out: Any, ins: tuple[Any, ...], needs: tuple[bool, ...],
    attrs: dict[str, Any], mean: Any, inv_std: Any,
) -> Any:  # fmt: skip
    """With recorded ops (second order): the gates are constants; apply them, then
    batch norm's VJP with respect to ``ins`` (its input, then gamma and beta)."""
    gate = (out.data > 0) * np.asarray(1.0 / (1.0 - attrs["rate"]), ins[0].data.dtype)
    bn_attrs = {"training": True, "eps": attrs["eps"], "saved": (mean, inv_std)}
    return batch_norm.vjp(F, g * gate, out, ins, needs, bn_attrs)  # type: ignore[misc]


@batch_norm_relu_dropout.defvjp
def _(F, g, out, ins, needs, attrs):
    mean, inv_std = attrs["saved"]
    if F is TensorF:
        return _gated_batch_norm_vjp(F, g, out, ins, needs, attrs, mean, inv_std)
    gamma = ins[1] if len(ins) == 3 else _NO_AFFINE
    gx, ggamma, gbeta, _ = kernels.batch_norm_relu_dropout_grad(
        np.ascontiguousarray(g), out, ins[0], _NO_BIAS[g.dtype.char], mean, inv_std, gamma,
        needs[0], float(attrs["rate"]),
    )  # fmt: skip
    if len(ins) == 1:
        return (gx if needs[0] else None,)
    return (gx if needs[0] else None), (ggamma if needs[1] else None), (gbeta if needs[2] else None)


def _chain_attrs(chain_attrs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The fused op's attrs from those of batch_norm, relu (and dropout); None (no
    fusion) for a batch norm in eval mode."""
    bn = chain_attrs[0]
    if not bn["training"]:
        return None
    drop = chain_attrs[2] if len(chain_attrs) == 3 else {"rate": 0.0, "rng": None}
    fused = {k: v for k, v in bn.items() if k != "training"}
    return {"num_batches_tracked": None, **fused, "rate": drop["rate"], "rng": drop["rng"]}


@primitive("linear_batch_norm_relu_dropout", saves=True)
def linear_batch_norm_relu_dropout(
    x: Any,
    w: Any,
    *rest: Any,
    eps: float,
    momentum: float | None,
    running_mean: np.ndarray | None,
    running_var: np.ndarray | None,
    num_batches_tracked: np.ndarray | None,
    rate: float,
    rng: np.random.Generator | None,
) -> Any:
    """``linear`` of 2-D ``x``, then ``batch_norm_relu_dropout``: ``rest`` is the linear's
    bias if it has one, then batch norm's gamma and beta if it has them.

    A compiled step runs it for a Linear -> BatchNorm1d -> ReLU (-> Dropout) block:
    the same numbers bit for bit, with the bias added as batch norm reads the
    product, and its gradient summed as batch norm's backward writes the input
    gradient (two passes over memory fewer than the ops in a row).
    """
    bias, affine = _bias_and_affine(rest)
    if _tiny(x, w, bias):  # one compiled call for the block; the small product adds its bias
        args = _train_arguments(
            x, affine, eps, momentum, running_mean, running_var, num_batches_tracked
        )
        kernel: Any = kernels.linear_batch_norm_relu_dropout_small
        out, y, mean, inv_std = kernel(
            x, w, bias[0] if bias else _NO_BIAS[x.dtype.char], *args[1:], float(rate),
            _seed(rng, rate),
        )  # fmt: skip
        return out, (y, False, mean, inv_std)
    y, folded = _product(x, w), bias
    out, mean, inv_std = _batch_norm_relu_dropout(
        y, folded[0] if folded else _NO_BIAS[y.dtype.char], affine, eps, momentum,
        running_mean, running_var, num_batches_tracked, rate, rng,
    )  # fmt: skip
    return out, (y, bool(folded), mean, inv_std)


def _bias_and_affine(rest: tuple[Any, ...]) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    # one or three: a bias comes first; zero or two: no bias (gamma and beta come in pairs)
    return (rest[:1], rest[1:]) if len(rest) % 2 else ((), rest)


@linear_batch_norm_relu_dropout.defvjp
def _(F, g, out, ins, needs, attrs):
    y, folded, mean, inv_std = attrs["saved"]
    x, w = ins[0], ins[1]
    bias, affine = _bias_and_affine(ins[2:])
    n_linear = 2 + len(bias)
    if F is TensorF:  # recompute the linear's output with a recorded op, then chain
        yb = linear(x, w, *bias)
        bn = _gated_batch_norm_vjp(
            F, g, out, (yb, *affine), (True, *needs[n_linear:]), attrs, mean, inv_std
        )
        return (*linear.vjp(F, bn[0], yb, (x, w, *bias), needs[:n_linear], {}), *bn[1:])
    gamma = affine[0] if affine else _NO_AFFINE
    if _tiny(x, w, bias):  # as forward: one compiled call, the two VJPs in a row
        need_b = bool(bias) and needs[2]
        gx, gw, gb, ggamma, gbeta = kernels.linear_batch_norm_relu_dropout_small_grad(
            np.ascontiguousarray(g), out, y, x, w, mean, inv_std, gamma,
            float(attrs["rate"]), needs[0], needs[1], need_b,
        )  # fmt: skip
        grads = (gx if needs[0] else None, gw if needs[1] else None, *(
            (gb if need_b else None,) if bias else ()
        ))  # fmt: skip
    else:
        gy, ggamma, gbeta, gbias = kernels.batch_norm_relu_dropout_grad(
            np.ascontiguousarray(g), out, y, bias[0] if folded else _NO_BIAS[y.dtype.char],
            mean, inv_std, gamma, True, float(attrs["rate"]),
        )  # fmt: skip
        if folded and gy.shape[1] > 1:  # (one column: numpy sums it pairwise, not in order)
            grads = (
                np.dot(gy, w) if needs[0] else None,
                np.dot(gy.T, x) if needs[1] else None,
                gbias if needs[2] else None,
            )
        else:
            grads = linear.vjp(F, gy, y, (x, w, *bias), needs[:n_linear], {})  # type: ignore[misc]
    if not affine:
        return grads
    return (*grads, ggamma if needs[-2] else None, gbeta if needs[-1] else None)


def _linear_chain_attrs(chain_attrs: list[dict[str, Any]]) -> dict[str, Any] | None:
    return _chain_attrs(chain_attrs[1:])  # linear has no attrs of its own


# The rewrite table of a compiled step (:func:`gradwell.autograd.tape.plan`): chains of ops
# in a row, the fused primitive that replaces them, and the fused op's attrs (or None
# where the chain does not qualify).
FUSIONS = [
    (
        ("linear", "batch_norm", "relu", "dropout"),
        linear_batch_norm_relu_dropout,
        _linear_chain_attrs,
    ),
    (("linear", "batch_norm", "relu"), linear_batch_norm_relu_dropout, _linear_chain_attrs),
    (("batch_norm", "relu", "dropout"), batch_norm_relu_dropout, _chain_attrs),
    (("batch_norm", "relu"), batch_norm_relu_dropout, _chain_attrs),
]


# ---------------------------------------------------------------------------
# dropout


@primitive("dropout", saves=True, reads="")
def dropout(x: Any, *, rate: float, rng: np.random.Generator) -> Any:
    """x times a fresh mask: 0 with probability ``rate``, else 1 / (1 - rate).

    The mask's seed is drawn from ``rng`` inside the op, so every call of the op --
    eager, or replayed by :mod:`gradwell.autograd.tape` -- draws the next one.
    """
    seed = np.uint64(rng.bit_generator.random_raw())
    if x.dtype.char in _NO_BIAS:  # float32 or float64: mask and product in one pass
        out, mask = kernels.dropout_forward(x, float(rate), seed)
        return out, mask
    mask = kernels.dropout_mask(x.shape, np.empty(0, x.dtype), float(rate), seed)
    return x * mask, mask


@dropout.defvjp
def _(F, g, out, ins, needs, attrs):
    return (g * attrs["saved"],)


# ---------------------------------------------------------------------------
# cross_entropy


def _log_softmax_and_softmax(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise log-softmax and softmax of (N, C) logits, finite for any finite logits."""
    logp = x - x.max(axis=1, keepdims=True)
    p = np.exp(logp)
    total = p.sum(axis=1, keepdims=True)
    logp -= np.log(total)
    p /= total
    return logp, p


def check_classes(labels: np.ndarray, c: int, ignore_index: int, who: str) -> None:
    """Raise if a class index is outside [0, c) and is not ``ignore_index``."""
    if labels.size and (labels.min() < 0 or labels.max() >= c):
        bad = np.flatnonzero(((labels < 0) | (labels >= c)) & (labels != ignore_index))
        if bad.size:
            row = int(bad[0])
            raise ValueError(
                f"{who}: target class {labels[row]} at row {row} is outside [0, {c}) for "
                f"input with {c} classes (ignore_index={ignore_index})"
            )


@primitive("cross_entropy", saves=True, reads="i")
def cross_entropy(
    x: Any,
    target: Any,
    *,
    reduction: str,
    label_smoothing: float,
    weight: np.ndarray | None,
    ignore_index: int,
) -> Any:
    """Softmax cross-entropy of (N, C) logits against class indices (N,) or
    class probabilities (N, C), with optional label smoothing and class weights.

    The target distribution of a row is q = (1 - eps) * target + eps / C (weighted by
    class); its loss is -sum_c q_c log p_c. ``mean`` divides by N, or for class
    indices by the summed weight of the rows not ignored (as PyTorch does).
    Inputs are checked by :func:`gradwell.nn.functional.cross_entropy`.
    """
    n, c = x.shape
    eps = label_smoothing
    saved: tuple[Any, ...]
    total = None
    fast = None
    if target.dtype.kind in "iu" and weight is None and not eps and not 0 <= ignore_index < c:
        # The common case, in one compiled pass -- unless a target is negative (ignored).
        fast = kernels.softmax_cross_entropy(np.ascontiguousarray(x), target) if n else None
    if fast is not None and fast[3]:
        per_sample, p, total, _ = fast
        denom = n
        saved = (p, None, target, None, None, None, denom)  # rows, a: made if a VJP needs them
    elif target.dtype.kind in "iu":
        # Checked here too: a compiled step replays this op without its Python callers.
        check_classes(target, c, ignore_index, f"cross_entropy{where_called()}")
        logp, p = _log_softmax_and_softmax(x)
        ignorable = 0 <= ignore_index < c or (n > 0 and target.min() < 0)
        valid = target != ignore_index if ignorable else None
        t = target if valid is None else np.where(valid, target, 0)
        rows = np.arange(n)
        # Per row: coefficient a on the target class, b (per class) on every class.
        a = np.ones(n, x.dtype) if weight is None else weight[t].astype(x.dtype)
        if valid is not None:
            a *= valid
        denom = a.sum()
        if eps:
            a *= 1.0 - eps
        per_sample = -(a * logp[rows, t])
        b = None
        if eps:
            b = np.full(c, eps / c, x.dtype) if weight is None else (eps / c) * weight
            smooth = logp @ b
            if valid is not None:
                smooth *= valid
            per_sample -= smooth
        saved = (p, rows, t, a, b, valid, denom)
    else:
        logp, p = _log_softmax_and_softmax(x)
        q = _soft_target(target, eps, weight)
        per_sample = -np.einsum("ij,ij->i", q, logp)
        denom = n
        saved = (p, q, denom)
    if reduction == "none":
        return per_sample, saved
    if total is None:
        total = per_sample.sum()
    if reduction == "mean":
        if denom:
            total = total / denom
        else:  # every row ignored: nan, as torch
            total = np.nan
    return np.asarray(total, dtype=x.dtype), saved


def _soft_target(target: Any, eps: float, weight: Any) -> Any:
    """The weighted, smoothed target distribution (arrays or Tensors alike)."""
    q = target
    if eps:
        q = q * (1.0 - eps) + eps / target.shape[1]
    if weight is not None:
        q = q * weight
    return q


@cross_entropy.defvjp
def _(F, g, out, ins, needs, attrs):
    x, target = ins
    reduction = attrs["reduction"]
    saved = attrs["saved"]
    n, c = x.shape
    tensor_mode = F is TensorF
    p = ops.softmax(x, axis=1) if tensor_mode else saved[0]
    denom = saved[-1]
    # gcol: the upstream gradient of each row's loss, a scalar or an (N, 1) column.
    if reduction == "none":
        gcol = F.reshape(g, (n, 1))
    elif reduction == "mean":
        gcol = g * (1.0 / denom) if denom else g * np.nan
    else:
        gcol = g
    classes = target.dtype.kind in "iu"
    gx = gt = None
    if classes:
        _, rows, t, a, b, valid, _ = saved
        if rows is None:  # the forward's fast path: every row counts once
            rows, a = np.arange(n), np.ones(n, x.dtype)
        plain = b is None and valid is None and attrs["weight"] is None  # a is all ones
        r = a + (float(b.sum()) if valid is None else valid * b.sum()) if b is not None else a
        if needs[0] and not tensor_mode and plain and np.ndim(gcol) == 0:
            gx = kernels.softmax_cross_entropy_grad(p, t, float(gcol))  # (p - onehot) g
        elif needs[0] and not tensor_mode:  # sparse: G = r p - valid b - a onehot(t)
            gx = p * (gcol * r[:, None])
            if b is not None:
                gx -= (gcol * valid[:, None]) * b if valid is not None else gcol * b
            gx[rows, t] -= (gcol * a[:, None]).reshape(-1) if np.ndim(gcol) else gcol * a
        elif needs[0]:
            q = np.zeros((n, c), x.dtype)
            q[rows, t] = a
            if b is not None:
                q += b if valid is None else valid[:, None] * b
            gx = p * (gcol * r[:, None]) - gcol * q
    else:
        q = (
            _soft_target(target, attrs["label_smoothing"], attrs["weight"])
            if tensor_mode
            else saved[1]
        )
        if needs[0]:
            gx = p * (gcol * F.sum(q, 1, True)) - gcol * q
        if needs[1]:
            # d loss / d target = -(1 - eps) * weight * log p, per row.
            logp = ops.log_softmax(x, axis=1) if tensor_mode else _log_softmax_and_softmax(x)[0]
            coef = 1.0 - attrs["label_smoothing"]
            if attrs["weight"] is not None:
                coef = coef * attrs["weight"]
            gt = -(gcol * (logp * coef))
    return gx, gt


# ---------------------------------------------------------------------------
# bce_with_logits


def _softplus_neg(x: Any) -> Any:
    """log(1 + exp(-x)), never overflowing."""
    if isinstance(x, np.ndarray):
        return np.logaddexp(0, -x)
    return ops.softplus(-x, beta=1.0, threshold=20.0)


@primitive("bce_with_logits", reads="i")
def bce_with_logits(x: Any, y: Any, *pos_weight: Any) -> Any:
    """Elementwise binary cross-entropy of logits x against targets y in [0, 1]:
    (1 - y) x + (1 + (pw - 1) y) log(1 + exp(-x)), which is max(x, 0) - x y +
    log(1 + exp(-|x|)) without ``pos_weight``. No exp overflows for any finite x."""
    sp = np.logaddexp(0, -x)
    if pos_weight:
        sp *= 1 + (pos_weight[0] - 1) * y
    out = x - x * y
    out += sp
    return out


@bce_with_logits.defvjp
def _(F, g, out, ins, needs, attrs):
    x, y = ins[0], ins[1]
    pw = ins[2] if len(ins) == 3 else None
    gx = gy = gpw = None
    if needs[0]:
        s = F.sigmoid(x)
        gx = g * (s - y) if pw is None else g * ((1 + (pw - 1) * y) * s - pw * y)
    if needs[1] or (pw is not None and needs[2]):
        sp = _softplus_neg(x)
        if needs[1]:
            gy = -(g * x) if pw is None else g * ((pw - 1) * sp - x)
        if pw is not None and needs[2]:
            gpw = g * y * sp
    return (gx, gy) if pw is None else (gx, gy, gpw)
