"""Regression tests: gradients and values at the edges PyTorch defines (negative axes,
zero bases, 0-d and empty reductions, too few samples for a variance, integer inputs)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import gradwell as gw


def _x(shape, seed=0):
    data = np.random.default_rng(seed).standard_normal(shape)
    return gw.tensor(data, dtype="float64", requires_grad=True)


@pytest.mark.parametrize(
    "shape,axes", [((3, 3, 3), (-1, 0, 1)), ((3, 4, 5, 6), (-2, -1, 1, 0)), ((2, 3), (-1, -2))]
)
def test_permute_with_negative_axes_has_the_gradient_of_its_positive_spelling(shape, axes):
    positive = tuple(a % len(shape) for a in axes)
    w = np.random.default_rng(1).standard_normal(np.transpose(np.empty(shape), positive).shape)
    x, y = _x(shape), _x(shape)
    (x.permute(*axes) * gw.tensor(w, dtype="float64")).sum().backward()
    (y.permute(*positive) * gw.tensor(w, dtype="float64")).sum().backward()
    assert x.grad.shape == shape
    np.testing.assert_array_equal(x.grad.data, y.grad.data)
    assert gw.gradcheck(lambda a: a.transpose(axes), [_x(shape)])


@pytest.mark.parametrize("exponent", [0.0, 1.0, 2.0, 3.0])
def test_pow_at_a_zero_base_takes_the_limit(exponent):
    base = gw.tensor([0.0, 0.0], dtype="float64", requires_grad=True)
    power = gw.tensor([exponent, exponent], dtype="float64", requires_grad=True)
    (base**power).sum().backward()
    d_base = {0.0: 0.0, 1.0: 1.0, 2.0: 0.0, 3.0: 0.0}[exponent]  # b * 0 ** (b - 1)
    np.testing.assert_array_equal(base.grad.data, [d_base, d_base])
    np.testing.assert_array_equal(power.grad.data, [0.0, 0.0])  # d(0 ** b)/db, b >= 0


def test_x_to_the_zero_at_zero_and_zero_to_a_fraction():
    x = gw.tensor([0.0, 2.0], dtype="float64", requires_grad=True)
    (x**0).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [0.0, 0.0])
    b = gw.tensor(0.3, dtype="float64", requires_grad=True)
    (gw.tensor(0.0, dtype="float64") ** b).backward()
    assert b.grad.item() == 0.0


def test_pow_at_zero_base_second_order_is_finite():
    x = gw.tensor([0.0, 1.5], dtype="float64", requires_grad=True)
    (g,) = gw.grad((x**0.0 + x**2.0).sum(), [x], create_graph=True)
    (gg,) = gw.grad(g.sum(), [x])
    np.testing.assert_array_equal(gg.data, [2.0, 2.0])


def test_sign_has_a_zero_gradient():
    x = _x((3, 4))
    (gw.sign(x) * x).sum().backward()
    np.testing.assert_array_equal(x.grad.data, np.sign(x.data))


@pytest.mark.parametrize("reduce", ["sum", "mean", "max", "min", "logsumexp"])
@pytest.mark.parametrize("axis", [0, -1])
def test_reductions_of_a_0d_tensor_over_axis_0_and_minus_1(reduce, axis):
    x = gw.tensor(1.5, dtype="float64", requires_grad=True)
    out = getattr(x, reduce)(axis=axis)
    assert out.shape == ()
    out.backward()
    assert x.grad.shape == ()
    assert x.grad.item() == pytest.approx(1.0)


def test_mean_over_a_zero_length_axis():
    x = gw.tensor(np.zeros((3, 0)), dtype="float64", requires_grad=True)
    out = x.mean(axis=1)
    assert np.isnan(out.data).all()
    out.sum().backward()
    assert x.grad.shape == (3, 0)


@pytest.mark.parametrize(
    "n,correction,expected", [(1, 1, math.nan), (2, 2, math.inf), (3, 4, math.inf)]
)
def test_var_and_std_without_degrees_of_freedom_are_nan_or_inf(n, correction, expected):
    x = gw.tensor(np.arange(n, dtype=np.float64))
    for fn in (gw.var, gw.std):
        value = fn(x, correction=correction).item()
        assert math.isnan(value) if math.isnan(expected) else value == expected, fn


def test_var_with_degrees_of_freedom_is_unchanged():
    data = np.random.default_rng(0).standard_normal((4, 5))
    np.testing.assert_allclose(
        gw.var(gw.tensor(data), axis=1).data, data.var(axis=1, ddof=1), rtol=1e-6
    )


def test_bitwise_operators_on_integer_tensors():
    a, b = gw.tensor([12, 10, 7]), gw.tensor([10, 6, 1])
    np.testing.assert_array_equal((a & b).data, [8, 2, 1])
    np.testing.assert_array_equal((a | b).data, [14, 14, 7])
    np.testing.assert_array_equal((a ^ b).data, [6, 12, 6])
    np.testing.assert_array_equal((~a).data, [-13, -11, -8])
    t, f = gw.tensor([True, False]), gw.tensor([True, True])
    np.testing.assert_array_equal((t & f).data, [True, False])
    np.testing.assert_array_equal((~t).data, [False, True])


def test_integer_tensors_promote_to_the_default_float():
    i = gw.tensor([1, 2, 3])
    assert (i / 2).dtype == np.float32
    assert (i * 0.5).dtype == np.float32
    assert gw.sqrt(i).dtype == np.float32
    assert i.mean().dtype == np.float32
    assert (i / gw.tensor([2.0], dtype="float64")).dtype == np.float64
    assert (i * 2).dtype == i.dtype
