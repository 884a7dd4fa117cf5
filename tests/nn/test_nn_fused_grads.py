"""The fused nn primitives and the composed losses against float64 central differences,
first order and second order (the first-order gradient recorded with create_graph)."""

from __future__ import annotations

import numpy as np
import pytest

import gradwell as gw
import gradwell.nn.functional as F


def leaf(*shape, seed=0, positive=False):
    x = np.random.default_rng(seed).standard_normal(shape)
    if positive:
        x = np.abs(x) + 0.5
    return gw.tensor(x, dtype="float64", requires_grad=True)


def first_order_grads(fn):
    """x -> all first-order gradients of a fixed random projection of fn, flattened.

    Differentiating this checks the create_graph backward (second order)."""

    def grads(*xs):
        out = fn(*xs)
        w = gw.tensor(np.random.default_rng(123).standard_normal(out.shape), dtype="float64")
        gs = gw.grad((out * w).sum(), xs, create_graph=True, allow_unused=True)
        return gw.concatenate([g.reshape(-1) for g in gs if g is not None])

    return grads


def check_both_orders(fn, inputs):
    assert gw.gradcheck(fn, inputs)
    assert gw.gradcheck(first_order_grads(fn), inputs)


def check_create_graph_matches_plain(fn, inputs):
    """The TensorF (create_graph) backward gives the same first-order values as the fast one."""
    out = fn(*inputs)
    w = gw.tensor(np.random.default_rng(5).standard_normal(out.shape), dtype="float64")
    plain = gw.grad((out * w).sum(), inputs, allow_unused=True)
    out = fn(*inputs)
    recorded = gw.grad((out * w).sum(), inputs, create_graph=True, allow_unused=True)
    for a, b in zip(plain, recorded):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-12)


# --- linear -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "x_shape,out_features,bias",
    [
        ((4, 3), 2, True),
        ((1, 5), 3, True),
        ((2, 3, 4), 2, True),
        ((4,), 3, True),
        ((5, 2), 3, False),
    ],
)
def test_linear_gradients(x_shape, out_features, bias):
    x = leaf(*x_shape, seed=1)
    w = leaf(out_features, x_shape[-1], seed=2)
    inputs = [x, w] + ([leaf(out_features, seed=3)] if bias else [])
    fn = (lambda x, w, b: F.linear(x, w, b)) if bias else (lambda x, w: F.linear(x, w))
    check_both_orders(fn, inputs)
    check_create_graph_matches_plain(fn, inputs)


def test_linear_computes_only_the_gradients_asked_for():
    x = gw.tensor(np.ones((3, 2)))  # does not require grad
    w = leaf(4, 2)
    F.linear(x, w).sum().backward()
    assert x.grad is None
    np.testing.assert_allclose(w.grad.numpy(), np.full((4, 2), 3.0))


# --- batch_norm ------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(5, 3), (2, 4), (8, 1)])
def test_batch_norm_training_gradients(shape):
    c = shape[1]
    x, g, b = leaf(*shape, seed=1), leaf(c, seed=2), leaf(c, seed=3)

    def fn(x, g, b):
        return F.batch_norm(x, None, None, g, b, training=True, eps=1e-3)

    check_both_orders(fn, [x, g, b])
    check_create_graph_matches_plain(fn, [x, g, b])


def test_batch_norm_without_affine_gradients():
    x = leaf(6, 3)

    def fn(x):
        return F.batch_norm(x, None, None, training=True)

    check_both_orders(fn, [x])


def test_batch_norm_eval_gradients():
    x, g, b = leaf(4, 3, seed=1), leaf(3, seed=2), leaf(3, seed=3)
    rm, rv = np.array([0.2, -0.1, 0.0]), np.array([0.5, 2.0, 1.0])

    def fn(x, g, b):
        return F.batch_norm(x, rm, rv, g, b, training=False)

    check_both_orders(fn, [x, g, b])
    check_create_graph_matches_plain(fn, [x, g, b])


# --- cross_entropy -----------------------------------------------------------------------


CLASSES = np.array([2, 0, 1, 2, 4])


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"reduction": "sum"},
        {"reduction": "none"},
        {"label_smoothing": 0.2},
        {"weight": np.array([0.5, 1.0, 2.0, 1.5, 0.3])},
        {"weight": np.array([0.5, 1.0, 2.0, 1.5, 0.3]), "label_smoothing": 0.1},
        {"ignore_index": 2},
        {"ignore_index": 2, "label_smoothing": 0.3, "reduction": "none"},
    ],
)
def test_cross_entropy_class_targets_gradients(kwargs):
    x = leaf(5, 5, seed=4)

    def fn(x):
        return F.cross_entropy(x, CLASSES, **kwargs)

    check_both_orders(fn, [x])
    check_create_graph_matches_plain(fn, [x])


@pytest.mark.parametrize("kwargs", [{}, {"label_smoothing": 0.1}, {"weight": [1.0, 2.0, 0.5]}])
def test_cross_entropy_probability_targets_gradients(kwargs):
    x, t = leaf(4, 3, seed=1), leaf(4, 3, seed=2)

    def fn(x, t):  # the target distribution is differentiable too
        return F.cross_entropy(x, gw.softmax(t, axis=1), **kwargs)

    check_both_orders(fn, [x, t])
    check_create_graph_matches_plain(fn, [x, t])


