"""BatchNorm1d in training and evaluation against the formulas (PyTorch's conventions)."""

from __future__ import annotations

import numpy as np
import pytest

import gradwell as gw
from gradwell.nn import BatchNorm1d


def batch(n=8, c=3, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, 3)) * [1.0, 5.0, 0.1] + [0.0, 3.0, -2.0])[:, :c]


def test_training_normalises_with_batch_mean_and_biased_variance():
    x = batch()
    bn = BatchNorm1d(3, eps=1e-3).double()
    bn.weight.data[...] = [1.0, 2.0, 0.5]
    bn.bias.data[...] = [0.0, -1.0, 3.0]
    out = bn(gw.tensor(x, dtype="float64")).numpy()
    mean, var = x.mean(0), ((x - x.mean(0)) ** 2).mean(0)  # biased: divide by N
    expected = (x - mean) / np.sqrt(var + 1e-3) * [1.0, 2.0, 0.5] + [0.0, -1.0, 3.0]
    np.testing.assert_allclose(out, expected, rtol=1e-12)


def test_running_statistics_use_momentum_and_the_unbiased_variance():
    bn = BatchNorm1d(3, momentum=0.3).double()
    rm, rv = np.zeros(3), np.ones(3)
    for seed in range(3):
        x = batch(n=6, seed=seed)
        bn(gw.tensor(x, dtype="float64"))
        rm = 0.7 * rm + 0.3 * x.mean(0)
        rv = 0.7 * rv + 0.3 * x.var(0, ddof=1)  # unbiased: divide by N - 1
    np.testing.assert_allclose(bn.running_mean.numpy(), rm, rtol=1e-12)
    np.testing.assert_allclose(bn.running_var.numpy(), rv, rtol=1e-12)
    assert int(bn.num_batches_tracked.item()) == 3


def test_momentum_none_is_a_cumulative_average():
    bn = BatchNorm1d(3, momentum=None).double()
    xs = [batch(n=5, seed=s) for s in range(4)]
    for x in xs:
        bn(gw.tensor(x, dtype="float64"))
    np.testing.assert_allclose(bn.running_mean.numpy(), np.mean([x.mean(0) for x in xs], 0))


def test_eval_uses_the_running_statistics_and_leaves_them_alone():
    bn = BatchNorm1d(3, eps=1e-2).double()
    bn.running_mean.data[...] = [1.0, -1.0, 0.5]
    bn.running_var.data[...] = [4.0, 0.25, 1.0]
    bn.weight.data[...] = [2.0, 1.0, -1.0]
    bn.bias.data[...] = [0.1, 0.2, 0.3]
    bn.eval()
    x = batch()
    out = bn(gw.tensor(x, dtype="float64")).numpy()
    expected = (x - [1.0, -1.0, 0.5]) / np.sqrt(np.array([4.0, 0.25, 1.0]) + 1e-2)
    expected = expected * [2.0, 1.0, -1.0] + [0.1, 0.2, 0.3]
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    np.testing.assert_array_equal(bn.running_mean.numpy(), [1.0, -1.0, 0.5])
    assert int(bn.num_batches_tracked.item()) == 0
    assert bn(gw.tensor(x[:1], dtype="float64")).shape == (1, 3)  # one example is fine in eval


def test_eval_backward_matches_the_affine_map():
    bn = BatchNorm1d(2).double().eval()
    bn.running_var.data[...] = [4.0, 1.0]
    x = gw.tensor(batch(c=2), dtype="float64", requires_grad=True)
    bn(x).sum().backward()
    np.testing.assert_allclose(
        x.grad.numpy(), np.tile(1 / np.sqrt([4.0 + 1e-5, 1.0 + 1e-5]), (8, 1))
    )


def test_training_gradient_matches_the_closed_form():
    x = batch(n=6)
    g = np.random.default_rng(9).standard_normal(x.shape)
    bn = BatchNorm1d(3).double()
    bn.weight.data[...] = [1.5, -0.5, 2.0]
    xt = gw.tensor(x, dtype="float64", requires_grad=True)
    (bn(xt) * gw.tensor(g, dtype="float64")).sum().backward()
    n, eps = x.shape[0], 1e-5
    inv_std = 1 / np.sqrt(x.var(0) + eps)
    xhat = (x - x.mean(0)) * inv_std
    dxhat = g * [1.5, -0.5, 2.0]
    dx = inv_std / n * (n * dxhat - dxhat.sum(0) - xhat * (dxhat * xhat).sum(0))
    np.testing.assert_allclose(xt.grad.numpy(), dx, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(bn.weight.grad.numpy(), (g * xhat).sum(0), rtol=1e-10)
    np.testing.assert_allclose(bn.bias.grad.numpy(), g.sum(0), rtol=1e-12)


def test_without_affine_or_running_stats():
    bn = BatchNorm1d(3, affine=False, track_running_stats=False).double()
    assert list(bn.parameters()) == [] and list(bn.state_dict()) == []
    x = batch()
    expected = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5)
    for mode in (True, False):  # without running statistics, batch statistics in both modes
        bn.train(mode)
        np.testing.assert_allclose(bn(gw.tensor(x, dtype="float64")).numpy(), expected, rtol=1e-12)


def test_a_batch_of_one_in_training_is_a_clear_error_that_changes_nothing():
    bn = BatchNorm1d(3)
    with pytest.raises(ValueError, match=r"more than 1 value per channel.*\(1, 3\)"):
        bn(gw.zeros(1, 3))
    assert int(bn.num_batches_tracked.item()) == 0
    assert not bn.running_mean.numpy().any()


def test_wrong_input_shape_names_the_layer_and_the_shapes():
    with pytest.raises(
        ValueError, match=r"BatchNorm1d\(4, .*expected input of shape \(N, 4\) or \(N, 4, L\); got"
    ):
        BatchNorm1d(4)(gw.zeros(5, 3))
    with pytest.raises(ValueError, match=r"\(N, 4, L\); got shape \(2, 4, 3, 1\)"):
        BatchNorm1d(4)(gw.zeros(2, 4, 3, 1))  # (N, C, L) is accepted, as in PyTorch


def test_float32_in_float32_out_with_float32_statistics():
    bn = BatchNorm1d(3)
    out = bn(gw.tensor(batch()))
    assert out.dtype == np.float32 and bn.running_var.dtype == np.float32


def test_functional_batch_norm_updates_running_arrays_in_place():
    rm, rv = np.zeros(3), np.ones(3)
    x = batch()
    gw.nn.functional.batch_norm(gw.tensor(x, dtype="float64"), rm, rv, training=True, momentum=0.5)
    np.testing.assert_allclose(rm, 0.5 * x.mean(0))
    np.testing.assert_allclose(rv, 0.5 + 0.5 * x.var(0, ddof=1))
    with pytest.raises(ValueError, match="evaluation mode needs running_mean"):
        gw.nn.functional.batch_norm(gw.tensor(x), None, None)
