"""The functional forms of the layers and losses (``gw.nn.functional``, also ``gw.nn.F``).

Modules hold parameters and configuration and call these functions; use them
directly to write a model as plain code.

>>> import gradwell as gw
>>> import gradwell.nn.functional as F
>>> logits = gw.tensor([[2.0, 0.0, -1.0]], requires_grad=True)
>>> loss = F.cross_entropy(logits, [0])
>>> round(loss.item(), 4)
0.1698
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._numeric import numeric_array
from ..autograd import functional as _fn
from ..autograd import ops
from ..autograd.creation import _rng
from ..autograd.functional import elu, leaky_relu, log_softmax, softmax, softplus
from ..autograd.ops import gelu, relu, sigmoid, tanh
from ..autograd.tensor import Tensor
from . import fused
from .module import where_called
from .validate import check_rate

__all__ = [
    "binary_cross_entropy",
    "celu",
    "gelu_tanh",
    "hardsigmoid",
    "hardswish",
    "hardtanh",
    "kl_div",
    "logsigmoid",
    "one_hot",
    "mish",
    "relu6",
    "selu",
    "silu",
    "smooth_l1_loss",
    "softsign",
    "batch_norm",
    "binary_cross_entropy_with_logits",
    "cross_entropy",
    "dropout",
    "elu",
    "gelu",
    "huber_loss",
    "l1_loss",
    "leaky_relu",
    "linear",
    "log_softmax",
    "mse_loss",
    "nll_loss",
    "relu",
    "sigmoid",
    "softmax",
    "softplus",
    "tanh",
]


def _as_tensor(x: Any) -> Tensor:
    if isinstance(x, Tensor):
        return x
    arr = numeric_array(x, f"input{where_called()}")
    if arr.dtype == np.float64:  # plain Python/numpy floats: the default float32
        arr = arr.astype(np.float32)
    return Tensor(arr)


def linear(input: Any, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``input @ weight.T + bias`` with weight of shape (out_features, in_features).

    One fused op: a single matmul over all leading axes of ``input`` and an in-place
    bias add; its backward computes only the gradients that are needed.

    >>> import gradwell as gw
    >>> w = gw.tensor([[1.0, 2.0], [0.0, -1.0], [3.0, 0.5]])
    >>> gw.nn.functional.linear(gw.tensor([[1.0, 1.0]]), w, gw.tensor([0.0, 0.0, 1.0]))
    tensor([[ 3. , -1. ,  4.5]])
    """
    if bias is None:
        return fused.linear(input, weight)
    return fused.linear(input, weight, bias)


