"""batch_norm_relu_dropout: the fused op a compiled step runs equals the three ops, bit for bit."""

import numpy as np
import pytest

import gradwell as gw
from gradwell.nn import fused

F = gw.nn.functional


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
    (o1, g1, rm1, rv1, c1, s1), (o2, g2, rm2, rv2, c2, s2) = results
    np.testing.assert_array_equal(o1, o2)
    assert o1.dtype == o2.dtype == dtype
    for a, b in zip(g1, g2):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(rm1, rm2)
    np.testing.assert_array_equal(rv1, rv2)
    assert c1 == c2 == 1 and s1 == s2


def test_fused_chain_rejects_a_single_row_as_batch_norm_does():
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        fused.batch_norm_relu_dropout(
            gw.ones(1, 3), eps=1e-5, momentum=0.1, running_mean=None, running_var=None,
            num_batches_tracked=None, rate=0.0, rng=None,
        )  # fmt: skip
