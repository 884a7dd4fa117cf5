"""Reverse-mode automatic differentiation over a dynamic graph (numpy only)."""

from . import functional, ops, recording
from .anomaly import AnomalyError, detect_anomaly
from .creation import (
    arange,
    eye,
    from_numpy,
    full,
    full_like,
    linspace,
    manual_seed,
    ones,
    ones_like,
    rand,
    randint,
    randn,
    tensor,
    zeros,
    zeros_like,
)
from .engine import grad
from .gradcheck import GradcheckError, gradcheck
from .recording import (
    Tape,
    enable_grad,
    is_grad_enabled,
    no_grad,
    observe,
    record,
    set_grad_enabled,
)
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
    "from_numpy",
    "full",
    "full_like",
    "functional",
    "grad",
    "gradcheck",
    "is_grad_enabled",
    "linspace",
    "manual_seed",
    "no_grad",
    "observe",
    "ones",
    "ones_like",
    "ops",
    "rand",
    "randint",
    "randn",
    "record",
    "recording",
    "set_grad_enabled",
    "tensor",
    "zeros",
    "zeros_like",
]
