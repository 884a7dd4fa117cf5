"""Issue 16's activations and losses: values by their formulas (and PyTorch where
installed), gradients by central differences in float64."""

from __future__ import annotations

import math

import numpy as np
import pytest

import gradwell as gw

F = gw.nn.functional


def _x(shape=(3, 4), seed=0, scale=3.0):
    data = np.random.default_rng(seed).standard_normal(shape) * scale
    data = np.where(np.abs(data) < 0.1, data + 0.3, data)  # away from the kinks at 0
    return gw.tensor(data, dtype="float64", requires_grad=True)


def _sigmoid(a):
    return 1 / (1 + np.exp(-a))


ACTIVATIONS = {
    "SiLU": (gw.nn.SiLU(), lambda a: a * _sigmoid(a)),
    "SELU": (
        gw.nn.SELU(),
        lambda a: 1.0507009873554805 * np.where(a > 0, a, 1.6732632423543772 * np.expm1(a)),
    ),
    "CELU": (gw.nn.CELU(0.5), lambda a: np.where(a > 0, a, 0.5 * np.expm1(a / 0.5))),
    "Mish": (gw.nn.Mish(), lambda a: a * np.tanh(np.log1p(np.exp(a)))),
    "Hardtanh": (gw.nn.Hardtanh(-2.0, 2.0), lambda a: np.clip(a, -2, 2)),
    "ReLU6": (gw.nn.ReLU6(), lambda a: np.clip(a, 0, 6)),
    "Hardsigmoid": (gw.nn.Hardsigmoid(), lambda a: np.clip(a / 6 + 0.5, 0, 1)),
    "Hardswish": (gw.nn.Hardswish(), lambda a: a * np.clip(a + 3, 0, 6) / 6),
    "Softsign": (gw.nn.Softsign(), lambda a: a / (1 + np.abs(a))),
    "LogSigmoid": (gw.nn.LogSigmoid(), lambda a: np.log(_sigmoid(a))),
    "LogSoftmax": (gw.nn.LogSoftmax(dim=1), lambda a: a - np.log(np.exp(a).sum(1, keepdims=True))),
    "GELU_tanh": (
        gw.nn.GELU(approximate="tanh"),
        lambda a: 0.5 * a * (1 + np.tanh(math.sqrt(2 / math.pi) * (a + 0.044715 * a**3))),
    ),
}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_value_and_gradient(name):
    module, formula = ACTIVATIONS[name]
    x = _x()
    np.testing.assert_allclose(module(x).data, formula(x.data), rtol=1e-10, atol=1e-12)
    assert gw.gradcheck(module, [_x(seed=1)])
    assert module(gw.tensor(x.data.astype(np.float32))).dtype == np.float32


def _probabilities(shape=(3, 4), seed=0):
    return gw.tensor(
        np.random.default_rng(seed).uniform(0.05, 0.95, shape), dtype="float64", requires_grad=True
    )


def test_bce_on_probabilities_is_clamped_like_pytorch():
    p, y = _probabilities(), _probabilities(seed=1).detach()
    expected = -(y.data * np.log(p.data) + (1 - y.data) * np.log(1 - p.data)).mean()
    assert gw.nn.BCELoss()(p, y).item() == pytest.approx(expected, rel=1e-12)
    assert gw.gradcheck(lambda a: F.binary_cross_entropy(a, y), [p])
    edge = F.binary_cross_entropy(gw.tensor([0.0, 1.0]), gw.tensor([1.0, 0.0]), reduction="none")
    np.testing.assert_array_equal(edge.data, [100.0, 100.0])