def batch_norm(
    input: Any,
    running_mean: Any,
    running_var: Any,
    weight: Any = None,
    bias: Any = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Batch normalization of (N, C) input: ``(x - mean) / sqrt(var + eps) * weight + bias``.

    In training the batch mean and biased variance normalise and ``running_mean`` /
    ``running_var`` (Tensors or arrays, may be None) are updated in place:
    ``running = (1 - momentum) * running + momentum * batch_stat``, with the
    *unbiased* batch variance for ``running_var``. Otherwise the running statistics
    normalise. Forward and backward are one fused op (closed-form gradient).

    >>> import gradwell as gw
    >>> x = gw.tensor([[1.0], [3.0]])
    >>> gw.nn.functional.batch_norm(x, None, None, training=True)
    tensor([[-1.],
            [ 1.]])
    """
    x = _as_tensor(input)
    where = f"batch_norm{where_called()}"
    if x.ndim != 2:
        raise ValueError(f"{where}: expected input of shape (N, C); got shape {x.shape}")
    c = x.shape[1]
    rm = _stat_array(running_mean, c, "running_mean", where)
    rv = _stat_array(running_var, c, "running_var", where)
    if not training and (rm is None or rv is None):
        raise ValueError(
            f"{where}: evaluation mode needs running_mean and running_var "
            "(or pass training=True to use batch statistics)"
        )
    affine: tuple[Any, ...] = ()
    if weight is not None or bias is not None:
        gamma = Tensor(np.ones(c, x.dtype)) if weight is None else weight
        beta = Tensor(np.zeros(c, x.dtype)) if bias is None else bias
        for name, p in (("weight", gamma), ("bias", beta)):
            if tuple(np.shape(p.data if isinstance(p, Tensor) else p)) != (c,):
                raise ValueError(
                    f"{where}: {name} must have shape ({c},) for {c} channels; "
                    f"got {np.shape(p.data if isinstance(p, Tensor) else p)}"
                )
        affine = (gamma, beta)
    return fused.batch_norm(
        x,
        *affine,
        training=bool(training),
        eps=float(eps),
        momentum=float(momentum),
        running_mean=rm,
        running_var=rv,
    )


def _stat_array(stat: Any, c: int, name: str, where: str) -> np.ndarray | None:
    if stat is None:
        return None
    arr = stat.data if isinstance(stat, Tensor) else stat
    if not isinstance(arr, np.ndarray) or arr.shape != (c,) or arr.dtype.kind != "f":
        raise ValueError(
            f"{where}: {name} must be a float array of shape ({c},) that is "
            f"updated in place; got {type(arr).__name__} of shape {np.shape(arr)}"
        )
    return arr


def dropout(input: Any, rate: float = 0.5, training: bool = True, rng: Any = None) -> Any:
    """Zero each element with probability ``rate``; scale survivors by 1 / (1 - rate).

    The identity (``input`` itself) when ``rate`` is 0 or not ``training``; zeros (with
    zero gradients) when ``rate`` is 1. ``rng``: a seed or a numpy Generator (a seed
    draws the same mask on every call).

    >>> import gradwell as gw
    >>> x = gw.ones(2, 4)
    >>> gw.nn.functional.dropout(x, 0.5, rng=0)
    tensor([[2., 2., 2., 0.],
            [2., 0., 2., 2.]])
    """
    rate = check_rate(rate)
    if not training or rate == 0.0:
        return input
    x = _as_tensor(input)
    if rate == 1.0:
        return ops.mul(x, 0.0)
    return fused.dropout(x, rate=rate, rng=_rng(rng))


# ---------------------------------------------------------------------------
# Losses


_REDUCTIONS = ("mean", "sum", "none")


def check_reduction(reduction: Any, who: str) -> str:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{who}: reduction must be 'mean', 'sum' or 'none'; got {reduction!r}")
    return reduction


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return _fn.mean(loss)
    if reduction == "sum":
        return _fn.sum(loss)
    return loss


def _input_and_target(input: Any, target: Any, who: str) -> tuple[Tensor, Tensor]:
    """The input as a Tensor and the target as a Tensor of the input's dtype, same shape."""
    x = _as_tensor(input)
    if not isinstance(target, Tensor):
        target = Tensor(numeric_array(target, f"{who}: target").astype(x.dtype, copy=False))
    y = target
    if y.dtype != x.dtype:
        y = ops.astype(y, dtype=x.dtype)  # an op, so that a compiled step replays it
    if x.shape != y.shape:
        hint = ""
        if x.shape == y.shape + (1,) or y.shape == x.shape + (1,):
            hint = (
                " (an (N, 1) output against an (N,) target would silently broadcast to "
                "(N, N): reshape one of them)"
            )
        raise ValueError(
            f"{who}: input shape {x.shape} and target shape {y.shape} must be equal{hint}"
        )
    return x, y


def mse_loss(input: Any, target: Any, reduction: str = "mean") -> Tensor:
    """Mean squared error: reduce((input - target) ** 2).

    >>> import gradwell as gw
    >>> gw.nn.functional.mse_loss(gw.tensor([1.0, 3.0]), gw.tensor([0.0, 0.0])).item()
    5.0
    """
    who = f"mse_loss{where_called()}"
    check_reduction(reduction, who)
    x, y = _input_and_target(input, target, who)
    d = x - y
    return _reduce(d * d, reduction)


def l1_loss(input: Any, target: Any, reduction: str = "mean") -> Tensor:
    """Mean absolute error: reduce(|input - target|) (gradient 0 where they are equal).

    >>> import gradwell as gw
    >>> gw.nn.functional.l1_loss(gw.tensor([1.0, -3.0]), gw.tensor([0.0, 0.0])).item()
    2.0
    """
    who = f"l1_loss{where_called()}"
    check_reduction(reduction, who)
    x, y = _input_and_target(input, target, who)
    return _reduce(ops.abs(x - y), reduction)


def huber_loss(input: Any, target: Any, reduction: str = "mean", delta: float = 1.0) -> Tensor:
    """Huber loss: 0.5 d**2 where |d| <= delta, else delta * (|d| - 0.5 delta), d = input - target.

    Quadratic near zero, linear (robust to outliers) beyond ``delta``.

    >>> import gradwell as gw
    >>> gw.nn.functional.huber_loss(gw.tensor([0.5, 3.0]), gw.zeros(2), reduction="none")
    tensor([0.125, 2.5  ])
    """
    who = f"huber_loss{where_called()}"
    check_reduction(reduction, who)
    if not delta > 0:
        raise ValueError(f"{who}: delta must be positive; got {delta!r}")
    x, y = _input_and_target(input, target, who)
    d = x - y
    # With q = clip(d, -delta, delta), q * (d - q / 2) is exactly the two-piece formula.
    q = ops.clip(d, min=-delta, max=delta)
    return _reduce(q * (d - 0.5 * q), reduction)


def binary_cross_entropy_with_logits(
    input: Any,
    target: Any,
    weight: Any = None,
    reduction: str = "mean",
    pos_weight: Any = None,
) -> Tensor:
    """Binary cross-entropy of logits against targets in [0, 1], computed stably:
    ``max(x, 0) - x * y + log(1 + exp(-|x|))``; the gradient is ``sigmoid(x) - y``.

    ``pos_weight`` (broadcast over the last axis, e.g. one per class) multiplies the
    positive term: ``-(pos_weight * y * log sigmoid(x) + (1 - y) * log(1 - sigmoid(x)))``.
    ``weight`` rescales each element's loss.

    >>> import gradwell as gw
    >>> F = gw.nn.functional
    >>> round(F.binary_cross_entropy_with_logits(gw.tensor([0.0]), gw.tensor([1.0])).item(), 4)
    0.6931
    """
    who = f"binary_cross_entropy_with_logits{where_called()}"
    check_reduction(reduction, who)
    x, y = _input_and_target(input, target, who)
    if pos_weight is None:
        loss = fused.bce_with_logits(x, y)
    else:
        pw = _constant_like(pos_weight, x)
        try:
            np.broadcast_shapes(pw.shape, x.shape)
        except ValueError:
            raise ValueError(
                f"{who}: pos_weight of shape {pw.shape} does not broadcast to the "
                f"input's shape {x.shape}"
            ) from None
        loss = fused.bce_with_logits(x, y, pw)
    if weight is not None:
        loss = loss * _constant_like(weight, x)
    return _reduce(loss, reduction)


def _constant_like(value: Any, x: Tensor) -> Tensor:
    if isinstance(value, Tensor):
        return value
    return Tensor(np.asarray(value, dtype=x.dtype))


def _logits_and_classes(
    input: Any, target: Any, ignore_index: int, who: str
) -> tuple[Tensor, Tensor]:
    """(N, C) scores and a target Tensor: class indices (N,) or probabilities (N, C)."""
    x = _as_tensor(input)
    if x.ndim != 2:
        raise ValueError(
            f"{who}: input must have shape (N, C) (a row of class scores per "
            f"example); got shape {x.shape}"
        )
    n, c = x.shape
    t = target if isinstance(target, Tensor) else Tensor(numeric_array(target, f"{who}: target"))
    kind = t.dtype.kind
    if kind in "iu":
        if t.shape != (n,):
            raise ValueError(
                f"{who}: class-index target must have shape ({n},) for input of "
                f"shape {x.shape}; got target shape {t.shape}"
            )
        fused.check_classes(t.data, c, ignore_index, who)
        return x, t
    if kind == "f":
        if t.shape != x.shape:
            raise ValueError(
                f"{who}: class-probability target must have the input's shape "
                f"{x.shape}; got target shape {t.shape} (class indices must be "
                "integers)"
            )
        if t.dtype != x.dtype:
            t = ops.astype(t, dtype=x.dtype)  # an op, so that a compiled step replays it
        return x, t
    raise TypeError(
        f"{who}: target must hold integer class indices or float class "
        f"probabilities; got dtype {t.dtype}"
    )


def _class_weight(weight: Any, x: Tensor, who: str) -> np.ndarray | None:
    if weight is None:
        return None
    w = np.asarray(weight.data if isinstance(weight, Tensor) else weight, dtype=x.dtype)
    if w.shape != (x.shape[1],):
        raise ValueError(
            f"{who}: weight must have one entry per class, shape "
            f"({x.shape[1]},); got shape {w.shape}"
        )
    return w


def _classes_last(input: Any, target: Any) -> tuple[Any, Any, tuple[int, ...] | None]:
    """(N, C, d1, ...) logits and their targets as (N * d1 * ..., C) rows: a loss per
    pixel or token (as PyTorch). Also the (N, d1, ...) shape to give "none" back."""
    x = _as_tensor(input)
    if x.ndim <= 2:
        return x, target, None
    c = x.shape[1]
    rows = ops.reshape(_fn.transpose(x, (0, *range(2, x.ndim), 1)), shape=(-1, c))
    t = target if isinstance(target, Tensor) else Tensor(np.asarray(target))
    if t.ndim == x.ndim:  # class probabilities, classes on axis 1 too
        t = ops.reshape(_fn.transpose(t, (0, *range(2, t.ndim), 1)), shape=(-1, c))
    else:
        t = ops.reshape(t, shape=(-1,))
    return rows, t, (x.shape[0], *x.shape[2:])


def cross_entropy(
    input: Any,
    target: Any,
    weight: Any = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Softmax cross-entropy of (N, C) logits, one fused op; (N, C, d1, ...) logits give
    a loss per position (targets (N, d1, ...), or probabilities (N, C, d1, ...)).

    ``target``: integer class indices of shape (N,) or class probabilities of shape
    (N, C). With ``label_smoothing`` eps the target distribution is
    ``(1 - eps) * target + eps / C``. A row's loss is ``-sum_c weight_c q_c log p_c``
    with ``p = softmax(logits)``; rows whose class is ``ignore_index`` count for
    nothing. ``mean`` divides by N, or for class indices by the total weight of the
    rows not ignored (as PyTorch). Stable for logits of any magnitude; the gradient is
    ``(p - q) / N`` for unweighted mean reduction.

    >>> import gradwell as gw
    >>> logits = gw.tensor([[1e4, 0.0], [0.0, 0.0]])
    >>> round(gw.nn.functional.cross_entropy(logits, [0, 1]).item(), 4)
    0.3466
    """
    who = f"cross_entropy{where_called()}"
    check_reduction(reduction, who)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{who}: label_smoothing must be in [0, 1]; got {label_smoothing!r}")
    input, target, positions = _classes_last(input, target)
    x, t = _logits_and_classes(input, target, ignore_index, who)
    loss = fused.cross_entropy(
        x,
        t,
        reduction=reduction,
        label_smoothing=float(label_smoothing),
        weight=_class_weight(weight, x, who),
        ignore_index=int(ignore_index),
    )
    return loss if positions is None or reduction != "none" else ops.reshape(loss, shape=positions)


def nll_loss(
    input: Any,
    target: Any,
    weight: Any = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> Tensor:
    """Negative log-likelihood of (N, C) log-probabilities at integer classes (N,);
    (N, C, d1, ...) with classes (N, d1, ...) gives a loss per position.

    A row's loss is ``-weight[t] * input[row, t]``; ``mean`` divides by the total
    weight of the rows not ignored. ``nll_loss(log_softmax(x), t)`` equals
    ``cross_entropy(x, t)``.

    >>> import gradwell as gw
    >>> gw.nn.functional.nll_loss(gw.tensor([[-0.5, -2.0]]), [1]).item()
    2.0
    """
    who = f"nll_loss{where_called()}"
    check_reduction(reduction, who)
    input, target, positions = _classes_last(input, target)
    if positions is not None and reduction == "none":
        return ops.reshape(nll_loss(input, target, weight, ignore_index, "none"), shape=positions)
    x, t = _logits_and_classes(input, target, ignore_index, who)
    if t.dtype.kind not in "iu":
        raise TypeError(f"{who}: target must hold integer class indices; got dtype {t.dtype}")
    labels = t.data
    n = labels.shape[0]
    valid = labels != ignore_index
    all_valid = bool(valid.all())
    safe = labels if all_valid else np.where(valid, labels, 0)
    picked = ops.getitem(x, index=(np.arange(n), safe))
    w = _class_weight(weight, x, who)
    if w is None and all_valid:
        loss, denom = -picked, float(n)
    else:
        coef = (np.ones(n, x.dtype) if w is None else w[safe]) * valid
        loss, denom = picked * (-coef), float(coef.sum())
    if reduction == "mean":
        return _fn.sum(loss) * (1.0 / denom if denom else math.nan)
    return _reduce(loss, reduction)


# ---------------------------------------------------------------------------
# More activations, each a composite of primitives (so its gradient is theirs).

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def gelu_tanh(x: Any) -> Tensor:
    """GELU's tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    x = _as_tensor(x)
    return 0.5 * x * (1.0 + ops.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)))


