"""Argument checks shared by the layers: a clear error naming the layer and the argument."""

from __future__ import annotations

from typing import Any

import numpy as np


def positive_int(value: Any, name: str, who: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{who}: {name} must be a positive integer; got {value!r}")
    return int(value)
