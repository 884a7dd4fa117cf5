"""SGD: stochastic gradient descent with momentum, dampening, Nesterov and weight decay."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from .._jit import jit
from .optimizer import Optimizer, check_bool, check_lr, check_range, update


class SGD(Optimizer):
    r"""Stochastic gradient descent, PyTorch's update rule.

    For each parameter :math:`\theta` with gradient :math:`g`, at step :math:`t`::

        g <- -g                              if maximize
        g <- g + weight_decay * theta        if weight_decay != 0
        if momentum != 0:
            b <- g                           at t = 1 (no dampening on the first step)
            b <- momentum * b + (1 - dampening) * g    afterwards
            g <- g + momentum * b            if nesterov
            g <- b                           otherwise
        theta <- theta - lr * g

    ``nesterov`` needs ``momentum > 0`` and ``dampening == 0``.

    >>> import gradwell as gw
    >>> w = gw.tensor([1.0], requires_grad=True)
    >>> opt = gw.optim.SGD([w], lr=0.1, momentum=0.9)
    >>> (w * w).sum().backward()
    >>> opt.step()
    >>> round(w.item(), 6)
    0.8
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float,
        momentum: float = 0.0,
        dampening: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
        maximize: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            nesterov=nesterov,
            weight_decay=weight_decay,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any], where: str) -> None:
        check_lr(group, where)
        momentum = check_range(group, "momentum", where)
        dampening = check_range(group, "dampening", where, 0.0, 1.0)
        check_range(group, "weight_decay", where)
        check_bool(group, "maximize", where)
        if check_bool(group, "nesterov", where) and (momentum <= 0 or dampening != 0):
            raise ValueError(
                f"{where}: nesterov=True needs momentum > 0 and dampening = 0; got "
                f"momentum={momentum}, dampening={dampening}"
            )

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One SGD update of every parameter that has a gradient."""
        loss = self._evaluate(closure)
        for group in self.param_groups:
            lr = float(group["lr"])
            momentum = float(group["momentum"])
            dampening = float(group["dampening"])
            nesterov = group["nesterov"]
            weight_decay = float(group["weight_decay"])
            maximize = group["maximize"]
            for p, data, g in self._with_grad(group):
                buf = None
                first = False
                if momentum != 0:
                    state = self.state.get(p)
                    buf = None if state is None else state.get("momentum_buffer")
                    if buf is None:
                        buf = np.zeros(data.shape, data.dtype)
                        self.state[p] = {"momentum_buffer": buf}
                        first = True
                flat_g = g.ravel()
                update(
                    _sgd_loop, data, flat_g, flat_g if buf is None else buf.ravel(),
                    lr, momentum, dampening, nesterov, weight_decay, maximize, first,
                )  # fmt: skip
        return loss


@jit
def _sgd_loop(
    p: np.ndarray,
    g: np.ndarray,
    buf: np.ndarray,
    lr: float,
    momentum: float,
    dampening: float,
    nesterov: bool,
    weight_decay: float,
    maximize: bool,
    first: bool,
) -> None:
    """The SGD rule in one pass over flat arrays."""
    f = p.dtype.type
    lr_, mu, keep, wd = f(lr), f(momentum), f(1.0 - dampening), f(weight_decay)
    for i in range(p.size):
        d = g[i]
        if maximize:
            d = -d
        if weight_decay != 0:
            d = d + wd * p[i]
        if momentum != 0:
            bi = d if first else mu * buf[i] + keep * d
            buf[i] = bi
            d = d + mu * bi if nesterov else bi
        p[i] = p[i] - lr_ * d
