"""The fused primitives of the nn layers and losses: forward, VJP and reference side by side.

Each one replaces a chain of small ops with a few passes over memory (speed) or a
formula that stays finite where the chain would not (stability):

* ``linear``: x @ W.T + b as one product and an in-place bias add.
* ``batch_norm``: normalisation with the closed-form backward.
* ``cross_entropy``: log-softmax and the negative log-likelihood in one pass;
  the gradient is ``p - target``, finite for logits of any size.
* ``bce_with_logits``: the logistic loss written so that exp never overflows,
  with the exact gradient ``sigmoid(x) - y`` (also at x = 0, where a composition
  of relu and abs would give the wrong one-sided value).
* ``batch_norm_relu_dropout`` and ``linear_batch_norm_relu_dropout``: the chains
  that a compiled step runs as one op (the rewrite table :data:`FUSIONS`), with
  the numbers of the ops in a row, bit for bit.

Every fused op has a *reference*: its definition in core primitives. Backward with
``create_graph`` differentiates the reference (so second and higher derivatives are
exact), and the tests check the fast VJP against it. The VJP itself runs only on
arrays, with the kernels that ``kernels.py`` chooses by size.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from ..autograd import ops
from ..autograd.ops import primitive
from . import kernels
from .kernels import NO_BIAS
from .module import where_called

# ---------------------------------------------------------------------------
# linear


@primitive("linear", reads="i")
def linear(x: Any, w: Any, *bias: Any) -> Any:
    """x @ w.T + b for w of shape (out_features, in_features); x may have leading axes."""
    if w.ndim != 2 or x.ndim == 0 or x.shape[-1] != w.shape[1]:
        raise ValueError(
            f"linear{where_called()}: the input's last axis must have in_features="
            f"{w.shape[1] if w.ndim == 2 else '?'} values for a weight of shape {w.shape} "
            f"(out_features, in_features); got an input of shape {x.shape}"
        )
    return kernels.linear(x, w, bias)


@linear.defvjp
def _(F, g, out, ins, needs, attrs):
    return kernels.linear_grad(g, ins[0], ins[1], tuple(ins[2:]), needs)


@linear.defreference
def _linear_reference(out, x, w, *bias):
    y = ops.matmul(x, ops.transpose(w, axes=None))
    return y + bias[0] if bias else y


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
    replayed op (:mod:`gradwell.train.compiled`) updates it too.
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
    mean, inv_std = attrs["saved"]
    if attrs["training"]:
        gx, gxhat, gsum = kernels.batch_norm_train_grad(
            np.ascontiguousarray(g), x, mean, inv_std, _NO_AFFINE if gamma is None else gamma,
            needs[0],
        )  # fmt: skip
    else:  # the running statistics normalise: an affine map of x, per channel
        gx = g * (inv_std if gamma is None else inv_std * gamma) if needs[0] else None
        gxhat = (g * ((x - mean) * inv_std)).sum(axis=0) if gamma is not None and needs[1] else None
        gsum = g.sum(axis=0) if gamma is not None and needs[2] else None
    if gamma is None:
        return (gx if needs[0] else None,)
    return (gx if needs[0] else None), (gxhat if needs[1] else None), (gsum if needs[2] else None)


def _normalised(x: Any, training: bool, eps: float, saved: Any) -> Any:
    """(x - mean) / sqrt(var + eps) in recorded ops: by the batch's statistics in
    training, else by the running statistics that forward used (constants)."""
    if not training:
        mean, inv_std = saved
        return (x - mean) * inv_std
    n = x.shape[0]
    xc = x - ops.sum(x, axis=0, keepdims=False) * (1.0 / n)
    return xc * (ops.sum(xc * xc, axis=0, keepdims=False) * (1.0 / n) + eps) ** -0.5


@batch_norm.defreference
def _batch_norm_reference(out, x, *affine, training, eps, saved, **_):
    h = _normalised(x, training, eps, saved)
    return h * affine[0] + affine[1] if affine else h


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
        x, NO_BIAS[x.dtype.char], affine, eps, momentum, running_mean, running_var,
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


@batch_norm_relu_dropout.defvjp
def _(F, g, out, ins, needs, attrs):
    mean, inv_std = attrs["saved"]
    gamma = ins[1] if len(ins) == 3 else _NO_AFFINE
    gx, ggamma, gbeta = kernels.batch_norm_relu_dropout_grad(
        np.ascontiguousarray(g), out, ins[0], NO_BIAS[g.dtype.char], mean, inv_std, gamma,
        needs[0], float(attrs["rate"]),
    )  # fmt: skip
    if len(ins) == 1:
        return (gx if needs[0] else None,)
    return (gx if needs[0] else None), (ggamma if needs[1] else None), (gbeta if needs[2] else None)


def _gate(out: np.ndarray, rate: float) -> np.ndarray:
    """relu's and dropout's gates, read from the output: 1 / (1 - rate) where it is above 0."""
    return (out > 0) * np.asarray(1.0 / (1.0 - rate), out.dtype)


@batch_norm_relu_dropout.defreference
def _batch_norm_relu_dropout_reference(out, x, *affine, eps, rate, **_):
    return _batch_norm_reference(out, x, *affine, training=True, eps=eps, saved=None) * _gate(
        out, rate
    )


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
    product (a pass over memory fewer than the ops in a row).
    """
    bias, affine = _bias_and_affine(rest)
    if kernels.tiny(x, w, bias):  # one compiled call for the block; it adds the bias itself
        args = _train_arguments(
            x, affine, eps, momentum, running_mean, running_var, num_batches_tracked
        )
        kernel: Any = kernels.linear_batch_norm_relu_dropout_small
        out, y, mean, inv_std = kernel(
            x, w, bias[0] if bias else NO_BIAS[x.dtype.char], *args[1:], float(rate),
            _seed(rng, rate),
        )  # fmt: skip
        return out, (y, mean, inv_std)
    y = kernels.product(x, w)  # without the bias, which batch norm's kernel adds as it reads
    out, mean, inv_std = _batch_norm_relu_dropout(
        y, bias[0] if bias else NO_BIAS[y.dtype.char], affine, eps, momentum,
        running_mean, running_var, num_batches_tracked, rate, rng,
    )  # fmt: skip
    return out, (y, mean, inv_std)