def test_cross_entropy_gradient_is_p_minus_target_over_n():
    logits = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    x = gw.tensor(logits, dtype="float64", requires_grad=True)
    F.cross_entropy(x, [1, 2]).backward()
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    onehot = np.eye(3)[[1, 2]]
    np.testing.assert_allclose(x.grad.numpy(), (p - onehot) / 2, rtol=1e-12)


def test_cross_entropy_gradient_is_finite_for_huge_logits():
    x = gw.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]], requires_grad=True)
    loss = F.cross_entropy(x, [1, 2])
    loss.backward()
    assert np.isfinite(loss.item()) and np.isfinite(x.grad.numpy()).all()
    # row 0: p = (1, 0, 0), target 1 -> (1, -1, 0) / 2; row 1: p = (0, .5, .5), target 2
    np.testing.assert_allclose(x.grad.numpy(), [[0.5, -0.5, 0.0], [0.0, 0.25, -0.25]], atol=1e-7)


# --- bce_with_logits ----------------------------------------------------------------------


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_with_logits_gradients(reduction):
    x, t = leaf(3, 4, seed=1), leaf(3, 4, seed=2)

    def fn(x, t):
        return F.binary_cross_entropy_with_logits(x, gw.sigmoid(t), reduction=reduction)

    check_both_orders(fn, [x, t])
    check_create_graph_matches_plain(fn, [x, t])


def test_bce_with_logits_pos_weight_and_weight_gradients():
    x, t, pw = leaf(3, 4, seed=1), leaf(3, 4, seed=2), leaf(4, seed=3, positive=True)
    weight = np.random.default_rng(0).uniform(0.5, 2.0, (3, 4))

    def fn(x, t, pw):
        return F.binary_cross_entropy_with_logits(x, gw.sigmoid(t), weight, pos_weight=pw)

    check_both_orders(fn, [x, t, pw])
    check_create_graph_matches_plain(fn, [x, t, pw])


def test_bce_with_logits_gradient_at_zero_logit_is_sigmoid_minus_target():
    x = gw.tensor([0.0, 0.0], dtype="float64", requires_grad=True)
    F.binary_cross_entropy_with_logits(x, [1.0, 0.0], reduction="sum").backward()
    np.testing.assert_allclose(x.grad.numpy(), [-0.5, 0.5])


# --- composed losses ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "loss",
    [
        F.mse_loss,
        lambda a, b: F.huber_loss(a, b, delta=0.7),
        lambda a, b: F.huber_loss(a, b, reduction="none", delta=1.5),
    ],
)
def test_regression_losses_gradients(loss):
    a, b = leaf(4, 3, seed=1), leaf(4, 3, seed=2)
    check_both_orders(loss, [a, b])


def test_l1_loss_gradient():  # piecewise linear: its gradient has no derivative to check
    a, b = leaf(4, 3, seed=1), leaf(4, 3, seed=2)
    assert gw.gradcheck(lambda a, b: F.l1_loss(a, b, reduction="sum"), [a, b])


@pytest.mark.parametrize("kwargs", [{}, {"weight": [0.5, 2.0, 1.0, 1.0, 3.0]}, {"ignore_index": 0}])
def test_nll_loss_gradients(kwargs):
    x = leaf(5, 5, seed=2)
    check_both_orders(lambda x: F.nll_loss(gw.log_softmax(x, axis=1), CLASSES, **kwargs), [x])


def test_nll_of_log_softmax_equals_cross_entropy_with_its_gradient():
    x1, x2 = leaf(5, 5, seed=3), leaf(5, 5, seed=3)
    w = [0.5, 2.0, 1.0, 1.0, 3.0]
    a = F.nll_loss(gw.log_softmax(x1, axis=1), CLASSES, weight=w, ignore_index=1)
    b = F.cross_entropy(x2, CLASSES, weight=w, ignore_index=1)
    a.backward()
    b.backward()
    np.testing.assert_allclose(a.item(), b.item(), rtol=1e-12)
    np.testing.assert_allclose(x1.grad.numpy(), x2.grad.numpy(), rtol=1e-10, atol=1e-14)


# --- whole layers ---------------------------------------------------------------------------


def test_gradients_through_a_model_in_float64():
    model = gw.nn.Sequential(
        gw.nn.Linear(3, 4, rng=0), gw.nn.BatchNorm1d(4), gw.nn.Tanh(), gw.nn.Linear(4, 2, rng=1)
    ).double()
    x = leaf(6, 3)
    params = list(model.parameters())

    def fn(x, *ps):
        return F.cross_entropy(model(x), [0, 1, 1, 0, 1, 0])

    assert gw.gradcheck(fn, [x, *params])


def test_float32_stays_float32_through_layers_and_losses():
    model = gw.nn.Sequential(gw.nn.Linear(3, 4, rng=0), gw.nn.BatchNorm1d(4), gw.nn.ReLU())
    x = gw.randn(5, 3, rng=0, requires_grad=True)
    h = model(x)
    losses = [
        F.cross_entropy(h, [0, 1, 2, 3, 0], label_smoothing=0.1),
        F.cross_entropy(h, np.full((5, 4), 0.25)),
        F.mse_loss(h, np.zeros((5, 4))),
        F.huber_loss(h, np.zeros((5, 4))),
        F.binary_cross_entropy_with_logits(h, np.ones((5, 4)), pos_weight=np.full(4, 2.0)),
    ]
    total = losses[0]
    for loss in losses:
        assert loss.dtype == np.float32
        total = total + loss
    total.backward()
    assert x.grad.dtype == np.float32
    assert all(p.grad.dtype == np.float32 for p in model.parameters())
