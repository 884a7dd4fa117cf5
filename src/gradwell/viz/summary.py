"""Short text for numbers and arrays, as drawn in graphs and on the explain page."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def number(v: Any) -> str:
    """A number to 4 significant digits, plain ASCII (``-0.3364``, ``1.5e-05``, ``nan``)."""
    v = float(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    text = f"{v:.4g}"
    return "0" if text == "-0" else text


def summarize(a: np.ndarray, max_items: int = 4) -> str:
    """The numbers of a small array, or mean/std/range of a larger one.

    >>> import numpy as np
    >>> summarize(np.array(0.25)), summarize(np.array([1.0, -2.0]))
    ('0.25', '[1, -2]')
    >>> summarize(np.arange(10.0))
    'mean 4.5 std 2.872 [0, 9]'
    """
    if a.size == 0:
        return "[]"
    if a.dtype.kind == "b":
        return f"{int(np.count_nonzero(a))} of {a.size} true"
    if a.size == 1:
        return number(a.reshape(()))
    flat = a.reshape(-1)
    if a.size <= max_items:
        return "[" + ", ".join(number(v) for v in flat) + "]"
    finite = np.isfinite(flat)
    bad = a.size - int(np.count_nonzero(finite))
    if bad:
        return f"{bad} of {a.size} not finite (nan/inf)"
    wide = flat.astype(np.float64)  # statistics of float16/32 data without overflow
    return (
        f"mean {number(wide.mean())} std {number(wide.std())} "
        f"[{number(wide.min())}, {number(wide.max())}]"
    )


def brief(summary: str, limit: int = 30) -> str:
    """A summary short enough for a node's box: ``mean 0.1 std 0.5 [-1, 2]`` -> ``μ 0.1 σ 0.5``."""
    if summary.startswith("mean "):
        parts = summary.split()
        return f"μ {parts[1]} σ {parts[3]}"
    return summary if len(summary) <= limit else summary[: limit - 1] + "…"


def shape_text(shape: tuple[int, ...]) -> str:
    """``(2, 3)``; a scalar's shape is ``()``."""
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