def _bias_and_affine(rest: tuple[Any, ...]) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    # one or three: a bias comes first; zero or two: no bias (gamma and beta come in pairs)
    return (rest[:1], rest[1:]) if len(rest) % 2 else ((), rest)


@linear_batch_norm_relu_dropout.defvjp
def _(F, g, out, ins, needs, attrs):
    y, mean, inv_std = attrs["saved"]
    x, w = ins[0], ins[1]
    bias, affine = _bias_and_affine(tuple(ins[2:]))
    n_linear = 2 + len(bias)
    gamma = affine[0] if affine else _NO_AFFINE
    rate = float(attrs["rate"])
    if kernels.tiny(x, w, bias):  # as forward: one compiled call, the two VJPs in a row
        need_b = bool(bias) and needs[2]
        gx, gw, gb, ggamma, gbeta = kernels.linear_batch_norm_relu_dropout_small_grad(
            np.ascontiguousarray(g), out, y, x, w, mean, inv_std, gamma, rate,
            needs[0], needs[1], need_b,
        )  # fmt: skip
        grads = (gx if needs[0] else None, gw if needs[1] else None, *(
            (gb if need_b else None,) if bias else ()
        ))  # fmt: skip
    else:
        gy, ggamma, gbeta = kernels.batch_norm_relu_dropout_grad(
            np.ascontiguousarray(g), out, y, bias[0] if bias else NO_BIAS[y.dtype.char],
            mean, inv_std, gamma, True, rate,
        )  # fmt: skip
        grads = kernels.linear_grad(gy, x, w, bias, needs[:n_linear])
    if not affine:
        return grads
    return (*grads, ggamma if needs[-2] else None, gbeta if needs[-1] else None)


@linear_batch_norm_relu_dropout.defreference
def _linear_batch_norm_relu_dropout_reference(out, x, w, *rest, eps, rate, **_):
    bias, affine = _bias_and_affine(rest)
    y = _linear_reference(out, x, w, *bias)
    return _batch_norm_relu_dropout_reference(out, y, *affine, eps=eps, rate=rate)


def _linear_chain_attrs(chain_attrs: list[dict[str, Any]]) -> dict[str, Any] | None:
    return _chain_attrs(chain_attrs[1:])  # linear has no attrs of its own


# The rewrite table of a compiled step (:mod:`gradwell.train.compiled`): chains of ops
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


def fuse(steps: list[Any], outputs: list[int]) -> list[Any]:
    """The rewrite: a compiled step's recorded ``steps`` (op, attrs, input slots, output
    slot, needs or None if unrecorded) with every chain that :data:`FUSIONS` names replaced
    by its fused op: recorded ops in a row, each the only consumer of the one before, which
    it takes as its first input. The fused op takes the first op's inputs, then each later
    op's other inputs. ``outputs``: the slots the call returns (used outside the chain)."""
    uses = Counter([k for step in steps for k in step[2]] + outputs)
    table = sorted(FUSIONS, key=lambda row: -len(row[0]))
    fused, i = [], 0
    while i < len(steps):
        for names, op, merge in table:
            chain = steps[i : i + len(names)]
            linked = all(b[2][:1] == (a[3],) and uses[a[3]] == 1 for a, b in zip(chain, chain[1:]))
            recorded = [c[0].name for c in chain if c[4] is not None] == list(names)
            if recorded and linked and (attrs := merge([c[1] for c in chain])) is not None:
                ins = chain[0][2] + tuple(k for c in chain[1:] for k in c[2][1:])
                needs = chain[0][4] + tuple(n for c in chain[1:] for n in c[4][1:])
                fused.append((op, attrs, ins, chain[-1][3], needs))
                i += len(chain)
                break
        else:
            fused.append(steps[i])
            i += 1
    return fused


