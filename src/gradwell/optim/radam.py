"""RAdam: Adam whose adaptive step is rectified while the variance estimate is young."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from .._jit import jit
from .optimizer import (
    Optimizer,
    check_betas,
    check_bool,
    check_lr,
    check_range,
    new_state_array,
    update,
)  # fmt: skip


class RAdam(Optimizer):
    r"""RAdam (Liu et al., 2019), PyTorch's update rule.

    For each parameter :math:`\theta` with gradient :math:`g`, at its step ``t`` (from 1),
    with ``rho_inf = 2 / (1 - beta2) - 1`` and ``rho_t = rho_inf - 2 t beta2^t / (1 - beta2^t)``::

        theta <- theta * (1 - lr * weight_decay)   if decoupled_weight_decay
        g <- g + weight_decay * theta              otherwise, if weight_decay != 0
        m <- m + (1 - beta1) * (g - m)
        v <- beta2 * v + (1 - beta2) * g * g
        if rho_t > 5 (the variance estimate is usable):
            r <- sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
            theta <- theta - lr * m / (1 - beta1^t) * sqrt(1 - beta2^t) / (sqrt(v) + eps) * r
        else (the first steps: momentum SGD):
            theta <- theta - lr * m / (1 - beta1^t)

    State names follow PyTorch: ``step``, ``exp_avg``, ``exp_avg_sq``.

    >>> import gradwell as gw
    >>> w = gw.tensor([1.0], requires_grad=True)
    >>> opt = gw.optim.RAdam([w], lr=0.1)
    >>> w.grad = gw.tensor([2.0])
    >>> opt.step()  # step 1: rho_t = 1, so an SGD step with the bias-corrected momentum
    >>> round(w.item(), 6)
    0.8
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decoupled_weight_decay: bool = False,
    ) -> None:
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        decoupled_weight_decay=decoupled_weight_decay)  # fmt: skip
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any], where: str) -> None:
        check_lr(group, where)
        check_betas(group, where)
        check_range(group, "eps", where)
        check_range(group, "weight_decay", where)
        check_bool(group, "decoupled_weight_decay", where)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One RAdam update of every parameter that has a gradient."""
        loss = self._evaluate(closure)
        for group in self.param_groups:
            lr, (beta1, beta2) = float(group["lr"]), group["betas"]
            beta1, beta2 = float(beta1), float(beta2)
            eps, wd = float(group["eps"]), float(group["weight_decay"])
            decay, l2 = (1.0 - lr * wd, 0.0) if group["decoupled_weight_decay"] else (1.0, wd)
            rho_inf = 2.0 / (1.0 - beta2) - 1.0
            for p, data, g in self._with_grad(group):
                state = self.state.get(p)
                if state is None:
                    state = self.state[p] = {"step": 0, "exp_avg": new_state_array(data),
                                             "exp_avg_sq": new_state_array(data)}  # fmt: skip
                t = state["step"] = state["step"] + 1
                bc2 = 1.0 - beta2**t
                rho_t = rho_inf - 2.0 * t * beta2**t / bc2
                rect = 0.0  # 0: not rectified, the step without the adaptive term
                if rho_t > 5.0:
                    rect = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf
                                     / ((rho_inf - 4) * (rho_inf - 2) * rho_t))  # fmt: skip
                update(_radam_loop, data, g.ravel(), state["exp_avg"].ravel(),
                       state["exp_avg_sq"].ravel(), lr, 1.0 - beta1**t, math.sqrt(bc2), rect,
                       beta1, beta2, eps, l2, decay)  # fmt: skip
        return loss


@jit
def _radam_loop(
    p: np.ndarray,
    g: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    lr: float,
    bias_correction1: float,
    sqrt_bias_correction2: float,
    rect: float,
    beta1: float,
    beta2: float,
    eps: float,
    l2: float,
    decay: float,
) -> None:
    """The RAdam rule in one pass over flat arrays (``rect`` 0: the unrectified step)."""
    f = p.dtype.type
    c1, b2, c2 = f(1.0 - beta1), f(beta2), f(1.0 - beta2)
    lr_, bc1, sbc2, rect_ = f(lr), f(bias_correction1), f(sqrt_bias_correction2), f(rect)
    eps_, l2_, decay_ = f(eps), f(l2), f(decay)
    for i in range(p.size):
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
        step = mi / bc1 * lr_
        if rect != 0.0:
            step = step * (sbc2 / (np.sqrt(vi) + eps_)) * rect_
        p[i] = pi - step
