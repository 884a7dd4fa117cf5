"""Gradient clipping against its formula."""

from __future__ import annotations

import math

import numpy as np
import pytest

import gradwell as gw
from gradwell.nn import Parameter
from gradwell.nn.utils import clip_grad_norm_, clip_grad_value_


def params_with_grads(*grads):
    ps = []
    for g in grads:
        p = Parameter(np.zeros(np.shape(g)), dtype="float64")
        p.grad = gw.tensor(g, dtype="float64")
        ps.append(p)
    return ps


GRADS = ([3.0, -4.0], [[1.0, 2.0], [-2.0, 0.5]], [12.0])


def test_clip_grad_norm_scales_by_max_norm_over_total():
    ps = params_with_grads(*GRADS)
    flat = np.concatenate([np.ravel(g) for g in GRADS])
    total = math.sqrt((flat**2).sum())
    assert clip_grad_norm_(ps, max_norm=2.0) == pytest.approx(total, rel=1e-12)
    factor = 2.0 / (total + 1e-6)
    for p, g in zip(ps, GRADS):
        np.testing.assert_allclose(p.grad.numpy(), np.multiply(g, factor), rtol=1e-12)
    new_total = math.sqrt(sum((p.grad.numpy() ** 2).sum() for p in ps))
    assert new_total == pytest.approx(2.0, rel=1e-6)


def test_clip_grad_norm_leaves_small_gradients_alone():
    ps = params_with_grads(*GRADS)
    assert clip_grad_norm_(ps, max_norm=100.0) < 100.0
    for p, g in zip(ps, GRADS):
        np.testing.assert_array_equal(p.grad.numpy(), g)


@pytest.mark.parametrize("norm_type", [1.0, 3.0, math.inf])
def test_other_norm_types(norm_type):
    ps = params_with_grads(*GRADS)
    flat = np.abs(np.concatenate([np.ravel(g) for g in GRADS]))
    expected = flat.max() if norm_type == math.inf else (flat**norm_type).sum() ** (1 / norm_type)
    assert clip_grad_norm_(ps, 1.0, norm_type=norm_type) == pytest.approx(expected, rel=1e-12)
    clipped = np.abs(np.concatenate([p.grad.numpy().ravel() for p in ps]))
    norm = clipped.max() if norm_type == math.inf else (clipped**norm_type).sum() ** (1 / norm_type)
    assert norm == pytest.approx(1.0, rel=1e-5)


def test_parameters_without_gradients_are_skipped_and_a_single_tensor_works():
    p = params_with_grads([6.0, 8.0])[0]
    empty = Parameter([1.0])
    assert clip_grad_norm_([p, empty], 5.0) == pytest.approx(10.0)
    assert empty.grad is None
    assert clip_grad_norm_(p, 1.0) == pytest.approx(5.0, rel=1e-6)
    assert clip_grad_norm_([empty], 1.0) == 0.0


def test_non_finite_norm():
    ps = params_with_grads([1.0, np.nan])
    with pytest.raises(RuntimeError, match="total norm .* is nan"):
        clip_grad_norm_(ps, 1.0, error_if_nonfinite=True)
    assert math.isnan(clip_grad_norm_(ps, 1.0))


def test_clipping_works_after_a_real_backward_and_keeps_float32():
    layer = gw.nn.Linear(4, 3, rng=0)
    (layer(gw.randn(8, 4, rng=1)) * 100).sum().backward()
    total = clip_grad_norm_(layer.parameters(), 0.5)
    assert total > 0.5
    assert all(p.grad.dtype == np.float32 for p in layer.parameters())
    norm = math.sqrt(
        sum(float((p.grad.numpy().astype(np.float64) ** 2).sum()) for p in layer.parameters())
    )
    assert norm == pytest.approx(0.5, rel=1e-5)


def test_clip_grad_value_clamps_each_element():
    ps = params_with_grads(*GRADS)
    clip_grad_value_(ps, 1.5)
    for p, g in zip(ps, GRADS):
        np.testing.assert_array_equal(p.grad.numpy(), np.clip(g, -1.5, 1.5))
    with pytest.raises(ValueError, match="clip_value must be >= 0"):
        clip_grad_value_(ps, -1.0)
