"""Parameter: a tensor that a Module optimises."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..autograd.creation import tensor as _tensor
from ..autograd.tensor import Tensor


class Parameter(Tensor):
    """A leaf tensor that requires grad and that a :class:`Module` registers as learnable.

    ``Parameter(t)`` for a Tensor shares ``t``'s array (as PyTorch does); anything else is
    copied with :func:`gradwell.tensor`'s rules (float data becomes float32 unless
    ``dtype`` says otherwise). The data must be floating point.

    >>> import gradwell as gw
    >>> w = gw.nn.Parameter([[1.0, 2.0]])
    >>> w.requires_grad, w.is_leaf, w.dtype
    (True, True, dtype('float32'))
    """

    __slots__ = ()

    def __init__(self, data: Any, dtype: Any = None) -> None:
        if isinstance(data, Tensor):
            arr = data.data if dtype is None else data.data.astype(dtype, copy=False)
        else:
            arr = _tensor(data, dtype=dtype).data
        if arr.dtype.kind != "f":
            raise TypeError(
                f"a Parameter needs floating-point data (it is optimised by gradients); "
                f"got dtype {arr.dtype}"
            )
        super().__init__(np.asarray(arr), True)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()
