"""Compiled passes of the doctor's sampled steps (numba): each replaces a handful of
numpy calls that, on a small model, cost more in dispatch than in arithmetic. They
take arrays of any shape (flattened inside, so the caller makes no view)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._jit import jit as _jit
from .._jit import reassociating


@_jit
def relu_batch(a: Any, step: int, ever_positive: Any, last_alive: Any) -> Any:
    """Fold a batch of ReLU outputs ``a``, (examples, units, positions), into the unit
    statistics: a unit is one position-less output (positions 1) or a conv's channel,
    one unit over every position of its feature map.

    A unit is on in this batch when its largest output is above 0 (a NaN among its
    outputs makes that largest output NaN: not on, as with ``a.max(axis=0) > 0``);
    on units get ``ever_positive`` set and ``last_alive = step``. Returns (nonzero
    outputs, units on). The loop has no branch: about half of a ReLU layer's outputs
    are 0, in no pattern a branch predictor could learn (with branches it ran 11x
    slower on fresh outputs). The units are its innermost loop, which vectorises (with
    the positions innermost, a single one for a position-less output, it ran 4x slower
    on a 32 x 512 batch, 1.6x on conv maps).
    """
    n, units, positions = a.shape
    nonzero = 0
    seen = np.zeros(units, np.uint8)
    nan = np.zeros(units, np.uint8)
    for i in range(n):
        for k in range(positions):
            for j in range(units):
                v = a[i, j, k]
                nonzero += v != 0
                seen[j] |= v > 0
                nan[j] |= v != v
    on = 0
    for j in range(units):
        if seen[j] and not nan[j]:
            ever_positive[j] = True
            last_alive[j] = step
            on += 1
    return nonzero, on


@reassociating
def squares_and_change(before: Any, after: Any) -> Any:
    """(sum of before**2, sum of (after - before)**2) of two same-shaped arrays, in float64
    (reassociated, as sum_of_squares: in order, the two sums ran 10x slower)."""
    before, after = before.ravel(), after.ravel()  # views of contiguous arrays
    w2 = 0.0
    d2 = 0.0
    for i in range(before.size):
        b = np.float64(before[i])  # numba's float() keeps a float32 a float32
        d = np.float64(after[i]) - b
        w2 += b * b
        d2 += d * d
    return w2, d2


@reassociating
def sum_of_squares(a: Any) -> float:
    """Sum of an array's squares, accumulated in float64 (reassociated, so that the loop
    vectorises: inf and NaN still come out)."""
    a = a.ravel()
    total = 0.0
    for i in range(a.size):
        v = np.float64(a[i])  # squared in float64: a float32 square overflows past 1.8e19
        total += v * v
    return total


@reassociating
def total(a: Any) -> float:
    """Sum of an array, accumulated in float64 (reassociated, as above)."""
    a = a.ravel()
    result = 0.0
    for i in range(a.size):
        result += np.float64(a[i])
    return result
