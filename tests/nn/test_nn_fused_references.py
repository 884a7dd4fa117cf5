"""Every fused primitive against its reference definition (core primitives): the same
output, the fast VJP equal to the reference's gradients, and second order exact."""

import numpy as np
import pytest

import gradwell as gw
from gradwell.autograd import conv_ops
from gradwell.autograd.ops import REGISTRY
from gradwell.nn import fused


def leaf(*shape, seed=0):
    return gw.tensor(np.random.default_rng(seed).standard_normal(shape), "float64", True)


def _bn_state(c):
    return dict(running_mean=np.zeros(c), running_var=np.ones(c), num_batches_tracked=None)


def _chain(rate, rng=None):
    return dict(eps=1e-5, momentum=0.1, rate=rate, rng=rng, **_bn_state(3))


CASES = {
    "linear": lambda: (fused.linear, [leaf(4, 3, seed=1), leaf(2, 3, seed=2), leaf(2)], {}),
    "linear 3-d, no bias": lambda: (fused.linear, [leaf(2, 4, 3, seed=1), leaf(2, 3)], {}),
    "linear tiny float32 sizes": lambda: (fused.linear, [leaf(8, 2), leaf(3, 2, seed=3)], {}),
    "batch_norm training": lambda: (
        fused.batch_norm, [leaf(6, 3), leaf(3, seed=1), leaf(3, seed=2)],
        dict(training=True, eps=1e-5, momentum=0.1, **_bn_state(3)),
    ),
    "batch_norm eval, no affine": lambda: (
        fused.batch_norm, [leaf(6, 3)],
        dict(training=False, eps=1e-5, momentum=0.1, running_mean=np.full(3, 0.2),
             running_var=np.full(3, 1.5), num_batches_tracked=None),
    ),
    "batch_norm_relu_dropout": lambda: (
        fused.batch_norm_relu_dropout, [leaf(6, 3), leaf(3, seed=1), leaf(3, seed=2)],
        _chain(0.3, np.random.default_rng(0)),
    ),
    "batch_norm_relu no affine": lambda: (fused.batch_norm_relu_dropout, [leaf(6, 3)], _chain(0.0)),
    "linear block, tiny": lambda: (
        fused.linear_batch_norm_relu_dropout,
        [leaf(6, 4), leaf(3, 4, seed=1), leaf(3, seed=2), leaf(3, seed=3), leaf(3, seed=4)],
        _chain(0.3, np.random.default_rng(1)),
    ),
    "linear block, large, no affine": lambda: (
        fused.linear_batch_norm_relu_dropout,
        [leaf(80, 40), leaf(3, 40, seed=1), leaf(3, seed=2)], _chain(0.0),
    ),
    "cross_entropy classes, smoothing, weight": lambda: (
        fused.cross_entropy, [leaf(5, 3), gw.tensor([0, 2, 1, 1, 0])],
        dict(reduction="mean", label_smoothing=0.1, weight=np.array([1.0, 2.0, 0.5]),
             ignore_index=1),
    ),
    "cross_entropy classes, plain sum": lambda: (
        fused.cross_entropy, [leaf(5, 3), gw.tensor([0, 2, 1, 1, 0])],
        dict(reduction="sum", label_smoothing=0.0, weight=None, ignore_index=-100),
    ),
    "cross_entropy probabilities": lambda: (
        fused.cross_entropy, [leaf(4, 3), gw.tensor(np.full((4, 3), 1 / 3), "float64", True)],
        dict(reduction="none", label_smoothing=0.2, weight=None, ignore_index=-100),
    ),
    "bce_with_logits, pos_weight": lambda: (
        fused.bce_with_logits,
        [leaf(4, 2), gw.tensor(np.random.default_rng(5).uniform(size=(4, 2)), "float64", True),
         leaf(2, seed=6)],
        {},
    ),
    "conv2d, padded, strided, dilated": lambda: (
        conv_ops.conv2d, [leaf(2, 3, 6, 7), leaf(4, 3, 3, 2, seed=1), leaf(4, seed=2)],
        dict(stride=(2, 1), padding=((1, 0), (2, 1)), dilation=(1, 2)),
    ),
    "conv2d 1x1": lambda: (
        conv_ops.conv2d, [leaf(2, 3, 4, 5), leaf(4, 3, 1, 1, seed=1)],
        dict(stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1)),
    ),
    "max_pool2d, padded, overlapping": lambda: (
        conv_ops.max_pool2d, [leaf(2, 3, 7, 6)],
        dict(kernel=(3, 3), stride=(2, 2), padding=((1, 1), (1, 1)), dilation=(1, 1)),
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_the_fast_vjp_equals_the_reference_gradients(case):
    op, inputs, attrs = CASES[case]()
    out = op(*inputs, **attrs)
    reference = out._op.reference(out.data, *inputs, **out._attrs)
    np.testing.assert_allclose(reference.data, out.data, rtol=1e-12, atol=1e-12)
    w = gw.tensor(np.random.default_rng(9).standard_normal(out.shape), "float64")
    wanted = [t for t in inputs if t.requires_grad]
    fast = gw.grad((out * w).sum(), wanted, retain_graph=True)
    expected = gw.grad((reference * w).sum(), wanted)
    for a, b in zip(fast, expected):
        np.testing.assert_allclose(a.data, b.data, rtol=1e-10, atol=1e-12)


# (the chains draw a mask per call; eval-mode batch norm is affine in x and max pooling
# piecewise linear: no second order)
NO_SECOND_ORDER = ("dr", "bl", "ev", "max_pool")


@pytest.mark.parametrize("case", [c for c in CASES if not any(w in c for w in NO_SECOND_ORDER)])
def test_second_order_through_the_reference_is_exact(case):
    op, inputs, attrs = CASES[case]()
    wanted = [t for t in inputs if t.requires_grad]

    def first_order(*xs):
        xs = list(xs)
        full = [xs.pop(0) if t.requires_grad else t for t in inputs]
        out = op(*full, **attrs)
        w = gw.tensor(np.random.default_rng(3).standard_normal(out.shape), "float64")
        gs = gw.grad((out * w).sum(), [t for t in full if t.requires_grad], create_graph=True)
        return gw.concatenate([g.reshape(-1) for g in gs])

    assert gw.gradcheck(first_order, wanted)


def test_the_fused_chains_have_second_order_gradients_too():
    x, gamma, beta = leaf(6, 3), leaf(3, seed=1), leaf(3, seed=2)
    w = leaf(3, 4, seed=3)
    for op, inputs in (
        (fused.batch_norm_relu_dropout, [x, gamma, beta]),
        (fused.linear_batch_norm_relu_dropout, [leaf(6, 4, seed=4), w, gamma, beta]),
    ):
        out = op(*inputs, **_chain(0.0))
        ref = out._op.reference(out.data, *inputs, **out._attrs)
        (g,) = gw.grad((out * out).sum(), [inputs[0]], create_graph=True)
        (h,) = gw.grad(g.sum(), [inputs[0]])  # through the reference, recorded
        (g_ref,) = gw.grad((ref * ref).sum(), [inputs[0]], create_graph=True)
        (h_ref,) = gw.grad(g_ref.sum(), [inputs[0]])
        np.testing.assert_allclose(h.data, h_ref.data, rtol=1e-10, atol=1e-12)


def test_every_fused_primitive_has_a_reference():
    for name in ("linear", "batch_norm", "batch_norm_relu_dropout",
                 "linear_batch_norm_relu_dropout", "cross_entropy", "bce_with_logits", "conv2d",
                 "max_pool2d"):  # fmt: skip
        assert REGISTRY[name].reference is not None, name
