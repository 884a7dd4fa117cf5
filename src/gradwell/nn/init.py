"""Weight initialisation: fill a tensor in place (``gw.nn.init``).

For a weight of shape (out_features, in_features), ``fan_in = in_features`` and
``fan_out = out_features`` (for more axes, each is multiplied by the product of
the trailing axes). Every function takes the tensor (or a numpy array) and
``rng`` (a seed or a numpy Generator), fills it in place and returns it.

* He / Kaiming (ReLU family, the default of :class:`~gradwell.nn.Linear`):
  ``std = gain / sqrt(fan)`` with ``gain = sqrt(2)`` for ReLU, so the variance of
  the activations stays constant through ReLU layers.
* Glorot / Xavier (tanh, sigmoid): ``std = gain * sqrt(2 / (fan_in + fan_out))``.

>>> import gradwell as gw
>>> w = gw.nn.init.kaiming_normal_(gw.zeros(256, 512), rng=0)
>>> round(float(w.numpy().std()) * 512 ** 0.5, 1)   # close to sqrt(2) = 1.41
1.4
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ..autograd.creation import _rng
from ..autograd.tensor import Tensor

__all__ = [
    "calculate_gain",
    "constant_",
    "kaiming_normal_",
    "kaiming_uniform_",
    "normal_",
    "orthogonal_",
    "trunc_normal_",
    "ones_",
    "uniform_",
    "xavier_normal_",
    "xavier_uniform_",
    "zeros_",
]


def _array(tensor: Any) -> np.ndarray:
    arr = tensor.data if isinstance(tensor, Tensor) else tensor
    if not isinstance(arr, np.ndarray) or arr.dtype.kind != "f":
        raise TypeError(
            f"init: expected a floating-point Tensor or numpy array to fill; got "
            f"{type(tensor).__name__}"
            + (f" of dtype {arr.dtype}" if isinstance(arr, np.ndarray) else "")
        )
    return arr


def _fill_uniform(arr: np.ndarray, low: float, high: float, rng: Any) -> None:
    gen = _rng(rng)
    if arr.dtype in (np.float32, np.float64) and arr.flags.c_contiguous:
        gen.random(dtype=arr.dtype, out=arr)  # drawn straight into the tensor, in its own dtype
    else:
        arr[...] = gen.random(arr.shape)
    arr *= high - low
    arr += low


def _fill_normal(arr: np.ndarray, mean: float, std: float, rng: Any) -> None:
    gen = _rng(rng)
    if arr.dtype in (np.float32, np.float64) and arr.flags.c_contiguous:
        gen.standard_normal(dtype=arr.dtype, out=arr)
    else:
        arr[...] = gen.standard_normal(arr.shape)
    arr *= std
    arr += mean


def calculate_gain(nonlinearity: str = "relu", param: float | None = None) -> float:
    """The gain that keeps activation variance stable through ``nonlinearity``.

    linear, sigmoid: 1; tanh: 5/3; relu: sqrt(2); leaky_relu: sqrt(2 / (1 + slope**2))
    (slope ``param``, default 0.01); selu: 3/4.
    """
    if nonlinearity in ("linear", "identity", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3.0
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1.0 + slope * slope))
    if nonlinearity == "selu":
        return 0.75
    raise ValueError(
        f"calculate_gain: unknown nonlinearity {nonlinearity!r}; expected one of "
        "linear, identity, sigmoid, tanh, relu, leaky_relu, selu"
    )


def _fans(arr: np.ndarray, who: str) -> tuple[int, int]:
    if arr.ndim < 2:
        raise ValueError(
            f"{who}: fan_in and fan_out need a tensor with at least 2 axes "
            f"(out_features, in_features, ...); got shape {arr.shape}"
        )
    receptive = int(np.prod(arr.shape[2:])) if arr.ndim > 2 else 1
    return arr.shape[1] * receptive, arr.shape[0] * receptive


def _kaiming_std(arr: np.ndarray, a: float, mode: str, nonlinearity: str, who: str) -> float:
    fan_in, fan_out = _fans(arr, who)
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"{who}: mode must be 'fan_in' or 'fan_out'; got {mode!r}")
    fan = fan_in if mode == "fan_in" else fan_out
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(
    tensor: Any, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "relu", rng: Any = None
) -> Any:
    """He uniform: U(-bound, bound), ``bound = gain * sqrt(3 / fan)``, i.e. std gain / sqrt(fan).

    ``gain = calculate_gain(nonlinearity, a)``: sqrt(2) for ReLU; ``a`` is the negative
    slope of a LeakyReLU. ``mode`` "fan_in" keeps forward activations' variance, "fan_out"
    the backward gradients'.
    """
    arr = _array(tensor)
    bound = math.sqrt(3.0) * _kaiming_std(arr, a, mode, nonlinearity, "kaiming_uniform_")
    _fill_uniform(arr, -bound, bound, rng)
    return tensor


def kaiming_normal_(
    tensor: Any, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "relu", rng: Any = None
) -> Any:
    """He normal: N(0, std**2) with ``std = gain / sqrt(fan)`` (sqrt(2 / fan_in) for ReLU)."""
    arr = _array(tensor)
    _fill_normal(arr, 0.0, _kaiming_std(arr, a, mode, nonlinearity, "kaiming_normal_"), rng)
    return tensor


def xavier_uniform_(tensor: Any, gain: float = 1.0, rng: Any = None) -> Any:
    """Glorot uniform: U(-bound, bound), ``bound = gain * sqrt(6 / (fan_in + fan_out))``."""
    arr = _array(tensor)
    fan_in, fan_out = _fans(arr, "xavier_uniform_")
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    _fill_uniform(arr, -bound, bound, rng)
    return tensor


def xavier_normal_(tensor: Any, gain: float = 1.0, rng: Any = None) -> Any:
    """Glorot normal: N(0, std**2), ``std = gain * sqrt(2 / (fan_in + fan_out))``."""
    arr = _array(tensor)
    fan_in, fan_out = _fans(arr, "xavier_normal_")
    _fill_normal(arr, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), rng)
    return tensor


def normal_(tensor: Any, mean: float = 0.0, std: float = 1.0, rng: Any = None) -> Any:
    """Fill with samples of N(mean, std**2)."""
    if std < 0:
        raise ValueError(f"normal_: std must be >= 0; got {std}")
    _fill_normal(_array(tensor), mean, std, rng)
    return tensor


def uniform_(tensor: Any, a: float = 0.0, b: float = 1.0, rng: Any = None) -> Any:
    """Fill with samples of U(a, b)."""
    if not a <= b:
        raise ValueError(f"uniform_: need a <= b; got a={a}, b={b}")
    _fill_uniform(_array(tensor), a, b, rng)
    return tensor


def constant_(tensor: Any, val: float, rng: Any = None) -> Any:
    """Fill with ``val`` (``rng`` is accepted and unused, so every init has one signature)."""
    _array(tensor).fill(val)
    return tensor


def zeros_(tensor: Any, rng: Any = None) -> Any:
    """Fill with 0."""
    return constant_(tensor, 0.0)


def ones_(tensor: Any, rng: Any = None) -> Any:
    """Fill with 1."""
    return constant_(tensor, 1.0)


def orthogonal_(tensor: Any, gain: float = 1.0, rng: Any = None) -> Any:
    """Fill with a (semi-)orthogonal matrix times ``gain``: rows (or columns, whichever
    are fewer) orthonormal, the axes after the first flattened (Saxe et al.)."""
    arr = _array(tensor)
    if arr.ndim < 2:
        raise ValueError(f"orthogonal_: needs at least 2 dimensions; got shape {arr.shape}")
    rows, cols = arr.shape[0], arr.size // arr.shape[0]
    flat = _rng(rng).standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(flat)
    q *= np.sign(np.diag(r))  # a uniformly distributed orthogonal matrix (Mezzadri)
    arr[...] = (gain * (q if rows >= cols else q.T)).reshape(arr.shape)
    return tensor


def trunc_normal_(
    tensor: Any,
    mean: float = 0.0,
    std: float = 1.0,
    a: float = -2.0,
    b: float = 2.0,
    rng: Any = None,
) -> Any:
    """Fill with N(mean, std**2) samples truncated to [a, b] (absolute bounds, as
    PyTorch), by inverting the normal CDF on the bounds' probability interval."""
    if not a < b or std < 0:
        raise ValueError(f"trunc_normal_: need a < b and std >= 0; got a={a}, b={b}, std={std}")
    from scipy.special import ndtr, ndtri

    arr = _array(tensor)
    lo, hi = ndtr((a - mean) / std), ndtr((b - mean) / std)
    u = _rng(rng).uniform(lo, hi, arr.shape)
    arr[...] = np.clip(mean + std * ndtri(u), a, b)
    return tensor


# Initialisers by the names layers accept for ``init=``.
BY_NAME: dict[str, Callable[..., Any]] = {
    "kaiming": kaiming_uniform_,
    "kaiming_uniform": kaiming_uniform_,
    "kaiming_normal": kaiming_normal_,
    "he": kaiming_uniform_,
    "xavier": xavier_uniform_,
    "xavier_uniform": xavier_uniform_,
    "xavier_normal": xavier_normal_,
    "glorot": xavier_uniform_,
}
