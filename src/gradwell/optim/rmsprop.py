"""RMSprop: divide the gradient by a running root mean square of recent gradients."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from .._jit import jit
from .optimizer import Optimizer, check_bool, check_lr, check_range, update


class RMSprop(Optimizer):
    r"""RMSprop, PyTorch's update rule (eps added after the square root).

    For each parameter :math:`\theta` with gradient :math:`g`::

        g <- g + weight_decay * theta                 if weight_decay != 0
        v <- alpha * v + (1 - alpha) * g * g
        if centered:
            g_avg <- g_avg + (1 - alpha) * (g - g_avg)
            denom <- sqrt(v - g_avg * g_avg) + eps
        else:
            denom <- sqrt(v) + eps
        if momentum > 0:
            b <- momentum * b + g / denom
            theta <- theta - lr * b
        else:
            theta <- theta - lr * g / denom

    ``v``, ``g_avg`` and ``b`` start at zero. State names follow PyTorch:
    ``step``, ``square_avg``, ``grad_avg``, ``momentum_buffer``.

    >>> import gradwell as gw
    >>> w = gw.tensor([1.0], requires_grad=True)
    >>> opt = gw.optim.RMSprop([w], lr=0.01)
    >>> w.grad = gw.tensor([2.0])
    >>> opt.step()  # v = 0.01 * 4, so the step is 0.01 * 2 / 0.2
    >>> round(w.item(), 5)
    0.9
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            alpha=alpha,
            eps=eps,
            weight_decay=weight_decay,
            momentum=momentum,
            centered=centered,
        )
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any], where: str) -> None:
        check_lr(group, where)
        check_range(group, "alpha", where, 0.0, 1.0)
        check_range(group, "eps", where)
        check_range(group, "weight_decay", where)
        check_range(group, "momentum", where)
        check_bool(group, "centered", where)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One RMSprop update of every parameter that has a gradient."""
        loss = self._evaluate(closure)
        for group in self.param_groups:
            lr = float(group["lr"])
            alpha = float(group["alpha"])
            eps = float(group["eps"])
            weight_decay = float(group["weight_decay"])
            momentum = float(group["momentum"])
            centered = group["centered"]
            for p, data, g in self._with_grad(group):
                state, _ = self._begin_step(p, data, "square_avg")
                v = state["square_avg"]
                g_avg = buf = v  # placeholders the update does not touch
                if centered:
                    g_avg = state.get("grad_avg")
                    if g_avg is None:
                        g_avg = state["grad_avg"] = np.zeros(data.shape, data.dtype)
                if momentum > 0:
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        buf = state["momentum_buffer"] = np.zeros(data.shape, data.dtype)
                update(
                    _rmsprop_loop, data, g.ravel(), v.ravel(), g_avg.ravel(), buf.ravel(),
                    lr, alpha, eps, weight_decay, momentum, centered,
                )  # fmt: skip
        return loss


@jit
def _rmsprop_loop(
    p: np.ndarray,
    g: np.ndarray,
    v: np.ndarray,
    g_avg: np.ndarray,
    buf: np.ndarray,
    lr: float,
    alpha: float,
    eps: float,
    weight_decay: float,
    momentum: float,
    centered: bool,
) -> None:
    """The RMSprop rule in one pass over flat arrays."""
    f = p.dtype.type
    lr_, a_, c_, eps_ = f(lr), f(alpha), f(1.0 - alpha), f(eps)
    wd, mu = f(weight_decay), f(momentum)
    for i in range(p.size):
        gi = g[i]
        if weight_decay != 0:
            gi = gi + wd * p[i]
        vi = a_ * v[i] + c_ * (gi * gi)
        v[i] = vi
        if centered:
            ga = g_avg[i]
            ga = ga + c_ * (gi - ga)
            g_avg[i] = ga
            vi = vi - ga * ga
        denom = np.sqrt(vi) + eps_
        if momentum > 0:
            bi = mu * buf[i] + gi / denom
            buf[i] = bi
            p[i] = p[i] - lr_ * bi
        else:
            p[i] = p[i] - lr_ * (gi / denom)
