"""Reverse-mode automatic differentiation over a dynamic graph (numpy only)."""

from . import ops
from .anomaly import AnomalyError, detect_anomaly
from .creation import arange, eye, full, ones, ones_like, rand, randn, tensor, zeros, zeros_like
from .engine import enable_grad, grad, is_grad_enabled, no_grad
from .gradcheck import GradcheckError, gradcheck
from .tensor import Tensor

__all__ = [
    "AnomalyError",
    "GradcheckError",
    "Tensor",
    "arange",
    "detect_anomaly",
    "enable_grad",
    "eye",
    "full",
    "grad",
    "gradcheck",
    "is_grad_enabled",
    "no_grad",
    "ones",
    "ones_like",
    "ops",
    "rand",
    "randn",
    "tensor",
    "zeros",
    "zeros_like",
]
