"""Making tensors, dtypes, conventions at the points where they are defined."""

from __future__ import annotations

import numpy as np
import pytest

import gradwell as gw


def test_float_data_defaults_to_float32_and_float64_on_request():
    assert gw.tensor([1.0, 2.0]).dtype == np.float32
    assert gw.tensor(np.zeros(3)).dtype == np.float32
    assert gw.tensor([1.0], dtype="float64").dtype == np.float64
    assert gw.tensor([1, 2]).dtype.kind == "i"
    assert gw.zeros(2, 3).shape == (2, 3) and gw.zeros(2, 3).dtype == np.float32
    assert gw.ones((2,), dtype="float64").dtype == np.float64


def test_python_scalars_do_not_upcast():
    x = gw.tensor([1.0, 2.0])
    for y in (x * 2.5, 2.5 * x, x + 1, x / 3.0, 1.0 - x, x**2.0, 2.0**x):
        assert y.dtype == np.float32


def test_negative_zero_constant_keeps_its_sign():
    x = gw.tensor([1.0])
    assert np.signbit((x * 0.0).numpy()[0]) == False  # noqa: E712
    assert np.signbit((x * -0.0).numpy()[0]) == True  # noqa: E712


def test_float_arrays_take_the_tensor_dtype():
    x = gw.tensor([1.0, 2.0])
    assert (x * np.array([1.0, 2.0])).dtype == np.float32
    assert (np.array([1.0, 2.0]) + x).dtype == np.float32
    assert (gw.tensor([1.0], dtype="float64") * np.ones(1, np.float32)).dtype == np.float64


def test_array_facts():
    x = gw.arange(6).reshape(2, 3)
    assert (
        x.shape == (2, 3)
        and x.ndim == 2
        and x.numel() == 6
        and x.size() == (2, 3)
        and x.size(0) == 2
        and x.size(-1) == 3
        and len(x) == 2
    )
    assert x.T.shape == (3, 2)
    assert gw.tensor(4.0).item() == 4.0
    assert gw.eye(3).numpy().trace() == 3
    assert gw.full((2, 2), 7.0).numpy().sum() == 28


def test_random_tensors_follow_the_seed():
    a = gw.randn(3, 4, rng=5)
    b = gw.randn(3, 4, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert a.dtype == np.float32
    u = gw.rand(1000, rng=1).numpy()
    assert 0 <= u.min() and u.max() < 1


def test_comparisons_are_boolean_without_gradient():
    x = gw.tensor([1.0, -1.0], requires_grad=True)
    m = x > 0
    assert m.dtype == np.bool_ and not m.requires_grad
    np.testing.assert_array_equal(m.numpy(), [True, False])


def test_relu_derivative_at_zero_is_zero():
    x = gw.tensor([0.0, 1.0, -1.0], requires_grad=True)
    gw.relu(x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 1.0, 0.0])


def test_abs_derivative_at_zero_is_zero():
    x = gw.tensor([0.0, 2.0, -2.0], requires_grad=True)
    gw.abs(x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 1.0, -1.0])


def test_max_ties_share_the_gradient_equally():
    x = gw.tensor([[3.0, 1.0, 3.0, 3.0], [0.0, 2.0, 1.0, 2.0]], requires_grad=True)
    x.max(axis=1).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [[1 / 3, 0, 1 / 3, 1 / 3], [0, 0.5, 0, 0.5]])
    y = gw.tensor([1.0, 1.0], requires_grad=True)
    y.min().backward()
    np.testing.assert_allclose(y.grad.numpy(), [0.5, 0.5])


def test_maximum_tie_gives_each_side_half():
    a = gw.tensor([1.0, 2.0], requires_grad=True)
    b = gw.tensor([1.0, 0.0], requires_grad=True)
    gw.maximum(a, b).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), [0.5, 1.0])
    np.testing.assert_allclose(b.grad.numpy(), [0.5, 0.0])


def test_clip_passes_gradient_inside_and_on_the_bounds():
    x = gw.tensor([-2.0, -1.0, 0.0, 1.0, 2.0], requires_grad=True)
    x.clip(-1.0, 1.0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0, 1, 1, 1, 0])


def test_getitem_repeated_indices_accumulate():
    x = gw.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x[[0, 0, 2, 0]].sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 0.0, 1.0])


def test_stable_softmax_and_logsumexp_for_large_inputs():
    x = gw.tensor([1e4, -1e4, 0.0])
    assert np.isfinite(gw.softmax(x).numpy()).all()
    assert gw.logsumexp(x).item() == pytest.approx(1e4)
    assert np.isfinite(gw.log_softmax(x).numpy()[:2]).all()


def test_shape_helpers():
    x = gw.zeros(2, 1, 3)
    assert x.squeeze().shape == (2, 3)
    assert x.squeeze(1).shape == (2, 3)
    assert x.unsqueeze(0).shape == (1, 2, 1, 3)
    assert x.flatten().shape == (6,)
    assert gw.concatenate([x, x], axis=2).shape == (2, 1, 6)
    assert gw.stack([x, x]).shape == (2, 2, 1, 3)
    assert x.transpose(2, 0, 1).shape == (3, 2, 1)


def test_repr_shows_op_and_dtype():
    x = gw.tensor([1.0], dtype="float64", requires_grad=True)
    assert "requires_grad=True" in repr(x)
    assert "op=mul" in repr(x * 2) and "float64" in repr(x * 2)
