"""``pad``: widen the trailing axes of a tensor with a constant, a reflection or the edge value."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._numeric import numeric_array
from ..autograd import conv_ops, ops
from ..autograd.tensor import Tensor

_MODES = ("constant", "reflect", "replicate")


def _source_index(size: int, before: int, after: int, mode: str) -> np.ndarray:
    """For each output position along one axis, the input position it copies."""
    i = np.arange(-before, size + after)
    if mode == "replicate":
        return np.clip(i, 0, size - 1)
    i = np.abs(i)  # reflect: mirror around the first and last element, not repeating them
    return np.where(i > size - 1, 2 * (size - 1) - i, i)


def pad(x: Any, pad: Any, mode: str = "constant", value: float = 0.0) -> Tensor:
    """Pad the last ``len(pad) // 2`` axes, PyTorch's order: (last_before, last_after, ...).

    ``mode`` "constant" fills with ``value``; "reflect" mirrors (the edge is not repeated:
    each pad must be smaller than its axis); "replicate" repeats the edge value.

    >>> import gradwell as gw
    >>> pad(gw.tensor([[1.0, 2.0, 3.0]]), (2, 1), mode="reflect")
    tensor([[3., 2., 1., 2., 3., 2.]])
    """
    if not isinstance(x, Tensor):
        x = Tensor(numeric_array(x, "pad input"))
    widths = tuple(int(p) for p in pad)
    if len(widths) % 2 or len(widths) // 2 > x.ndim or any(w < 0 for w in widths):
        raise ValueError(
            f"pad: expected an even number of non-negative widths, at most 2 per axis of the "
            f"{x.ndim}-d input; got {tuple(pad)}"
        )
    if mode not in _MODES:
        raise ValueError(f"pad: mode must be one of {_MODES}; got {mode!r}")
    pairs = [(0, 0)] * x.ndim
    for k in range(len(widths) // 2):
        pairs[x.ndim - 1 - k] = (widths[2 * k], widths[2 * k + 1])
    if mode == "constant":
        return conv_ops.pad(x, widths=tuple(pairs), value=value)
    out = x
    for axis, (before, after) in enumerate(pairs):
        if not before and not after:
            continue
        size = x.shape[axis]
        if mode == "reflect" and (before >= size or after >= size):
            raise ValueError(
                f"pad: reflect padding ({before}, {after}) must be smaller than the axis "
                f"{axis} of size {size}"
            )
        index = (slice(None),) * axis + (_source_index(size, before, after, mode),)
        out = ops.getitem(out, index=index)
    return out
