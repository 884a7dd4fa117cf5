"""Adagrad: per-coordinate learning rates from the sum of all past squared gradients."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from .._jit import jit
from .optimizer import Optimizer, check_lr, check_range, new_state_array, update


class Adagrad(Optimizer):
    r"""Adagrad, PyTorch's update rule.

    For each parameter :math:`\theta` with gradient :math:`g`, at its step ``t`` (from 1)::

        lr_t <- lr / (1 + (t - 1) * lr_decay)
        g <- g + weight_decay * theta          if weight_decay != 0
        s <- s + g * g                         (s starts at initial_accumulator_value)
        theta <- theta - lr_t * g / (sqrt(s) + eps)

    State names follow PyTorch: ``step``, ``sum``.

    >>> import gradwell as gw
    >>> w = gw.tensor([1.0], requires_grad=True)
    >>> opt = gw.optim.Adagrad([w], lr=0.1)
    >>> w.grad = gw.tensor([3.0])
    >>> opt.step()  # s = 9, so the step is 0.1 * 3 / 3
    >>> round(w.item(), 6)
    0.9
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
    ) -> None:
        defaults = dict(
            lr=lr,
            lr_decay=lr_decay,
            weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value,
            eps=eps,
        )
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any], where: str) -> None:
        check_lr(group, where)
        check_range(group, "lr_decay", where)
        check_range(group, "weight_decay", where)
        check_range(group, "initial_accumulator_value", where)
        check_range(group, "eps", where)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One Adagrad update of every parameter that has a gradient."""
        loss = self._evaluate(closure)
        for group in self.param_groups:
            lr = float(group["lr"])
            lr_decay = float(group["lr_decay"])
            weight_decay = float(group["weight_decay"])
            eps = float(group["eps"])
            for p, data, g in self._with_grad(group):
                state = self.state.get(p)
                if state is None:
                    init = float(group["initial_accumulator_value"])
                    state = self.state[p] = {"step": 0, "sum": new_state_array(data, init)}
                t = state["step"] = state["step"] + 1
                clr = lr / (1.0 + (t - 1) * lr_decay)
                s = state["sum"]
                update(_adagrad_loop, data, g.ravel(), s.ravel(), clr, eps, weight_decay)
        return loss


@jit
def _adagrad_loop(
    p: np.ndarray, g: np.ndarray, s: np.ndarray, clr: float, eps: float, weight_decay: float
) -> None:
    """The Adagrad rule in one pass over flat arrays."""
    f = p.dtype.type
    clr_, eps_, wd = f(clr), f(eps), f(weight_decay)
    for i in range(p.size):
        gi = g[i]
        if weight_decay != 0:
            gi = gi + wd * p[i]
        si = s[i] + gi * gi
        s[i] = si
        p[i] = p[i] - clr_ * (gi / (np.sqrt(si) + eps_))
