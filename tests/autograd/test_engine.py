"""Backward semantics: ordering, accumulation, freeing, higher order, modes, hooks, errors."""

from __future__ import annotations

import numpy as np
import pytest

import gradwell as gw
from gradwell.autograd.engine import GraphReleasedError


def test_chain_20000_deep_has_no_recursion_limit():
    x = gw.tensor(1.0, requires_grad=True)
    h = x
    for _ in range(20_000):
        h = h * 1.0001
    h.backward()
    assert x.grad.item() == pytest.approx(1.0001**20_000, rel=1e-3)


def _diamonds(x, levels):
    for _ in range(levels):
        a = gw.tanh(x)
        b = x * 0.5
        x = a + b
    return x


def test_200_diamonds_visit_each_node_once():
    """2**200 paths, yet backward computes each node's gradient exactly once."""
    x = gw.tensor(0.3, dtype="float64", requires_grad=True)
    y = _diamonds(x, 200)
    visits: list[int] = []
    with gw.autograd.observe(grad=lambda node, g: visits.append(id(node))):
        y.backward()
    assert len(visits) == len(set(visits)) == 3 * 200 + 1  # tanh, mul, add per level; x
    # the value agrees with the chain rule applied level by level
    v, d = 0.3, 1.0
    for _ in range(200):
        d *= (1 - np.tanh(v) ** 2) + 0.5
        v = np.tanh(v) + 0.5 * v
    assert x.grad.item() == pytest.approx(d, rel=1e-10)


def test_shared_subresult_contributions_are_summed():
    x = gw.tensor(2.0, requires_grad=True)
    s = x * x  # used three times
    (s + s * 3 + gw.exp(s * 0)).backward()
    assert x.grad.item() == pytest.approx(4 * 2.0 * 2)


def test_leaf_gradients_accumulate_until_zeroed():
    x = gw.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3 + 2, 3 + 4])
    x.grad = None
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3, 3])


def test_same_gradient_array_is_not_shared_between_leaves():
    a = gw.tensor([1.0], requires_grad=True)
    b = gw.tensor([1.0], requires_grad=True)
    (a + b).sum().backward()
    a.grad.data *= 10  # in-place change of one leaf's gradient must not leak into the other
    assert b.grad.item() == 1.0


def test_graph_is_freed_and_second_backward_names_the_op():
    x = gw.tensor([1.0], requires_grad=True)
    y = gw.tanh(x).sum()
    y.backward()
    with pytest.raises(GraphReleasedError, match="'sum'"):
        y.backward()


def test_retain_graph_allows_second_backward():
    x = gw.tensor([1.0, 2.0], requires_grad=True)
    y = (gw.exp(x)).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.exp([1.0, 2.0]), rtol=1e-6)


def test_non_scalar_backward_needs_a_gradient():
    x = gw.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"one-element output; got shape \(2,\)"):
        (x * 2).backward()
    (x * 2).backward(grad=[1.0, 10.0])
    np.testing.assert_allclose(x.grad.numpy(), [2, 20])


def test_backward_on_tensor_without_grad_is_an_error():
    with pytest.raises(RuntimeError, match="does not require grad"):
        gw.tensor([1.0]).sum().backward()


def test_integer_tensor_cannot_require_grad():
    with pytest.raises(TypeError, match="only floating-point tensors can require gradients"):
        gw.tensor([1, 2], requires_grad=True)


def test_matmul_shape_error_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(4, 5\)"):
        gw.ones(2, 3) @ gw.ones(4, 5)


def test_broadcast_error_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(2,3\) \(4,\)|\(2, 3\).*\(4,\)"):
        gw.ones(2, 3) + gw.ones(4)


def test_no_grad_records_nothing_and_enable_grad_restores():
    x = gw.tensor([1.0], requires_grad=True)
    with gw.no_grad():
        y = x * 2
        with gw.enable_grad():
            z = x * 2
    assert not y.requires_grad and y.is_leaf
    assert z.requires_grad and not z.is_leaf
    assert gw.is_grad_enabled()


def test_grad_returns_gradients_without_touching_dot_grad():
    x = gw.tensor(3.0, requires_grad=True)
    y = gw.tensor(2.0, requires_grad=True)
    gx, gy = gw.grad(x * x * y, [x, y])
    assert (gx.item(), gy.item()) == (12.0, 9.0)
    assert x.grad is None and y.grad is None


def test_grad_of_unused_input():
    x = gw.tensor(1.0, requires_grad=True)
    u = gw.tensor(1.0, requires_grad=True)
    with pytest.raises(RuntimeError, match="not used"):
        gw.grad(x * 2, [x, u])
    assert gw.grad(x * 2, [x, u], allow_unused=True)[1] is None


