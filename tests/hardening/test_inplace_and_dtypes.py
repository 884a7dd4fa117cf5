"""In-place writes after forward are refused by backward; only real floating tensors
require grad; a leaf's gradient has the leaf's dtype."""

import numpy as np
import pytest

import gradwell as gw


def test_an_input_written_after_forward_is_refused_naming_the_op():
    x = gw.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    x[...] = 10.0  # the version counter moves: mul's saved input is stale
    with pytest.raises(RuntimeError, match=r"op 'mul': its input 0 \(shape \(2,\)\) was modified"):
        y.backward()
    assert x.grad is None  # nothing half-accumulated


def test_a_saved_output_written_after_forward_is_refused_naming_the_op():
    x = gw.tensor([0.5, -1.0], requires_grad=True)
    y = gw.tanh(x)
    loss = y.sum()
    y.fill_(0.0)  # tanh's VJP reads its output
    with pytest.raises(RuntimeError, match="op 'tanh': its output was modified in place"):
        loss.backward()


def test_writes_before_forward_and_after_backward_are_fine():
    x = gw.tensor([1.0, 2.0], requires_grad=True)
    x[0] = 3.0
    y = (x * x).sum()
    y.backward()
    np.testing.assert_array_equal(x.grad.data, [6.0, 4.0])
    x.zero_()  # after backward: the graph is gone, nothing to protect
    np.testing.assert_array_equal(x.data, [0.0, 0.0])


def test_an_optimizer_step_between_forward_and_backward_is_refused():
    w = gw.nn.Parameter([1.0, -2.0])
    opt = gw.optim.SGD([w], lr=0.1)
    loss = (w * w).sum()
    loss.backward(retain_graph=True)
    opt.step()  # writes w in place
    with pytest.raises(RuntimeError, match="op 'mul'"):
        loss.backward()


def test_load_state_dict_between_forward_and_backward_is_refused():
    model = gw.nn.Linear(3, 2, rng=0)
    loss = model(gw.ones(4, 3)).sum()
    model.load_state_dict(gw.nn.Linear(3, 2, rng=1).state_dict())
    with pytest.raises(RuntimeError, match="op 'linear'"):
        loss.backward()


def test_the_check_also_guards_create_graph():
    x = gw.tensor([1.0, 2.0], dtype="float64", requires_grad=True)
    y = (x**3).sum()
    x[1] = 5.0
    with pytest.raises(RuntimeError, match="op 'pow'"):
        gw.grad(y, x, create_graph=True)


@pytest.mark.parametrize("dtype", ["complex64", "complex128"])
def test_complex_tensors_cannot_require_grad(dtype):
    with pytest.raises(TypeError, match=f"only floating-point tensors.*{dtype}"):
        gw.tensor([1 + 1j], dtype=dtype, requires_grad=True)
    with pytest.raises(TypeError, match="only floating-point tensors"):
        gw.zeros(2, dtype=dtype, requires_grad=True)
    with pytest.raises(TypeError, match="only floating-point tensors"):
        gw.tensor([1 + 1j], dtype=dtype).requires_grad_()
    with pytest.raises(TypeError, match="floating-point"):
        gw.nn.Parameter(np.ones(2, dtype))


def test_a_float32_leaf_next_to_float64_gets_a_float32_gradient():
    x = gw.tensor([1.0, 2.0], requires_grad=True)  # float32
    c = gw.tensor([3.0, 4.0], dtype="float64")
    (x * c).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad.data, [3.0, 4.0])
    (g,) = gw.grad((x * c).sum(), x)
    assert g.dtype == np.float32
    (g,) = gw.grad((x * c * x).sum(), x, create_graph=True)
    assert g.dtype == np.float32
    np.testing.assert_allclose(g.data, [6.0, 16.0])
