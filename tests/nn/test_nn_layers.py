"""Linear, activations, Flatten, Identity, Sequential and ModuleList against their definitions."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest

import gradwell as gw
from gradwell import nn

# --- Linear ------------------------------------------------------------------------------


def test_linear_computes_x_times_weight_transposed_plus_bias():
    layer = nn.Linear(3, 2, rng=0)
    assert layer.weight.shape == (2, 3) and layer.bias.shape == (2,)
    layer.bias.data[...] = [0.5, -1.0]
    x = np.random.default_rng(1).standard_normal((4, 3)).astype(np.float32)
    expected = x @ layer.weight.numpy().T + layer.bias.numpy()
    np.testing.assert_allclose(layer(gw.tensor(x)).numpy(), expected, rtol=1e-6)


def test_linear_flattens_leading_axes():
    layer = nn.Linear(4, 3, rng=0)
    x = np.random.default_rng(1).standard_normal((2, 5, 4)).astype(np.float32)
    out = layer(gw.tensor(x))
    assert out.shape == (2, 5, 3)
    np.testing.assert_allclose(out.numpy()[1, 2], layer(gw.tensor(x[1, 2:3])).numpy()[0], rtol=1e-6)


def test_linear_without_bias():
    layer = nn.Linear(3, 2, bias=False, rng=0)
    assert layer.bias is None and [n for n, _ in layer.named_parameters()] == ["weight"]
    x = np.ones((1, 3), np.float32)
    np.testing.assert_allclose(layer(x).numpy(), layer.weight.numpy().sum(1, keepdims=True).T)


def test_linear_backward_matches_the_formulas():
    layer = nn.Linear(3, 2, rng=0)
    x = gw.tensor(np.random.default_rng(1).standard_normal((5, 3)), requires_grad=True)
    g = np.random.default_rng(2).standard_normal((5, 2)).astype(np.float32)
    (layer(x) * gw.tensor(g)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), g @ layer.weight.numpy(), rtol=1e-5)
    np.testing.assert_allclose(layer.weight.grad.numpy(), g.T @ x.numpy(), rtol=1e-5)
    np.testing.assert_allclose(layer.bias.grad.numpy(), g.sum(0), rtol=1e-5)


def test_linear_init_choices_and_seeds():
    assert np.array_equal(
        nn.Linear(5, 4, rng=3).weight.numpy(), nn.Linear(5, 4, rng=3).weight.numpy()
    )
    assert not np.array_equal(
        nn.Linear(5, 4, rng=3).weight.numpy(), nn.Linear(5, 4, rng=4).weight.numpy()
    )
    he = nn.Linear(50, 40, rng=0).weight.numpy()
    assert np.abs(he).max() <= math.sqrt(6 / 50)  # kaiming uniform bound sqrt(2) * sqrt(3 / fan_in)
    glorot = nn.Linear(50, 40, init="xavier", rng=0).weight.numpy()
    assert np.abs(glorot).max() <= math.sqrt(6 / 90)
    assert np.abs(glorot).max() > 0.9 * math.sqrt(6 / 90)
    custom = nn.Linear(3, 2, init=functools.partial(nn.init.constant_, val=0.25))
    np.testing.assert_array_equal(custom.weight.numpy(), np.full((2, 3), 0.25))
    assert not nn.Linear(3, 2).bias.numpy().any()  # biases start at zero


def test_linear_rejects_bad_configuration_and_input():
    with pytest.raises(ValueError, match="unknown init 'orthogonal'"):
        nn.Linear(3, 2, init="orthogonal")
    with pytest.raises(ValueError, match="in_features must be a positive integer"):
        nn.Linear(0, 2)
    with pytest.raises(ValueError, match=r"in_features=3 .* got an input of shape \(4, 5\)"):
        nn.Linear(3, 2)(gw.zeros(4, 5))


def test_linear_keeps_float32_for_numpy_float64_input():
    out = nn.Linear(3, 2, rng=0)(np.ones((2, 3)))
    assert out.dtype == np.float32


# --- activations ----------------------------------------------------------------------------

X = np.array([-3.0, -0.5, 0.0, 0.5, 3.0])


@pytest.mark.parametrize(
    "layer,expected",
    [
        (nn.ReLU(), np.maximum(X, 0)),
        (nn.LeakyReLU(0.2), np.where(X > 0, X, 0.2 * X)),
        (nn.LeakyReLU(), np.where(X > 0, X, 0.01 * X)),
        (nn.ELU(alpha=1.5), np.where(X > 0, X, 1.5 * (np.exp(X) - 1))),
        (nn.GELU(), X * 0.5 * (1 + np.array([math.erf(v / math.sqrt(2)) for v in X]))),
        (nn.Sigmoid(), 1 / (1 + np.exp(-X))),
        (nn.Tanh(), np.tanh(X)),
        (nn.Softplus(), np.log1p(np.exp(X))),
        (nn.Softplus(beta=2.0, threshold=1.0), np.where(2 * X > 1, X, np.log1p(np.exp(2 * X)) / 2)),
        (nn.Identity(), X),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, nn.Module) else "",
)
def test_activation_layers_follow_their_formulas(layer, expected):
    out = layer(gw.tensor(X, dtype="float64"))
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=1e-15)


def test_softmax_layer_normalises_along_its_axis():
    x = np.random.default_rng(0).standard_normal((3, 4))
    for axis in (0, -1):
        out = nn.Softmax(axis=axis)(gw.tensor(x, dtype="float64")).numpy()
        e = np.exp(x)
        np.testing.assert_allclose(out, e / e.sum(axis=axis, keepdims=True), rtol=1e-12)


def test_activation_reprs_show_their_configuration():
    assert repr(nn.LeakyReLU(0.2)) == "LeakyReLU(negative_slope=0.2)"
    assert repr(nn.ELU()) == "ELU(alpha=1.0)"
    assert repr(nn.Softplus()) == "Softplus(beta=1.0, threshold=20.0)"
    assert repr(nn.Softmax()) == "Softmax(axis=-1)"


def test_relu_gradient_at_zero_is_zero():
    x = gw.tensor([0.0, 1.0], requires_grad=True)
    nn.ReLU()(x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 1.0])


# --- Flatten, Sequential, ModuleList ---------------------------------------------------


def test_flatten_merges_the_chosen_axes():
    x = gw.zeros(2, 3, 4, 5)
    assert nn.Flatten()(x).shape == (2, 60)
    assert nn.Flatten(0, 1)(x).shape == (6, 4, 5)
    assert nn.Flatten(1, 2)(x).shape == (2, 12, 5)


def test_sequential_applies_layers_in_order():
    a, b = nn.Linear(3, 4, rng=0), nn.Linear(4, 2, rng=1)
    seq = nn.Sequential(a, nn.ReLU(), b)
    x = gw.randn(5, 3, rng=0)
    np.testing.assert_allclose(seq(x).numpy(), b(gw.relu(a(x))).numpy())


def test_sequential_indexing_len_iter_append_and_slices():
    layers = [nn.Linear(2, 2, rng=0), nn.ReLU(), nn.Linear(2, 3, rng=1)]
    seq = nn.Sequential(*layers)
    assert len(seq) == 3 and list(seq) == layers
    assert seq[0] is layers[0] and seq[-1] is layers[2]
    head = seq[:2]
    assert isinstance(head, nn.Sequential) and list(head) == layers[:2]
    assert head(gw.ones(1, 2)).shape == (1, 2)
    seq.append(nn.Tanh())
    assert len(seq) == 4 and [n for n, _ in seq.named_children()] == ["0", "1", "2", "3"]
    with pytest.raises(IndexError, match="out of range"):
        seq[4]
    with pytest.raises(TypeError, match="expected a gw.nn.Module"):
        seq.append(gw.relu)
    with pytest.raises(TypeError, match=r"Sequential\(\*layers\)"):
        nn.Sequential(layers)


def test_module_list_registers_its_items():
    blocks = nn.ModuleList([nn.Linear(2, 2, rng=0) for _ in range(3)])
    assert len(list(blocks.parameters())) == 6
    blocks[1] = nn.Linear(2, 5, rng=1)
    assert blocks[1].out_features == 5
    assert [n for n, _ in blocks.named_parameters()][2:4] == ["1.weight", "1.bias"]
