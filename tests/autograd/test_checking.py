"""gradcheck itself, and the NaN trap."""

from __future__ import annotations

import numpy as np
import pytest

import gradwell as gw
from gradwell.autograd.ops import Primitive

# A deliberately wrong op, kept out of the registry: d(x*x)/dx claimed to be 3x.
_wrong_square = Primitive("wrong_square", lambda x: x * x, saves=False)
_wrong_square.defvjp(lambda F, g, out, ins, needs, attrs: (g * 3 * ins[0],))


def test_gradcheck_names_input_and_worst_element():
    x = gw.tensor([0.1, 5.0, 0.2], dtype="float64", requires_grad=True)
    with pytest.raises(gw.GradcheckError, match=r"input 0 .*element \(1,\).*analytic"):
        gw.gradcheck(_wrong_square, [x])
    assert gw.gradcheck(_wrong_square, [x], raise_exception=False) is False


def test_gradcheck_demands_float64():
    with pytest.raises(TypeError, match="float64"):
        gw.gradcheck(gw.tanh, [gw.tensor([1.0], requires_grad=True)])


def test_detect_anomaly_names_the_producing_op_not_the_ones_passing_it_on():
    x = gw.tensor([1.0, 0.0, 2.0], requires_grad=True)
    with pytest.raises(gw.AnomalyError, match="'log'") as info:
        with gw.detect_anomaly():
            y = x * 2
            z = gw.log(y)  # log(0) = -inf: the producer
            (z * 3).sum()  # passes it on
    a = info.value.anomaly
    assert a.op == "log" and a.phase == "forward"
    assert a.input_ranges[0] == (0.0, 4.0)
    assert "test_checking.py" in a.code and "gw.log(y)" in a.code


def test_detect_anomaly_records_without_raising_and_sees_backward():
    x = gw.tensor([0.0, 1.0], requires_grad=True)
    with gw.detect_anomaly(raise_error=False) as trap:
        y = gw.sqrt(x).sum()  # finite forward; d sqrt/dx at 0 is inf in backward
        y.backward()
    assert len(trap.anomalies) == 1
    assert (trap.anomalies[0].phase, trap.anomalies[0].op) == ("backward", "sqrt")
    assert not np.isfinite(x.grad.numpy()[0])


def test_anomaly_hooks_are_removed_after_the_block():
    with gw.detect_anomaly():
        assert gw.autograd.recording.observers
    assert not gw.autograd.recording.observers
