"""NAdam: Adam with Nesterov momentum (Dozat, 2016), with momentum decay."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from .._jit import jit
from .adam import adam_moments
from .optimizer import (
    Optimizer,
    adam_hyperparameters,
    check_adam_group,
    check_bool,
    check_range,
    update,
)  # fmt: skip


class NAdam(Optimizer):
    r"""NAdam, PyTorch's update rule.

    For each parameter :math:`\theta` with gradient :math:`g`, at its step ``t`` (from 1),
    with ``mu_t = beta1 * (1 - 0.5 * 0.96^(t * momentum_decay))`` and ``P_t`` the product
    ``mu_1 * ... * mu_t``::

        theta <- theta * (1 - lr * weight_decay)   if decoupled_weight_decay
        g <- g + weight_decay * theta              otherwise, if weight_decay != 0
        m <- m + (1 - beta1) * (g - m)
        v <- beta2 * v + (1 - beta2) * g * g
        d <- sqrt(v / (1 - beta2^t)) + eps
        theta <- theta - lr * (1 - mu_t) / (1 - P_t) * g / d
                       - lr * mu_(t+1) / (1 - P_t * mu_(t+1)) * m / d

    State names follow PyTorch: ``step``, ``mu_product`` (kept as a Python float, in
    float64: PyTorch keeps it in float32), ``exp_avg``, ``exp_avg_sq``.

    >>> import gradwell as gw
    >>> w = gw.tensor([1.0], requires_grad=True)
    >>> opt = gw.optim.NAdam([w], lr=0.1)
    >>> w.grad = gw.tensor([2.0])
    >>> opt.step()
    >>> w.item() < 1.0
    True
    """

    _scalar_state = ("step", "mu_product")

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum_decay: float = 4e-3,
        decoupled_weight_decay: bool = False,
    ) -> None:
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        momentum_decay=momentum_decay,
                        decoupled_weight_decay=decoupled_weight_decay)  # fmt: skip
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any], where: str) -> None:
        check_adam_group(group, where)
        check_range(group, "momentum_decay", where)
        check_bool(group, "decoupled_weight_decay", where)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One NAdam update of every parameter that has a gradient."""
        loss = self._evaluate(closure)
        for group in self.param_groups:
            decoupled = group["decoupled_weight_decay"]
            lr, beta1, beta2, eps, decay, l2 = adam_hyperparameters(group, decoupled)
            psi = float(group["momentum_decay"])
            for p, data, g in self._with_grad(group):
                state, t = self._begin_step(p, data, "exp_avg", "exp_avg_sq", mu_product=1.0)
                mu = beta1 * (1.0 - 0.5 * 0.96 ** (t * psi))
                mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * psi))
                product = state["mu_product"] = state["mu_product"] * mu
                on_g = lr * (1.0 - mu) / (1.0 - product)
                on_m = lr * mu_next / (1.0 - product * mu_next)
                update(_nadam_loop, data, g.ravel(), state["exp_avg"].ravel(),
                       state["exp_avg_sq"].ravel(), on_g, on_m, 1.0 - beta2**t, beta1, beta2,
                       eps, l2, decay)  # fmt: skip
        return loss


@jit
def _nadam_loop(
    p: np.ndarray,
    g: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    on_g: float,
    on_m: float,
    bias_correction2: float,
    beta1: float,
    beta2: float,
    eps: float,
    l2: float,
    decay: float,
) -> None:
    """The NAdam rule in one pass over flat arrays."""
    f = p.dtype.type
    c1, b2, c2 = f(1.0 - beta1), f(beta2), f(1.0 - beta2)
    on_g_, on_m_, bc2, eps_, l2_, decay_ = (
        f(on_g), f(on_m), f(bias_correction2), f(eps), f(l2), f(decay)
    )  # fmt: skip
    for i in range(p.size):
        pi, gi, mi, vi = adam_moments(p, g, m, v, i, c1, b2, c2, l2, l2_, decay, decay_)
        d = np.sqrt(vi / bc2) + eps_
        pi = pi - on_g_ * (gi / d)
        p[i] = pi - on_m_ * (mi / d)
