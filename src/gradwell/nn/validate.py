"""Argument checks shared by the layers: a clear error naming the layer and the argument."""

from __future__ import annotations

from typing import Any

import numpy as np


def positive_int(value: Any, name: str, who: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{who}: {name} must be a positive integer; got {value!r}")
    return int(value)


def check_rate(rate: Any) -> float:
    """The dropout rate as a float, or a ValueError saying what a rate is."""
    try:
        value = float(rate)
    except (TypeError, ValueError):
        raise TypeError(f"dropout rate must be a number in [0, 1]; got {rate!r}") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError(
            f"dropout rate must be in [0, 1] (the fraction of units dropped: 0.0 keeps all, "
            f"1.0 drops all); got {rate!r}"
        )
    return value
