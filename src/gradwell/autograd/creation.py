"""Making tensors: from data, filled, ranges and random."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._numeric import numeric_array
from .tensor import Tensor

DEFAULT_FLOAT = np.dtype(np.float32)


def _dtype(dtype: Any) -> np.dtype:
    return DEFAULT_FLOAT if dtype is None else np.dtype(dtype)


# The stream gw.manual_seed starts: None until it is called (then each Generator made
# without a seed is drawn from it, in order, so a whole run is repeatable).
_global_seed: list[np.random.SeedSequence | None] = [None]
_seed_generation = [0]


def manual_seed(seed: int) -> None:
    """Seed every random choice made without an explicit ``rng``/``seed`` from now on:
    weight init, dropout masks, random tensors and data shuffling (as PyTorch's).

    >>> import gradwell as gw
    >>> gw.manual_seed(0); a = gw.randn(3)
    >>> gw.manual_seed(0); b = gw.randn(3)
    >>> bool((a == b).data.all())
    True
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise TypeError(f"manual_seed: expected a non-negative int; got {seed!r}")
    _global_seed[0] = np.random.SeedSequence(int(seed))
    _seed_generation[0] += 1


def seed_generation() -> int:
    """How many times gw.manual_seed was called: a module holding a generator drawn from
    its stream (Dropout without ``rng``) draws a new one when this moved."""
    return _seed_generation[0]


def fresh_seed() -> int:
    """A new integer seed: the next from gw.manual_seed's stream, else fresh entropy."""
    sequence = _global_seed[0]
    if sequence is None:
        entropy = np.random.SeedSequence().entropy
        assert isinstance(entropy, int)
        return entropy
    (child,) = sequence.spawn(1)
    return int(child.generate_state(2, np.uint64)[0] >> np.uint64(1))


def _rng(rng: Any) -> np.random.Generator:
    """A numpy Generator from a seed, a Generator, or None (gw.manual_seed's stream)."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(fresh_seed() if rng is None else rng)


def tensor(data: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A new leaf tensor holding a copy of ``data``.

    Float data becomes float32 unless ``dtype`` says otherwise (float64 on request);
    integer and boolean data keep their kind. Only floating tensors can require grad.

    >>> import gradwell as gw
    >>> gw.tensor([1.0, 2.0], requires_grad=True).dtype
    dtype('float32')
    """
    if isinstance(data, Tensor):
        data = data.data
    try:  # without the dtype first: cast to float, numpy would parse the text "1" as 1.0
        arr = np.array(data, copy=True)
    except ValueError:  # ragged rows: the error says so
        numeric_array(data, "gw.tensor")
        raise
    numeric_array(arr, "gw.tensor", "biufc")  # refuses text and objects
    if dtype is not None:
        arr = arr.astype(dtype, copy=False)
    if dtype is None and arr.dtype.kind == "f" and arr.dtype != DEFAULT_FLOAT:
        arr = arr.astype(DEFAULT_FLOAT)
    return _leaf(arr, requires_grad)


def _leaf(arr: np.ndarray, requires_grad: bool) -> Tensor:
    """A leaf tensor of ``arr``; only a real floating-point one can require grad."""
    if requires_grad and arr.dtype.kind != "f":
        raise TypeError(
            f"only floating-point tensors can require gradients; got dtype {arr.dtype} "
            "(pass dtype='float32' or float data)"
        )
    return Tensor(arr, requires_grad)


def zeros(*shape: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor of zeros."""
    return _leaf(np.zeros(_shape(shape), _dtype(dtype)), requires_grad)


def ones(*shape: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor of ones."""
    return _leaf(np.ones(_shape(shape), _dtype(dtype)), requires_grad)


def full(shape: Any, fill_value: float, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor filled with ``fill_value``."""
    return _leaf(np.full(_shape((shape,)), fill_value, _dtype(dtype)), requires_grad)


def zeros_like(t: Tensor, requires_grad: bool = False) -> Tensor:
    return _leaf(np.zeros_like(t.data), requires_grad)


def ones_like(t: Tensor, requires_grad: bool = False) -> Tensor:
    return _leaf(np.ones_like(t.data), requires_grad)


def arange(start: float, stop: float | None = None, step: float = 1, dtype: Any = None) -> Tensor:
    """Evenly spaced values in [start, stop); integer unless a float is involved."""
    arr = np.arange(start, stop, step) if stop is not None else np.arange(start)
    if dtype is not None:
        arr = arr.astype(dtype)
    elif arr.dtype.kind == "f":
        arr = arr.astype(DEFAULT_FLOAT)
    return Tensor(arr)


def eye(n: int, m: int | None = None, dtype: Any = None) -> Tensor:
    """The identity matrix (n x m)."""
    return Tensor(np.eye(n, m, dtype=_dtype(dtype)))


def randn(*shape: Any, rng: Any = None, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Standard normal samples; ``rng`` is a seed or a numpy Generator."""
    arr = _rng(rng).standard_normal(_shape(shape), dtype=np.float64).astype(_dtype(dtype))
    return _leaf(arr, requires_grad)


def rand(*shape: Any, rng: Any = None, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Uniform samples in [0, 1); ``rng`` is a seed or a numpy Generator."""
    arr = _rng(rng).random(_shape(shape), dtype=np.float64).astype(_dtype(dtype))
    return _leaf(arr, requires_grad)


def _shape(shape: tuple[Any, ...]) -> tuple[int, ...]:
    if len(shape) == 1 and not isinstance(shape[0], int):
        return tuple(shape[0])
    return tuple(shape)


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing ``array``'s memory and dtype (float64 stays float64, as PyTorch)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected a numpy array; got {type(array).__name__}")
    numeric_array(array, "gw.from_numpy", "biufc")
    return Tensor(array)


def full_like(
    t: Tensor, fill_value: float, dtype: Any = None, requires_grad: bool = False
) -> Tensor:
    """A tensor of ``t``'s shape (and dtype, unless given) filled with ``fill_value``."""
    return _leaf(np.full(t.shape, fill_value, t.dtype if dtype is None else dtype), requires_grad)


def linspace(start: float, end: float, steps: int, dtype: Any = None) -> Tensor:
    """``steps`` evenly spaced values from ``start`` to ``end``, both included."""
    return Tensor(np.linspace(start, end, steps, dtype=np.float64).astype(_dtype(dtype)))


def randint(
    low: int, high: int | None = None, size: Any = (), *, rng: Any = None, dtype: Any = None
) -> Tensor:
    """Random integers in [low, high) (in [0, low) when ``high`` is None), int64 by default."""
    if high is None:
        low, high = 0, low
    arr = _rng(rng).integers(
        low, high, size=_shape((size,)) if not isinstance(size, int) else (size,)
    )
    return Tensor(arr.astype(np.int64 if dtype is None else dtype))