def silu(x: Any) -> Tensor:
    """x * sigmoid(x) (also called swish)."""
    x = _as_tensor(x)
    return x * ops.sigmoid(x)


def selu(x: Any) -> Tensor:
    """scale * elu(x, alpha) with the self-normalising constants of Klambauer et al."""
    return _SELU_SCALE * ops.elu(_as_tensor(x), alpha=_SELU_ALPHA)


def celu(x: Any, alpha: float = 1.0) -> Tensor:
    """x for x > 0, else alpha * (exp(x / alpha) - 1): alpha * elu(x / alpha)."""
    return alpha * ops.elu(_as_tensor(x) * (1.0 / alpha), alpha=1.0)


def mish(x: Any) -> Tensor:
    """x * tanh(softplus(x))."""
    x = _as_tensor(x)
    return x * ops.tanh(softplus(x))


def hardtanh(x: Any, min_val: float = -1.0, max_val: float = 1.0) -> Tensor:
    """x limited to [min_val, max_val]."""
    return ops.clip(_as_tensor(x), min=min_val, max=max_val)


def relu6(x: Any) -> Tensor:
    """x limited to [0, 6]."""
    return ops.clip(_as_tensor(x), min=0.0, max=6.0)


def hardsigmoid(x: Any) -> Tensor:
    """x / 6 + 1/2 limited to [0, 1]."""
    return ops.clip(_as_tensor(x) * (1.0 / 6.0) + 0.5, min=0.0, max=1.0)


