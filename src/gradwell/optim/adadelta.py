"""Adadelta: steps sized by the running RMS of past steps over that of past gradients."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from .._jit import jit
from .optimizer import Optimizer, check_lr, check_range, update


class Adadelta(Optimizer):
    r"""Adadelta (Zeiler, 2012), PyTorch's update rule.

    For each parameter :math:`\theta` with gradient :math:`g`::

        g <- g + weight_decay * theta              if weight_decay != 0
        s <- rho * s + (1 - rho) * g * g
        delta <- sqrt(a + eps) / sqrt(s + eps) * g
        a <- rho * a + (1 - rho) * delta * delta
        theta <- theta - lr * delta

    State names follow PyTorch: ``step``, ``square_avg`` (s), ``acc_delta`` (a).

    >>> import gradwell as gw
    >>> w = gw.tensor([1.0], dtype="float64", requires_grad=True)
    >>> opt = gw.optim.Adadelta([w], rho=0.5, eps=1e-2)
    >>> w.grad = gw.tensor([1.0], dtype="float64")
    >>> opt.step()  # s = 0.5: delta = sqrt(0.01) / sqrt(0.51)
    >>> round(w.item(), 6)
    0.859972
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1.0,
        rho: float = 0.9,
        eps: float = 1e-6,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay))

    def _check_group(self, group: dict[str, Any], where: str) -> None:
        check_lr(group, where)
        check_range(group, "rho", where, 0.0, 1.0)
        check_range(group, "eps", where)
        check_range(group, "weight_decay", where)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One Adadelta update of every parameter that has a gradient."""
        loss = self._evaluate(closure)
        for group in self.param_groups:
            lr, rho = float(group["lr"]), float(group["rho"])
            eps, weight_decay = float(group["eps"]), float(group["weight_decay"])
            for p, data, g in self._with_grad(group):
                state, _ = self._begin_step(p, data, "square_avg", "acc_delta")
                update(_adadelta_loop, data, g.ravel(), state["square_avg"].ravel(),
                       state["acc_delta"].ravel(), lr, rho, eps, weight_decay)  # fmt: skip
        return loss


@jit
def _adadelta_loop(
    p: np.ndarray,
    g: np.ndarray,
    s: np.ndarray,
    a: np.ndarray,
    lr: float,
    rho: float,
    eps: float,
    weight_decay: float,
) -> None:
    """The Adadelta rule in one pass over flat arrays."""
    f = p.dtype.type
    rho_, c, eps_, wd, lr_ = f(rho), f(1.0 - rho), f(eps), f(weight_decay), f(lr)
    for i in range(p.size):
        gi = g[i]
        if weight_decay != 0:
            gi = gi + wd * p[i]
        si = rho_ * s[i] + c * (gi * gi)
        s[i] = si
        delta = np.sqrt(a[i] + eps_) / np.sqrt(si + eps_) * gi
        a[i] = rho_ * a[i] + c * (delta * delta)
        p[i] = p[i] - lr_ * delta
