"""Every differentiable primitive against float64 central differences, first and second order."""

from __future__ import annotations

import numpy as np
import pytest
from autograd.op_cases import CASES, make_inputs

import gradwell as gw
from gradwell.autograd.ops import REGISTRY, UNARY

try:  # fused ops registered by other subpackages join the registry when imported
    import gradwell.nn  # noqa: F401
except ImportError:
    pass

DIFFERENTIABLE = sorted(name for name, op in REGISTRY.items() if op.vjp is not None)
PARAMS = [(name, i) for name in DIFFERENTIABLE for i in range(len(CASES.get(name, [None])))]


def test_every_differentiable_op_has_a_case():
    missing = [n for n in DIFFERENTIABLE if n not in CASES]
    assert not missing, f"ops without a gradient test case in op_cases.py: {missing}"


@pytest.mark.parametrize("name,i", PARAMS)
def test_first_order(name, i):
    if name not in CASES:
        pytest.fail(f"no case for {name}")
    fn, specs = CASES[name][i]
    for seed in range(2):
        inputs = make_inputs(specs, np.random.default_rng(seed))
        assert gw.gradcheck(fn, inputs)


@pytest.mark.parametrize("name,i", PARAMS)
def test_second_order(name, i):
    """The gradient function, recorded with create_graph, is itself differentiated correctly."""
    if name not in CASES:
        pytest.fail(f"no case for {name}")
    fn, specs = CASES[name][i]
    inputs = make_inputs(specs, np.random.default_rng(7))
    w = np.random.default_rng(8).standard_normal(fn(*inputs).shape)

    def first_grads(*xs):
        out = (fn(*xs) * gw.tensor(w, dtype="float64")).sum()
        grads = gw.grad(out, xs, create_graph=True, allow_unused=True)
        terms = [(g * g).sum() for g in grads if g is not None and g.requires_grad]
        return gw.stack(terms).sum() if terms else None

    probe = first_grads(*inputs)
    if probe is None:  # a linear op: its gradient does not depend on the inputs
        return
    assert gw.gradcheck(first_grads, inputs)


@pytest.mark.parametrize("name", [n for n in DIFFERENTIABLE if n != "astype"])  # casts on request
def test_float32_in_float32_out(name):
    """No op forward or backward silently promotes float32 to float64."""
    if name not in CASES:
        pytest.fail(f"no case for {name}")
    fn, specs = CASES[name][0]
    inputs = [
        gw.tensor(t.data.astype(np.float32), requires_grad=True)
        for t in make_inputs(specs, np.random.default_rng(0))
    ]
    out = fn(*inputs)
    assert out.dtype == np.float32, f"{name} forward gave {out.dtype}"
    out.sum().backward()
    for t in inputs:
        assert t.grad is None or t.grad.dtype == np.float32, f"{name} backward gave {t.grad.dtype}"


_ROW_ATTRS = {  # the unary rows that take attrs
    "clip": {"min": 0, "max": 1},
    "leaky_relu": {"negative_slope": 0.1},
    "elu": {"alpha": 1.0},
    "softplus": {"beta": 1.0, "threshold": 20.0},
}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_each_unary_row_gives_the_dtype_its_row_declares(name):
    """A "float" row computes integers and booleans in float32 (int8 too, where numpy's
    ufuncs give float16); a "same" row keeps the input's dtype; floats stay what they are."""
    rule = UNARY[name][1]
    dtypes = ["int8", "int32", "int64", "float32", "float64"] + (
        ["bool"] if rule == "float" else []
    )
    for dtype in dtypes:
        with np.errstate(all="ignore"):
            out = REGISTRY[name](
                gw.Tensor(np.array([1, 2], dtype=dtype)), **_ROW_ATTRS.get(name, {})
            )
        expected = "float32" if rule == "float" and dtype[0] != "f" else dtype
        assert out.dtype == np.dtype(expected), (name, dtype, out.dtype)


def test_the_namespaces_carry_every_unary_row():
    """First-order VJPs (ArrayF) and create_graph ones (TensorF) see the same primitives."""
    for name, (forward, _) in UNARY.items():
        assert getattr(gw.autograd.ops.ArrayF, name) is forward
        assert getattr(gw.autograd.ops.TensorF, name) is REGISTRY[name]