def hardswish(x: Any) -> Tensor:
    """x * hardsigmoid(x)."""
    x = _as_tensor(x)
    return x * hardsigmoid(x)


def softsign(x: Any) -> Tensor:
    """x / (1 + |x|)."""
    x = _as_tensor(x)
    return x / (1.0 + ops.abs(x))


def logsigmoid(x: Any) -> Tensor:
    """log(sigmoid(x)) = -softplus(-x), stable for large |x|."""
    return -softplus(-_as_tensor(x))


# ---------------------------------------------------------------------------
# More losses.


def smooth_l1_loss(input: Any, target: Any, reduction: str = "mean", beta: float = 1.0) -> Tensor:
    """0.5 d**2 / beta where |d| < beta, else |d| - beta / 2: Huber divided by beta (L1 at 0)."""
    who = f"smooth_l1_loss{where_called()}"
    if beta < 0:
        raise ValueError(f"{who}: beta must be >= 0; got {beta!r}")
    if beta == 0:
        return l1_loss(input, target, reduction)
    return huber_loss(input, target, reduction, beta) * (1.0 / beta)


def binary_cross_entropy(
    input: Any, target: Any, weight: Any = None, reduction: str = "mean"
) -> Tensor:
    """-(y log p + (1 - y) log(1 - p)) on probabilities p, each log clamped at -100 as
    PyTorch does (so p = 0 or 1 gives a finite loss). Prefer the logits form for training."""
    who = f"binary_cross_entropy{where_called()}"
    check_reduction(reduction, who)
    p, y = _input_and_target(input, target, who)
    with np.errstate(divide="ignore"):  # log(0) = -inf, clamped to -100 next
        log_p = ops.clip(ops.log(p), min=-100.0, max=None)
        log_q = ops.clip(ops.log(1.0 - p), min=-100.0, max=None)
    loss = -(y * log_p + (1.0 - y) * log_q)
    if weight is not None:
        loss = loss * _as_tensor(weight)
    return _reduce(loss, reduction)


