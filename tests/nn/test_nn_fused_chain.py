"""batch_norm_relu_dropout: the fused op a compiled step runs equals the three ops, bit for bit."""

import numpy as np
import pytest

import gradwell as gw
from gradwell.nn import fused

F = gw.nn.functional


def _assert_same(chain, fused_op, dtype):
    """The ops in a row and the fused op gave the same (output, gradients, running mean,
    running variance, batch count, dropout Generator state), bit for bit."""
    (o1, g1, rm1, rv1, c1, s1), (o2, g2, rm2, rv2, c2, s2) = chain, fused_op
    np.testing.assert_array_equal(o1, o2)
    assert o1.dtype == o2.dtype == dtype
    for a, b in zip(g1, g2):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(rm1, rm2)
    np.testing.assert_array_equal(rv1, rv2)
    assert c1 == c2 == 1 and s1 == s2


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("rate", [0.0, 0.3])
def test_fused_chain_equals_the_ops_in_a_row(dtype, affine, rate):
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal((16, 6)).astype(dtype)
    x0[3, 2] = np.nan  # a NaN goes through relu (np.maximum keeps it) and its column
    g0 = rng.standard_normal((16, 6)).astype(dtype)
    gamma, beta = rng.standard_normal((2, 6)).astype(dtype)
    results = []
    for chain in (True, False):
        x = gw.Tensor(x0.copy(), requires_grad=True)
        params = (
            (
                gw.Tensor(gamma.copy(), requires_grad=True),
                gw.Tensor(beta.copy(), requires_grad=True),
            )
            if affine
            else ()
        )
        rm, rv, count = np.zeros(6, dtype), np.ones(6, dtype), np.zeros((), np.int64)
        drop_rng = np.random.default_rng(7)
        attrs = dict(eps=1e-5, momentum=0.1, running_mean=rm, running_var=rv)
        if chain:
            out = gw.relu(fused.batch_norm(x, *params, training=True, **attrs,
                                              num_batches_tracked=count))  # fmt: skip
            if rate:
                out = fused.dropout(out, rate=rate, rng=drop_rng)
        else:
            out = fused.batch_norm_relu_dropout(
                x, *params, **attrs, num_batches_tracked=count, rate=rate, rng=drop_rng
            )
        out.backward(gw.Tensor(g0))
        grads = [x.grad.data] + [p.grad.data for p in params]
        results.append((out.data, grads, rm, rv, count, drop_rng.bit_generator.state))
    _assert_same(*results, dtype)


def test_fused_chain_rejects_a_single_row_as_batch_norm_does():
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        fused.batch_norm_relu_dropout(
            gw.ones(1, 3), eps=1e-5, momentum=0.1, running_mean=None, running_var=None,
            num_batches_tracked=None, rate=0.0, rng=None,
        )  # fmt: skip


# (rows, in, out): the compiled small product (bias added inside it), the transposed
# product of short batches (bias added by batch norm), the plain product, one column
@pytest.mark.parametrize("shape", [(16, 5, 6), (24, 40, 128), (80, 20, 30), (70, 130, 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "bias,affine", [(True, True), (True, False), (False, True), (False, False)]
)
@pytest.mark.parametrize("rate", [0.0, 0.3])
@pytest.mark.parametrize("x_grad", [True, False])  # False: a first layer, fed the data
def test_linear_block_equals_the_ops_in_a_row(shape, dtype, bias, affine, rate, x_grad):
    n, fan_in, fan_out = shape
    rng = np.random.default_rng(1)
    x0 = rng.standard_normal((n, fan_in)).astype(dtype)
    g0 = rng.standard_normal((n, fan_out)).astype(dtype)
    w0 = (rng.standard_normal((fan_out, fan_in)) / np.sqrt(fan_in)).astype(dtype)
    if fan_out > 1:
        w0[-1, 2] = np.nan  # a NaN column through batch norm and relu; the others finite
    b0, gamma, beta = (rng.standard_normal((3, fan_out)) + 0.5).astype(dtype)
    results = []
    for chain in (True, False):
        x, w = gw.Tensor(x0.copy(), requires_grad=x_grad), gw.Tensor(w0.copy(), requires_grad=True)
        params = [gw.Tensor(b0.copy(), requires_grad=True)] if bias else []
        if affine:
            params += [gw.Tensor(v.copy(), requires_grad=True) for v in (gamma, beta)]
        rm, rv, count = np.zeros(fan_out, dtype), np.ones(fan_out, dtype), np.zeros((), np.int64)
        drop_rng = np.random.default_rng(7)
        attrs = dict(eps=1e-5, momentum=0.1, running_mean=rm, running_var=rv)
        if chain:
            h = fused.linear(x, w, *params[:1]) if bias else fused.linear(x, w)
            out = gw.relu(fused.batch_norm(h, *params[bias:], training=True, **attrs,
                                           num_batches_tracked=count))  # fmt: skip
            if rate:
                out = fused.dropout(out, rate=rate, rng=drop_rng)
        else:
            out = fused.linear_batch_norm_relu_dropout(
                x, w, *params, **attrs, num_batches_tracked=count, rate=rate, rng=drop_rng
            )
        out.backward(gw.Tensor(g0))
        grads = [x.grad.data] if x_grad else []
        grads += [w.grad.data] + [p.grad.data for p in params]
        assert x_grad or x.grad is None
        results.append((out.data, grads, rm, rv, count, drop_rng.bit_generator.state))
    _assert_same(*results, dtype)
