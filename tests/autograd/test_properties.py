"""Property tests: broadcasting gradients and accumulation over random shapes."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import gradwell as gw


@st.composite
def broadcastable_pair(draw):
    shapes = draw(
        hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=4)
    )
    a_shape, b_shape = shapes.input_shapes
    return a_shape, b_shape


@settings(max_examples=60, deadline=None)
@given(broadcastable_pair(), st.sampled_from(["add", "sub", "mul", "div"]))
def test_broadcast_gradients_sum_back_to_input_shapes(shapes, op):
    a_shape, b_shape = shapes
    rng = np.random.default_rng(0)
    a_val = rng.standard_normal(a_shape)
    b_val = np.abs(rng.standard_normal(b_shape)) + 0.5
    a = gw.tensor(a_val, dtype="float64", requires_grad=True)
    b = gw.tensor(b_val, dtype="float64", requires_grad=True)
    getattr(gw, op)(a, b).sum().backward()
    assert a.grad.shape == a_shape and b.grad.shape == b_shape
    out_shape = np.broadcast_shapes(a_shape, b_shape)
    ones = np.ones(out_shape)
    # d/da sum(op(a, b)) summed over broadcast copies, written per op from calculus
    local = {
        "add": (ones, ones),
        "sub": (ones, -ones),
        "mul": (np.broadcast_to(b_val, out_shape), np.broadcast_to(a_val, out_shape)),
        "div": (
            np.broadcast_to(1 / b_val, out_shape),
            -np.broadcast_to(a_val, out_shape) / np.broadcast_to(b_val, out_shape) ** 2,
        ),
    }[op]
    for t, full in zip((a, b), local):
        lead = full.ndim - t.ndim
        expected = full.sum(axis=tuple(range(lead))) if lead else full
        axes = tuple(i for i, s in enumerate(t.shape) if s == 1 and expected.shape[i] != 1)
        expected = expected.sum(axis=axes, keepdims=True) if axes else expected
        np.testing.assert_allclose(t.grad.numpy(), expected.reshape(t.shape), rtol=1e-10)


@settings(max_examples=30, deadline=None)
@given(hnp.array_shapes(min_dims=1, max_dims=3, max_side=4), st.integers(1, 4))
def test_k_backward_calls_accumulate_k_times_the_gradient(shape, k):
    x_val = np.random.default_rng(1).standard_normal(shape)
    x = gw.tensor(x_val, dtype="float64", requires_grad=True)
    for _ in range(k):
        (gw.tanh(x) * x).sum().backward()
    single = np.tanh(x_val) + x_val * (1 - np.tanh(x_val) ** 2)
    np.testing.assert_allclose(x.grad.numpy(), k * single, rtol=1e-10)