# ---------------------------------------------------------------------------
# dropout


@primitive("dropout", saves=True, reads="")
def dropout(x: Any, *, rate: float, rng: np.random.Generator) -> Any:
    """x times a fresh mask: 0 with probability ``rate``, else 1 / (1 - rate).

    The mask's seed is drawn from ``rng`` inside the op, so every call of the op --
    eager, or replayed by :mod:`gradwell.train.compiled` -- draws the next one.
    """
    seed = np.uint64(rng.bit_generator.random_raw())
    if x.dtype.char in NO_BIAS:  # float32 or float64: mask and product in one pass
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
    reduction, saved = attrs["reduction"], attrs["saved"]
    n, c = x.shape
    p, denom = saved[0], saved[-1]
    # gcol: the upstream gradient of each row's loss, a scalar or an (N, 1) column.
    if reduction == "none":
        gcol = g.reshape(n, 1)
    elif reduction == "mean":
        gcol = g * (1.0 / denom) if denom else g * np.nan
    else:
        gcol = g
    gx = gt = None
    if target.dtype.kind in "iu":
        if not needs[0]:
            return None, None
        _, rows, t, a, b, valid, _ = saved
        if rows is None:  # the forward's fast path: every row counts once
            rows, a = np.arange(n), np.ones(n, x.dtype)
        if b is None and valid is None and attrs["weight"] is None and np.ndim(gcol) == 0:
            return kernels.softmax_cross_entropy_grad(p, t, float(gcol)), None  # (p - onehot) g
        # sparse: G = r p - valid b - a onehot(t), with r the row's total target weight
        r = a + (float(b.sum()) if valid is None else valid * b.sum()) if b is not None else a
        gx = p * (gcol * r[:, None])
        if b is not None:
            gx -= (gcol * valid[:, None]) * b if valid is not None else gcol * b
        gx[rows, t] -= (gcol * a[:, None]).reshape(-1) if np.ndim(gcol) else gcol * a
        return gx, None
    q = saved[1]
    if needs[0]:
        gx = p * (gcol * q.sum(axis=1, keepdims=True)) - gcol * q
    if needs[1]:  # d loss / d target = -(1 - eps) * weight * log p, per row
        coef = 1.0 - attrs["label_smoothing"]
        if attrs["weight"] is not None:
            coef = coef * attrs["weight"]
        gt = -(gcol * (_log_softmax_and_softmax(x)[0] * coef))
    return gx, gt


@cross_entropy.defreference
def _cross_entropy_reference(out, x, target, *, reduction, label_smoothing, weight, saved, **_):
    logp = ops.log_softmax(x, axis=1)
    if target.dtype.kind in "iu":
        _, rows, t, a, b, valid, denom = saved
        if rows is None:
            rows, a = np.arange(x.shape[0]), np.ones(x.shape[0], x.dtype)
        per_row = -(ops.getitem(logp, index=(rows, t)) * a)
        if b is not None:
            smooth = ops.matmul(logp, b)
            per_row = per_row - (smooth if valid is None else smooth * valid)
    else:
        denom = saved[-1]
        q = _soft_target(target, label_smoothing, weight)
        per_row = -ops.sum(q * logp, axis=1, keepdims=False)
    if reduction == "none":
        return per_row
    total = ops.sum(per_row, axis=None, keepdims=False)
    return total * (1.0 / denom if denom else np.nan) if reduction == "mean" else total


# ---------------------------------------------------------------------------
# bce_with_logits


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
        sp = np.logaddexp(0, -x)  # log(1 + exp(-x)), never overflowing
        if needs[1]:
            gy = -(g * x) if pw is None else g * ((pw - 1) * sp - x)
        if pw is not None and needs[2]:
            gpw = g * y * sp
    return (gx, gy) if pw is None else (gx, gy, gpw)


@bce_with_logits.defreference
def _bce_with_logits_reference(out, x, y, *pos_weight):
    sp = ops.softplus(-x, beta=1.0, threshold=20.0)
    if pos_weight:
        sp = sp * (1 + (pos_weight[0] - 1) * y)
    return x - x * y + sp
