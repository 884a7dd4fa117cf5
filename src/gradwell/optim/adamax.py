"""Adamax: Adam with the infinity norm of past gradients in place of their RMS."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from .._jit import jit
from .optimizer import Optimizer, adam_hyperparameters, check_adam_group, update


class Adamax(Optimizer):
    r"""Adamax, PyTorch's update rule.

    For each parameter :math:`\theta` with gradient :math:`g`, at its step ``t`` (from 1)::

        g <- g + weight_decay * theta              if weight_decay != 0
        m <- m + (1 - beta1) * (g - m)
        u <- max(beta2 * u, |g| + eps)
        theta <- theta - lr / (1 - beta1^t) * m / u

    State names follow PyTorch: ``step``, ``exp_avg``, ``exp_inf``.

    >>> import gradwell as gw
    >>> w = gw.tensor([1.0], requires_grad=True)
    >>> opt = gw.optim.Adamax([w], lr=0.1)
    >>> w.grad = gw.tensor([4.0])
    >>> opt.step()  # m = 0.4, u = 4: the first step is lr against the gradient's sign
    >>> round(w.item(), 6)
    0.9
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    def _check_group(self, group: dict[str, Any], where: str) -> None:
        check_adam_group(group, where)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One Adamax update of every parameter that has a gradient."""
        loss = self._evaluate(closure)
        for group in self.param_groups:
            lr, beta1, beta2, eps, _, weight_decay = adam_hyperparameters(group, False)
            for p, data, g in self._with_grad(group):
                state, t = self._begin_step(p, data, "exp_avg", "exp_inf")
                clr = lr / (1.0 - beta1**t)
                update(_adamax_loop, data, g.ravel(), state["exp_avg"].ravel(),
                       state["exp_inf"].ravel(), clr, beta1, beta2, eps, weight_decay)  # fmt: skip
        return loss


@jit
def _adamax_loop(
    p: np.ndarray,
    g: np.ndarray,
    m: np.ndarray,
    u: np.ndarray,
    clr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
) -> None:
    """The Adamax rule in one pass over flat arrays."""
    f = p.dtype.type
    c1, b2, eps_, wd, clr_ = f(1.0 - beta1), f(beta2), f(eps), f(weight_decay), f(clr)
    for i in range(p.size):
        gi = g[i]
        if weight_decay != 0:
            gi = gi + wd * p[i]
        mi = m[i]
        mi = mi + c1 * (gi - mi)
        m[i] = mi
        ui = b2 * u[i]
        bound = np.abs(gi) + eps_
        if bound > ui or bound != bound:  # the maximum, NaN taken (torch.maximum's rule)
            ui = bound
        u[i] = ui
        p[i] = p[i] - clr_ * (mi / ui)
