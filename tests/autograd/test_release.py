"""Freeing in forward: an intermediate's values go once only the graph holds them and no
VJP reads them (as PyTorch), and nothing that can still read them ever sees them go."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import gradwell as gw
from gradwell.autograd.engine import GraphReleasedError

SHAPE = (64, 1024)  # 256 KiB of float32: above the size below which values always stay


def _relu_chain(x, keep):
    """x * 2 -> relu -> * 3, as a Sequential runs it; relu's VJP reads its output, so
    ``x * 2`` is needed by nobody unless ``keep`` (a list) holds it."""
    h = x * 2.0
    if keep is not None:
        keep.append(h)
    h = gw.relu(h)
    return h * 3.0  # (the variable has moved on: nothing but relu's node holds x * 2)


@pytest.mark.parametrize("held", [False, True])
def test_an_intermediate_nothing_reads_is_freed_and_the_gradient_is_the_same(held):
    x = gw.tensor(
        np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32), requires_grad=True
    )
    keep: list = [] if held else None  # type: ignore[assignment]
    tracemalloc.start()
    start = tracemalloc.get_traced_memory()[0]
    out = _relu_chain(x, keep)
    alive = tracemalloc.get_traced_memory()[0] - start
    tracemalloc.stop()
    nbytes = x.data.nbytes
    # relu's and the product's outputs stay; ``x * 2`` only while a variable holds it
    assert alive == pytest.approx((3 if held else 2) * nbytes, rel=0.05)
    if held:
        np.testing.assert_array_equal(keep[0].numpy(), x.numpy() * 2.0)
    out.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.where(x.numpy() > 0, 6.0, 0.0))


def test_retain_graph_goes_through_freed_values_twice_and_without_it_says_so():
    x = gw.tensor(np.linspace(-1, 1, SHAPE[0] * SHAPE[1]).reshape(SHAPE), requires_grad=True)
    loss = _relu_chain(x, None).sum()
    loss.backward(retain_graph=True)
    first = x.grad.numpy().copy()
    loss.backward()
    np.testing.assert_array_equal(x.grad.numpy(), 2 * first)
    with pytest.raises(GraphReleasedError, match="retain_graph=True"):
        loss.backward()


def test_higher_order_gradients_go_through_freed_values():
    """x*x is only reshaped before the product reads the reshape: its values go, and the
    second derivative of sum((x*x)**2) = sum(x**4) is still 12 x**2."""
    x = gw.tensor(
        np.linspace(0.5, 1.5, SHAPE[0] * SHAPE[1]).reshape(SHAPE),
        dtype=np.float64,
        requires_grad=True,
    )
    b = (x * x).reshape((-1,))
    loss = (b * b).sum()
    (gx,) = gw.grad(loss, x, create_graph=True)
    (gxx,) = gw.grad(gx.sum(), x)
    np.testing.assert_allclose(gx.numpy(), 4 * x.numpy() ** 3, rtol=1e-12)
    np.testing.assert_allclose(gxx.numpy(), 12 * x.numpy() ** 2, rtol=1e-12)
