"""Dropout: rate semantics (Keras' rate = fraction dropped), scaling, modes, seeds."""

from __future__ import annotations

import numpy as np
import pytest

import gradwell as gw
from gradwell.nn import Dropout


def test_rate_zero_returns_the_input_itself():
    x = gw.randn(4, 5, rng=0, requires_grad=True)
    assert Dropout(0.0)(x) is x
    assert gw.nn.functional.dropout(x, 0.0) is x


def test_eval_mode_is_the_identity():
    x = gw.randn(4, 5, rng=0)
    drop = Dropout(0.9, rng=0).eval()
    assert drop(x) is x
    assert gw.nn.functional.dropout(x, 0.9, training=False) is x


def test_rate_one_outputs_zeros_and_passes_zero_gradients():
    x = gw.randn(3, 4, rng=0, requires_grad=True)
    out = Dropout(1.0, rng=0)(x)
    assert not out.numpy().any()
    (out * 3.0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.zeros((3, 4)))


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_survivors_are_scaled_and_the_dropped_fraction_is_the_rate(rate):
    x = gw.ones(200, 500)
    out = Dropout(rate, rng=1)(x).numpy()
    kept = out != 0
    np.testing.assert_allclose(out[kept], 1.0 / (1.0 - rate), rtol=1e-6)
    # 100000 Bernoulli(rate) draws: the standard error of the fraction is < 0.0016
    assert abs((~kept).mean() - rate) < 0.01
    assert abs(out.mean() - 1.0) < 0.03  # the expected output equals the input


def test_gradient_flows_only_through_survivors_with_the_same_scale():
    x = gw.randn(6, 7, rng=0, requires_grad=True)
    out = Dropout(0.4, rng=3)(x)
    out.sum().backward()
    mask = out.numpy() / x.numpy()
    np.testing.assert_allclose(x.grad.numpy(), mask, rtol=1e-5)
    scale_or_zero = np.isclose(mask, 0.0) | np.isclose(mask, 1 / 0.6, rtol=1e-5)
    assert scale_or_zero.all() and (mask == 0).any() and (mask != 0).any()


def test_same_seed_same_masks_and_masks_change_between_calls():
    x = gw.ones(10, 10)
    a, b = Dropout(0.5, rng=42), Dropout(0.5, rng=42)
    first_a, first_b = a(x).numpy(), b(x).numpy()
    np.testing.assert_array_equal(first_a, first_b)
    assert not np.array_equal(a(x).numpy(), first_a)  # the generator moves on
    gen = np.random.default_rng(7)
    c = Dropout(0.5, rng=gen)
    assert c.rng is gen  # a Generator passed in is used (and can be saved) as is


@pytest.mark.parametrize("rate", [-0.1, 1.5, float("nan")])
def test_rate_outside_zero_one_is_a_clear_error(rate):
    with pytest.raises(ValueError, match=r"rate must be in \[0, 1\].*got"):
        Dropout(rate)
    with pytest.raises(ValueError, match="fraction of units dropped"):
        gw.nn.functional.dropout(gw.ones(2), rate)


def test_float32_mask_keeps_float32_and_float64_keeps_float64():
    assert Dropout(0.5, rng=0)(gw.ones(3, 3)).dtype == np.float32
    assert Dropout(0.5, rng=0)(gw.ones(3, 3, dtype="float64")).dtype == np.float64


def test_repr_shows_the_rate():
    assert repr(Dropout(0.2)) == "Dropout(rate=0.2)"