def test_grad_with_respect_to_an_intermediate():
    x = gw.tensor(0.5, requires_grad=True)
    h = x * 3
    (gh,) = gw.grad(gw.tanh(h), h)
    assert gh.item() == pytest.approx(1 - np.tanh(1.5) ** 2, rel=1e-6)


@pytest.mark.parametrize(
    "f,second",
    [
        (gw.tanh, lambda v: -2 * np.tanh(v) * (1 - np.tanh(v) ** 2)),
        (gw.sigmoid, lambda v: (s := 1 / (1 + np.exp(-v))) * (1 - s) * (1 - 2 * s)),
        (gw.softplus, lambda v: (s := 1 / (1 + np.exp(-v))) * (1 - s)),
        (gw.exp, np.exp),
        (gw.log, lambda v: -1 / v**2),
    ],
)
def test_second_derivatives_of_activations(f, second):
    x = gw.tensor(0.8, dtype="float64", requires_grad=True)
    (d1,) = gw.grad(f(x), x, create_graph=True)
    (d2,) = gw.grad(d1, x)
    assert d2.item() == pytest.approx(second(0.8), rel=1e-9)


def test_hessian_vector_product():
    """f(x) = sum(x_i^2 x_j) style function; compare H v with the analytic Hessian."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 3))
    x = gw.tensor(rng.standard_normal(3), dtype="float64", requires_grad=True)
    v = rng.standard_normal(3)
    f = (x @ gw.tensor(a, dtype="float64") @ x) * (x * x).sum()
    (g,) = gw.grad(f, x, create_graph=True)
    (hv,) = gw.grad((g * gw.tensor(v, dtype="float64")).sum(), x)
    xv = x.numpy()
    q, s = xv @ a @ xv, xv @ xv
    dq = (a + a.T) @ xv
    hessian = (a + a.T) * s + 2 * np.outer(dq, xv) + 2 * np.outer(xv, dq) + 2 * q * np.eye(3)
    np.testing.assert_allclose(hv.numpy(), hessian @ v, rtol=1e-10)


def test_backward_create_graph_accumulates_a_differentiable_grad():
    x = gw.tensor(2.0, dtype="float64", requires_grad=True)
    (x**3).backward(create_graph=True)
    g = x.grad
    assert g.requires_grad
    (d2,) = gw.grad(g, x)
    assert d2.item() == pytest.approx(12.0)


def test_tensor_hook_sees_and_can_replace_the_gradient():
    x = gw.tensor([1.0, 2.0], requires_grad=True)
    h = x * 2
    seen = []
    h.register_hook(lambda g: seen.append(g.numpy().copy()))
    remove = x.register_hook(lambda g: g * 10)
    h.sum().backward()
    np.testing.assert_allclose(seen[0], [1, 1])
    np.testing.assert_allclose(x.grad.numpy(), [20, 20])
    remove()
    x.grad = None
    (x * 2).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2, 2])


def test_a_leaf_hook_fires_as_soon_as_its_gradient_is_complete():
    """Not after the whole graph: a data-parallel reducer starts averaging the top
    layer's gradient while backward still runs through the layers below."""
    rng = np.random.default_rng(0)
    x = gw.tensor(rng.normal(size=(4, 3)))
    leaves = {n: gw.tensor(rng.normal(size=s), requires_grad=True)
              for n, s in (("w1", (3, 5)), ("w2", (5, 2)), ("shared", (3, 3)))}  # fmt: skip
    events = []

    def loss():
        w1, w2, shared = leaves.values()
        h = (x @ shared) @ w1
        h.register_hook(lambda g: events.append(("h", None)))
        out = gw.relu(h) @ w2
        return out.sum() * (shared * shared).sum()  # shared: used at both ends

    loss().backward()
    plain = {n: t.grad.numpy().copy() for n, t in leaves.items()}
    for n, t in leaves.items():
        t.grad = None
        t.register_hook(lambda g, n=n: events.append((n, g.numpy().copy())))
    events.clear()
    loss().backward()
    # w2 is complete before backward reaches h; shared's last use is the first matmul
    assert [n for n, _ in events] == ["w2", "h", "w1", "shared"]
    for n, g in events[:1] + events[2:]:  # each hook saw the sum over all uses, once
        np.testing.assert_array_equal(g, plain[n])
        np.testing.assert_array_equal(leaves[n].grad.numpy(), plain[n])


def test_an_op_observer_sees_every_op_and_is_gone_after_the_block():
    seen = []
    with gw.autograd.observe(op=lambda step: seen.append(step.op.name)):
        gw.tanh(gw.tensor([1.0]) * 2)
    assert seen == ["mul", "tanh"]
    assert not gw.autograd.recording.observers


def test_detach_cuts_the_graph():
    x = gw.tensor(2.0, requires_grad=True)
    y = (x * x).detach() * x
    y.backward()
    assert x.grad.item() == 4.0
