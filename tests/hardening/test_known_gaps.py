"""Gaps found by the fuzz tests in files the engine redesign rewrites (autograd/ops.py).

Each is marked xfail(strict=True): when the redesign closes it, the test passes, strict
makes that a failure, and the marker must go, so the test then guards the fix.
"""

from __future__ import annotations

import numpy as np
import pytest

import gradwell as gw

EMPTY_MEAN = "mean's VJP divides by the element count, 0 for an empty tensor"
RAW_OBJECTS = "primitive ops take raw object arrays as they are (np.asarray)"


@pytest.mark.xfail(strict=True, raises=ZeroDivisionError, reason=EMPTY_MEAN)
def test_the_gradient_of_an_empty_mean():
    x = gw.tensor(np.zeros(0, np.float32), requires_grad=True)
    with np.errstate(invalid="ignore"):
        gw.mean(x).backward()
    assert x.grad is not None and x.grad.shape == (0,)


@pytest.mark.xfail(strict=True, raises=ZeroDivisionError, reason=RAW_OBJECTS)
def test_a_raw_object_array_given_to_an_op_is_refused():
    with pytest.raises(TypeError, match="expected numbers"):
        gw.div(np.array([1, None], dtype=object), gw.tensor(0.0))