def test_smooth_l1_and_kl_div():
    x, t = _x(), _x(seed=1).detach()
    d = x.data - t.data
    beta = 0.5
    expected = np.where(np.abs(d) < beta, 0.5 * d * d / beta, np.abs(d) - 0.5 * beta).mean()
    assert gw.nn.SmoothL1Loss(beta=beta)(x, t).item() == pytest.approx(expected, rel=1e-12)
    assert gw.gradcheck(lambda a: F.smooth_l1_loss(a, t, beta=beta), [x])
    logp = gw.log_softmax(_x(seed=2), 1)
    target = gw.softmax(_x(seed=3), 1).detach()
    target.data[0, 0] = 0.0  # a zero target contributes 0
    kl = (target.data * (np.log(np.where(target.data > 0, target.data, 1)) - logp.data)).sum() / 3
    assert gw.nn.KLDivLoss(reduction="batchmean")(logp, target).item() == pytest.approx(
        kl, rel=1e-12
    )
    assert gw.gradcheck(lambda a: F.kl_div(gw.log_softmax(a, 1), target, "sum"), [_x(seed=2)])
    lt = F.kl_div(logp, gw.log(gw.softmax(_x(seed=3), 1)).detach(), "sum", log_target=True)
    assert gw.gradcheck(lambda a: F.kl_div(a, lt.detach() * 0 + target, "sum"), [_x(seed=4)])


def test_against_pytorch():
    torch = pytest.importorskip("torch")
    x = _x()
    tx = torch.tensor(x.data, requires_grad=True)
    pairs = [
        ("SiLU", torch.nn.SiLU()), ("SELU", torch.nn.SELU()), ("CELU", torch.nn.CELU(0.5)),
        ("Mish", torch.nn.Mish()), ("Hardtanh", torch.nn.Hardtanh(-2.0, 2.0)),
        ("ReLU6", torch.nn.ReLU6()), ("Hardsigmoid", torch.nn.Hardsigmoid()),
        ("Hardswish", torch.nn.Hardswish()), ("Softsign", torch.nn.Softsign()),
        ("LogSigmoid", torch.nn.LogSigmoid()), ("LogSoftmax", torch.nn.LogSoftmax(dim=1)),
        ("GELU_tanh", torch.nn.GELU(approximate="tanh")),
    ]  # fmt: skip
    for name, theirs in pairs:
        ours = ACTIVATIONS[name][0]
        x.grad, tx.grad = None, None
        out, ref = ours(x), theirs(tx)
        np.testing.assert_allclose(
            out.data, ref.detach().numpy(), rtol=1e-10, atol=1e-12, err_msg=name
        )
        (out * out).sum().backward()
        (ref * ref).sum().backward()
        np.testing.assert_allclose(
            x.grad.data, tx.grad.numpy(), rtol=1e-7, atol=1e-12, err_msg=name
        )  # PyTorch scales some in float32 constants


@pytest.mark.parametrize("loss", ["cross_entropy", "nll_loss"])
def test_class_losses_per_position(loss):
    fn = getattr(F, loss)
    x = _x((2, 4, 3, 2), seed=5)
    classes = np.random.default_rng(6).integers(0, 4, (2, 3, 2))
    classes[0, 0, 0] = -100  # ignored
    rows = x.data.transpose(0, 2, 3, 1).reshape(-1, 4)
    per_row = fn(gw.tensor(rows, dtype="float64"), classes.reshape(-1), reduction="none").data
    none = fn(x, classes, reduction="none")
    assert none.shape == (2, 3, 2)
    np.testing.assert_allclose(none.data.reshape(-1), per_row, rtol=1e-12)
    assert fn(x, classes).item() == pytest.approx(per_row.sum() / 11, rel=1e-12)
    assert gw.gradcheck(lambda a: fn(a, classes), [x])


def test_one_hot_matches_pytorch_and_refuses_bad_indices():
    labels = np.array([[0, 3], [2, 1]])
    out = F.one_hot(gw.tensor(labels))
    assert out.dtype == np.int64 and out.shape == (2, 2, 4)
    np.testing.assert_array_equal(out.numpy().argmax(-1), labels)
    assert F.one_hot(gw.tensor([1]), 3).tolist() == [[0, 1, 0]]
    torch = pytest.importorskip("torch")
    expected = torch.nn.functional.one_hot(torch.tensor(labels), 5).numpy()
    np.testing.assert_array_equal(F.one_hot(gw.tensor(labels), 5).numpy(), expected)
    with pytest.raises(ValueError, match=r"class indices must be in \[0, 3\); got 0 .. 3"):
        F.one_hot(gw.tensor(labels), 3)
    with pytest.raises(TypeError, match="integer class indices"):
        F.one_hot(gw.tensor([0.5]))