def one_hot(tensor: Any, num_classes: int = -1) -> Tensor:
    """(..., num_classes) int64 rows with a 1 at each class index of ``tensor`` (PyTorch's
    ``F.one_hot``); ``num_classes=-1``: one more than the largest index.

    >>> import gradwell as gw
    >>> one_hot(gw.tensor([0, 2]), 3).tolist()
    [[1, 0, 0], [0, 0, 1]]
    """
    arr = np.asarray(tensor.data if isinstance(tensor, Tensor) else tensor)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"one_hot: expected integer class indices; got dtype {arr.dtype}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
        raise TypeError(f"one_hot: num_classes must be an int; got {num_classes!r}")
    n = int(arr.max()) + 1 if num_classes == -1 and arr.size else int(num_classes)
    if arr.size and (arr.min() < 0 or arr.max() >= n):
        raise ValueError(
            f"one_hot: class indices must be in [0, {n}); got {arr.min()} .. {arr.max()}"
        )
    return Tensor((arr[..., None] == np.arange(max(n, 0))).astype(np.int64))


def kl_div(input: Any, target: Any, reduction: str = "mean", log_target: bool = False) -> Tensor:
    """Pointwise KL divergence target * (log target - input), ``input`` log-probabilities
    (0 where target is 0). ``reduction="batchmean"`` divides the sum by the batch size,
    the true KL divergence; "mean" (PyTorch's default) averages over every element."""
    who = f"kl_div{where_called()}"
    if reduction not in ("mean", "sum", "none", "batchmean"):
        raise ValueError(
            f"{who}: reduction must be 'mean', 'sum', 'none' or 'batchmean'; got {reduction!r}"
        )
    x, t = _input_and_target(input, target, who)
    if log_target:
        loss = ops.exp(t) * (t - x)
    else:
        positive = t.data > 0
        safe = ops.where(positive, t, ops._lift((1.0, t))[0])
        loss = ops.where(positive, t * (ops.log(safe) - x), ops._lift((0.0, x))[0])
    if reduction == "batchmean":
        return _fn.sum(loss) * (1.0 / (x.shape[0] if x.ndim else 1))
    return _reduce(loss, reduction)


# Convolution, pooling, padding, normalisation, embedding and attention (their own modules).
from .attention import scaled_dot_product_attention  # noqa: E402
from .conv import conv1d, conv2d  # noqa: E402
from .conv_transpose import conv_transpose2d  # noqa: E402
from .embedding import embedding  # noqa: E402
from .normalization import group_norm, layer_norm  # noqa: E402
from .padding import pad  # noqa: E402
from .pooling import (  # noqa: E402
    adaptive_avg_pool2d,
    avg_pool1d,
    avg_pool2d,
    max_pool1d,
    max_pool2d,
)
from .upsampling import interpolate  # noqa: E402

__all__ += [
    "adaptive_avg_pool2d",
    "avg_pool1d",
    "avg_pool2d",
    "conv1d",
    "conv2d",
    "conv_transpose2d",
    "embedding",
    "group_norm",
    "layer_norm",
    "max_pool1d",
    "interpolate",
    "max_pool2d",
    "pad",
    "scaled_dot_product_attention",
]
