"""RAdam: Adam whose adaptive step is rectified while the variance estimate is young."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from .._jit import jit
from .adam import adam_moments
from .optimizer import Optimizer, adam_hyperparameters, check_adam_group, check_bool, update


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
        check_adam_group(group, where)
        check_bool(group, "decoupled_weight_decay", where)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One RAdam update of every parameter that has a gradient."""
        loss = self._evaluate(closure)
        for group in self.param_groups:
            decoupled = group["decoupled_weight_decay"]
            lr, beta1, beta2, eps, decay, l2 = adam_hyperparameters(group, decoupled)
            rho_inf = 2.0 / (1.0 - beta2) - 1.0
            for p, data, g in self._with_grad(group):
                state, t = self._begin_step(p, data, "exp_avg", "exp_avg_sq")
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
        pi, _, mi, vi = adam_moments(p, g, m, v, i, c1, b2, c2, l2, l2_, decay, decay_)
        step = mi / bc1 * lr_
        if rect != 0.0:
            step = step * (sbc2 / (np.sqrt(vi) + eps_)) * rect_
        p[i] = pi - step
