"""Activation layers: thin modules over the activation ops, for use in Sequential."""

from __future__ import annotations

from typing import Any

from ..autograd import functional as _fn
from ..autograd import ops
from ..autograd.tensor import Tensor
from . import functional as F  # noqa: N812
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
    """x * Phi(x) with Phi the standard normal CDF: exact, or ``approximate="tanh"``.

    >>> import gradwell as gw
    >>> gw.nn.GELU()(gw.tensor([0.0]))
    tensor([0.])
    """

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh'; got {approximate!r}")
        self.approximate = approximate

    def forward(self, x: Any) -> Tensor:
        return ops.gelu(x) if self.approximate == "none" else F.gelu_tanh(x)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


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


class _Elementwise(Module):
    """An activation without parameters: ``fn`` of nn.functional, with fixed arguments."""

    fn: Any = None

    def __init__(self, **options: float) -> None:
        super().__init__()
        self.options = {k: float(v) for k, v in options.items()}

    def forward(self, x: Any) -> Tensor:
        return type(self).fn(x, **self.options)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.options.items())


class SiLU(_Elementwise):
    """x * sigmoid(x)."""

    fn = staticmethod(F.silu)

    def __init__(self) -> None:
        super().__init__()


class SELU(_Elementwise):
    """Self-normalising ELU: scale * elu(x, alpha), PyTorch's constants."""

    fn = staticmethod(F.selu)

    def __init__(self) -> None:
        super().__init__()


class CELU(_Elementwise):
    """x for x > 0, else alpha * (exp(x / alpha) - 1)."""

    fn = staticmethod(F.celu)

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__(alpha=alpha)


class Mish(_Elementwise):
    """x * tanh(softplus(x))."""

    fn = staticmethod(F.mish)

    def __init__(self) -> None:
        super().__init__()


class Hardtanh(_Elementwise):
    """x limited to [min_val, max_val]."""

    fn = staticmethod(F.hardtanh)

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0) -> None:
        super().__init__(min_val=min_val, max_val=max_val)


class ReLU6(_Elementwise):
    """x limited to [0, 6]."""

    fn = staticmethod(F.relu6)

    def __init__(self) -> None:
        super().__init__()


class Hardsigmoid(_Elementwise):
    """x / 6 + 1/2 limited to [0, 1]."""

    fn = staticmethod(F.hardsigmoid)

    def __init__(self) -> None:
        super().__init__()


class Hardswish(_Elementwise):
    """x * hardsigmoid(x)."""

    fn = staticmethod(F.hardswish)

    def __init__(self) -> None:
        super().__init__()


class Softsign(_Elementwise):
    """x / (1 + |x|)."""

    fn = staticmethod(F.softsign)

    def __init__(self) -> None:
        super().__init__()


class LogSigmoid(_Elementwise):
    """log(sigmoid(x)), stable."""

    fn = staticmethod(F.logsigmoid)

    def __init__(self) -> None:
        super().__init__()


class LogSoftmax(Module):
    """x - logsumexp(x) along ``dim`` (PyTorch's name; ``axis`` too): log-probabilities."""

    def __init__(self, dim: int = -1, *, axis: int | None = None) -> None:
        super().__init__()
        self.axis = dim if axis is None else axis

    def forward(self, x: Any) -> Tensor:
        return _fn.log_softmax(x, self.axis)

    def extra_repr(self) -> str:
        return f"axis={self.axis}"
