"""Checking analytic gradients against central differences in float64."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .engine import grad
from .tensor import Tensor


class GradcheckError(AssertionError):
    pass


def gradcheck(
    fn: Callable[..., Tensor],
    inputs: Sequence[Tensor] | Tensor,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-4,
    *,
    projections: int = 2,
    seed: int = 0,
    raise_exception: bool = True,
) -> bool:
    """Compare ``fn``'s backward with float64 central differences.

    Every input that requires grad is checked element by element. A non-scalar
    output is reduced with a few fixed random weightings ``sum(w * fn(...))``,
    which checks the whole vector-Jacobian product. On a mismatch it says which
    input and which element is worst, with both values.

    >>> import gradwell as gw
    >>> x = gw.tensor([0.3, -1.2], dtype="float64", requires_grad=True)
    >>> gw.gradcheck(gw.tanh, [x])
    True
    """
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    for i, t in enumerate(inputs):
        if t.requires_grad and t.dtype != np.float64:
            raise TypeError(
                f"gradcheck: input {i} is {t.dtype}; central differences need float64 inputs"
            )
    checked = [i for i, t in enumerate(inputs) if t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad")
    rng = np.random.default_rng(seed)
    out_shape = fn(*inputs).shape
    for _ in range(projections if out_shape else 1):
        w = rng.standard_normal(out_shape) if out_shape else np.float64(1.0)

        def scalar(*xs: Tensor, w: Any = w) -> Tensor:
            return (fn(*xs) * Tensor(np.asarray(w))).sum()

        analytic = grad(scalar(*inputs), [inputs[i] for i in checked], allow_unused=True)
        for i, a in zip(checked, analytic):
            numeric = _numeric_grad(scalar, inputs, i, eps)
            a_arr = np.zeros_like(numeric) if a is None else a.data
            failure = _worst(i, a_arr, numeric, atol, rtol)
            if failure:
                if raise_exception:
                    raise GradcheckError(failure)
                return False
    return True


def _numeric_grad(scalar: Callable[..., Tensor], inputs: list[Tensor], i: int, eps: float):
    x = inputs[i].data
    out = np.zeros_like(x)
    flat, g = x.reshape(-1), out.reshape(-1)
    for k in range(flat.size):
        orig = flat[k]
        flat[k] = orig + eps
        hi = scalar(*inputs).item()
        flat[k] = orig - eps
        lo = scalar(*inputs).item()
        flat[k] = orig
        g[k] = (hi - lo) / (2 * eps)
    return out


def _worst(i: int, analytic: np.ndarray, numeric: np.ndarray, atol: float, rtol: float) -> str:
    if analytic.shape != numeric.shape:
        return (
            f"gradcheck: input {i}: gradient shape {analytic.shape} != input shape {numeric.shape}"
        )
    excess = np.abs(analytic - numeric) - (atol + rtol * np.abs(numeric))
    excess = np.where(np.isnan(excess), np.inf, excess)
    if not (excess > 0).any():
        return ""
    k = np.unravel_index(int(np.argmax(excess)), excess.shape)
    where = tuple(map(int, k))
    return (
        f"gradcheck: input {i} (shape {numeric.shape}) disagrees most at element {where}:"
        f" analytic {float(analytic[k])!r}, numeric {float(numeric[k])!r} "
        f"(allowed |difference| {atol + rtol * abs(numeric[k]):.3g})"
    )
