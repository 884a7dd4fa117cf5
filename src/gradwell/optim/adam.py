"""Adam and AdamW: adaptive moment estimation, with L2 or decoupled weight decay."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from .._jit import inline, jit
from .optimizer import (
    Optimizer,
    adam_hyperparameters,
    check_adam_group,
    check_bool,
    flat_view,
    update,
)  # fmt: skip


class Adam(Optimizer):
    r"""Adam, PyTorch's update rule (weight decay as an L2 term added to the gradient).

    For each parameter :math:`\theta` with gradient :math:`g`, at its step ``t`` (from 1)::

        g <- g + weight_decay * theta              if weight_decay != 0
        m <- m + (1 - beta1) * (g - m)             (= beta1 * m + (1 - beta1) * g)
        v <- beta2 * v + (1 - beta2) * g * g
        v_max <- max(v_max, v)                     if amsgrad; then v_max replaces v below
        theta <- theta - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    ``m``, ``v`` (and ``v_max``) start at zero and are kept in the parameter's
    dtype; the bias corrections are computed as Python floats. State names follow
    PyTorch: ``step``, ``exp_avg``, ``exp_avg_sq``, ``max_exp_avg_sq``.

    >>> import gradwell as gw
    >>> w = gw.tensor([1.0, -1.0], requires_grad=True)
    >>> opt = gw.optim.Adam([w], lr=0.1)
    >>> (w * w).sum().backward()
    >>> opt.step()
    >>> w  # the first Adam step moves each weight by about lr against its gradient's sign
    tensor([ 0.9, -0.9], requires_grad=True)
    """

    _decoupled = False  # AdamW decays the weights directly instead

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
    ) -> None:
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)
        super().__init__(params, defaults)
        # parameter -> (its array, m, v, v_max, their flat views): see _flats
        self._flat_cache: dict[Any, tuple[Any, ...]] = {}

    def _check_group(self, group: dict[str, Any], where: str) -> None:
        check_adam_group(group, where)
        check_bool(group, "amsgrad", where)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One Adam update of every parameter that has a gradient."""
        loss = self._evaluate(closure)
        for group in self.param_groups:
            lr, beta1, beta2, eps, decay, l2 = adam_hyperparameters(group, self._decoupled)
            amsgrad = group["amsgrad"]
            for p, data, g in self._with_grad(group):
                state, t = self._begin_step(p, data, "exp_avg", "exp_avg_sq")
                flats = self._flats(p, data, state, amsgrad)
                if flats is not None:
                    _adam_loop(*flats, g.ravel(), t, lr, beta1, beta2, eps, l2, decay, amsgrad)
                    continue
                v = state["exp_avg_sq"]
                v_max = self._max_exp_avg_sq(state, data) if amsgrad else v
                update(
                    _adam_loop, data, state["exp_avg"].ravel(), v.ravel(), v_max.ravel(),
                    g.ravel(), t, lr, beta1, beta2, eps, l2, decay, amsgrad,
                )  # fmt: skip
        return loss

    @staticmethod
    def _max_exp_avg_sq(state: dict[str, Any], data: np.ndarray) -> np.ndarray:
        v_max = state.get("max_exp_avg_sq")
        if v_max is None:
            v_max = state["max_exp_avg_sq"] = np.zeros(data.shape, data.dtype)
        return v_max  # type: ignore[no-any-return]

    def _flats(
        self, p: Any, data: np.ndarray, state: dict[str, Any], amsgrad: bool
    ) -> tuple[np.ndarray, ...] | None:
        """Flat views of the parameter, m, v and v_max for the kernel, or None if the
        parameter cannot be written through one. Kept between steps: on a small model
        making them anew is a good part of the step's time."""
        cache = self._flat_cache
        hit = cache.get(p)
        m = state["exp_avg"]
        if hit is not None and hit[0] is data and hit[1] is m and hit[2] is state["exp_avg_sq"]:
            if not amsgrad or hit[3] is state.get("max_exp_avg_sq"):
                return hit[4]  # type: ignore[no-any-return]
        flat = flat_view(data)
        if flat is None:
            return None
        v = state["exp_avg_sq"]
        v_max = self._max_exp_avg_sq(state, data) if amsgrad else v
        flats = (flat, m.ravel(), v.ravel(), v_max.ravel())
        cache[p] = (data, m, v, v_max if amsgrad else None, flats)
        return flats


class AdamW(Adam):
    r"""AdamW: Adam with decoupled weight decay, PyTorch's update rule.

    The weights decay directly instead of through the gradient; then the Adam
    update runs without an L2 term::

        theta <- theta * (1 - lr * weight_decay)
        m, v, v_max and theta updated as in Adam with weight_decay = 0

    >>> import gradwell as gw
    >>> w = gw.tensor([1.0], requires_grad=True)
    >>> opt = gw.optim.AdamW([w], lr=0.1, weight_decay=0.5)
    >>> w.grad = gw.tensor([0.0])
    >>> opt.step()  # zero gradient: only the decay acts
    >>> round(w.item(), 6)
    0.95
    """

    _decoupled = True

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)


@jit
def _adam_loop(
    p: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    v_max: np.ndarray,
    g: np.ndarray,
    t: int,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    l2: float,
    decay: float,
    amsgrad: bool,
) -> None:
    """The Adam/AdamW rule in one pass over flat arrays."""
    # the bias corrections in float64 (float powers: C's pow, as in Python)
    step_size = lr / (1.0 - beta1 ** float(t))
    bc2_sqrt = np.sqrt(1.0 - beta2 ** float(t))
    f = p.dtype.type
    c1, b2, c2 = f(1.0 - beta1), f(beta2), f(1.0 - beta2)
    step_, bc2_, eps_, l2_, decay_ = f(step_size), f(bc2_sqrt), f(eps), f(l2), f(decay)
    for i in range(p.size):
        pi, _, mi, vi = adam_moments(p, g, m, v, i, c1, b2, c2, l2, l2_, decay, decay_)
        if amsgrad:
            vm = v_max[i]
            if not vm >= vi:  # also takes a NaN in v, as np.maximum does
                vm = vi
            v_max[i] = vm
            vi = vm
        p[i] = pi - step_ * (mi / (np.sqrt(vi) / bc2_ + eps_))


@inline
def adam_moments(
    p: np.ndarray,
    g: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    i: int,
    c1: Any,
    b2: Any,
    c2: Any,
    l2: float,
    l2_: Any,
    decay: float,
    decay_: Any,
) -> tuple[Any, Any, Any, Any]:
    """Element ``i`` of what Adam, NAdam and RAdam do first: the L2 term or the decoupled
    decay, then m and v updated (and written); returns theta, g, m and v for the rest of
    the rule. ``c1, b2, c2`` are 1 - beta1, beta2, 1 - beta2; a trailing ``_``: in the
    parameter's dtype. (numba's disk cache of a caller in another file does not see an
    edit here: after one, delete the ``__pycache__`` of ``optim/``.)"""
    pi = p[i]
    gi = g[i]
    if l2 != 0:
        gi = gi + l2_ * pi
    if decay != 1.0:
        pi = pi * decay_
    mi = m[i]
    mi = mi + c1 * (gi - mi)
    vi = b2 * v[i] + c2 * (gi * gi)
    m[i] = mi
    v[i] = vi
    return pi, gi, mi, vi
