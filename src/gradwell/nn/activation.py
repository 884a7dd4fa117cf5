"""Activation layers: thin modules over the activation ops, for use in Sequential."""

from __future__ import annotations

from typing import Any

from ..autograd import functional as _fn
from ..autograd import ops
from ..autograd.tensor import Tensor
from .module import Module


class ReLU(Module):
    """max(x, 0), the default activation. Convention: relu'(0) = 0.

    >>> import gradwell as gw
    >>> gw.nn.ReLU()(gw.tensor([-1.0, 2.0]))
    tensor([0., 2.])
    """

    def forward(self, x: Any) -> Tensor:
        return ops.relu(x)


class LeakyReLU(Module):
    """x for x > 0, else negative_slope * x: no unit can die.

    >>> import gradwell as gw
    >>> gw.nn.LeakyReLU(0.1)(gw.tensor([-1.0, 2.0]))
    tensor([-0.1,  2. ])
    """

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = float(negative_slope)

    def forward(self, x: Any) -> Tensor:
        return ops.leaky_relu(x, negative_slope=self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class ELU(Module):
    """x for x > 0, else alpha * (exp(x) - 1).

    >>> import gradwell as gw
    >>> gw.nn.ELU()(gw.tensor([0.0, 2.0]))
    tensor([0., 2.])
    """

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = float(alpha)

    def forward(self, x: Any) -> Tensor:
        return ops.elu(x, alpha=self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class GELU(Module):
    """x * Phi(x) with Phi the standard normal CDF (the exact form).

    >>> import gradwell as gw
    >>> gw.nn.GELU()(gw.tensor([0.0]))
    tensor([0.])
    """

    def forward(self, x: Any) -> Tensor:
        return ops.gelu(x)


class Sigmoid(Module):
    """The logistic function 1 / (1 + exp(-x)).

    >>> import gradwell as gw
    >>> gw.nn.Sigmoid()(gw.tensor([0.0]))
    tensor([0.5])
    """

    def forward(self, x: Any) -> Tensor:
        return ops.sigmoid(x)


class Tanh(Module):
    """Hyperbolic tangent.

    >>> import gradwell as gw
    >>> gw.nn.Tanh()(gw.tensor([0.0]))
    tensor([0.])
    """

    def forward(self, x: Any) -> Tensor:
        return ops.tanh(x)


class Softplus(Module):
    """log(1 + exp(beta * x)) / beta, linear where beta * x > threshold.

    >>> import gradwell as gw
    >>> round(gw.nn.Softplus()(gw.tensor([0.0])).item(), 4)
    0.6931
    """

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        super().__init__()
        self.beta = float(beta)
        self.threshold = float(threshold)

    def forward(self, x: Any) -> Tensor:
        return ops.softplus(x, beta=self.beta, threshold=self.threshold)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


class Softmax(Module):
    """exp(x) / sum(exp(x)) along ``axis``. For training, feed logits to CrossEntropyLoss
    instead (it fuses the softmax and is stable).

    >>> import gradwell as gw
    >>> gw.nn.Softmax()(gw.tensor([[0.0, 0.0]]))
    tensor([[0.5, 0.5]])
    """

    def __init__(self, axis: int = -1) -> None:
        super().__init__()
        self.axis = axis

    def forward(self, x: Any) -> Tensor:
        return _fn.softmax(x, self.axis)

    def extra_repr(self) -> str:
        return f"axis={self.axis}"
