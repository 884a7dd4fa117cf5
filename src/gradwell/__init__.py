"""gradwell: train neural networks with automatic backpropagation and a training doctor.

>>> import gradwell as gw
>>> x = gw.tensor([1.0, 2.0], requires_grad=True)
>>> (x * x).sum().backward()
>>> x.grad
tensor([2., 4.])
"""

from .autograd import (
    AnomalyError,
    GradcheckError,
    Tensor,
    arange,
    detect_anomaly,
    enable_grad,
    eye,
    full,
    grad,
    gradcheck,
    is_grad_enabled,
    no_grad,
    ones,
    ones_like,
    rand,
    randn,
    tensor,
    zeros,
    zeros_like,
)
from .autograd.functional import (
    broadcast_to,
    clip,
    concatenate,
    elu,
    flatten,
    leaky_relu,
    log_softmax,
    logsumexp,
    max,
    mean,
    min,
    permute,
    reshape,
    softmax,
    softplus,
    squeeze,
    stack,
    std,
    sum,
    transpose,
    unsqueeze,
    var,
)
from .autograd.ops import (
    abs,
    add,
    div,
    eq,
    erf,
    exp,
    ge,
    gelu,
    gt,
    isfinite,
    le,
    log,
    log1p,
    lt,
    matmul,
    maximum,
    minimum,
    mul,
    ne,
    neg,
    pow,
    relu,
    sigmoid,
    sqrt,
    sub,
    tanh,
    where,
)

__version__ = "0.1.0"

__all__ = [
    "AnomalyError", "GradcheckError", "Tensor", "__version__", "abs", "add", "arange",
    "broadcast_to", "clip", "concatenate", "detect_anomaly", "div", "elu", "enable_grad", "eq",
    "erf", "exp", "eye", "flatten", "full", "ge", "gelu", "grad", "gradcheck", "gt",
    "is_grad_enabled", "isfinite", "le", "leaky_relu", "log", "log1p", "log_softmax",
    "logsumexp", "lt", "matmul", "max", "maximum", "mean", "min", "minimum", "mul", "ne", "neg",
    "no_grad", "ones", "ones_like", "permute", "pow", "rand", "randn", "relu", "reshape",
    "sigmoid", "softmax", "softplus", "sqrt", "squeeze", "stack", "std", "sub", "sum", "tanh",
    "tensor", "transpose", "unsqueeze", "var", "where", "zeros", "zeros_like",
]
