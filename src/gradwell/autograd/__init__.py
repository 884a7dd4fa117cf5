"""Reverse-mode automatic differentiation over a dynamic graph (numpy only)."""

from . import functional, ops, recording
from .anomaly import AnomalyError, detect_anomaly
from .creation import arange, eye, full, ones, ones_like, rand, randn, tensor, zeros, zeros_like
from .engine import grad
from .gradcheck import GradcheckError, gradcheck
from .recording import Tape, enable_grad, is_grad_enabled, no_grad, observe, record
from .tensor import Tensor

__all__ = [
    "AnomalyError",
    "GradcheckError",
    "Tape",
    "Tensor",
    "arange",
    "detect_anomaly",
    "enable_grad",
    "eye",
    "full",
    "functional",
    "grad",
    "gradcheck",
    "is_grad_enabled",
    "no_grad",
    "observe",
    "ones",
    "ones_like",
    "ops",
    "rand",
    "randn",
    "record",
    "recording",
    "tensor",
    "zeros",
    "zeros_like",
]
