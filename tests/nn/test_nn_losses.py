"""Losses against their formulas computed here with numpy, reductions, stability, errors."""

from __future__ import annotations

import numpy as np
import pytest

import gradwell as gw
from gradwell import nn

RNG = np.random.default_rng(0)
PRED = RNG.standard_normal((6, 3)) * 2
TARGET = RNG.standard_normal((6, 3))


def t64(a):
    return gw.tensor(a, dtype="float64")


def reduce(values, reduction):
    return {"mean": values.mean(), "sum": values.sum(), "none": values}[reduction]


def log_softmax(x):
    m = x.max(1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(1, keepdims=True))


REDUCTIONS = ["mean", "sum", "none"]

# --- regression losses ----------------------------------------------------------------------


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_l1_huber_follow_their_formulas(reduction):
    d = PRED - TARGET
    delta = 0.8
    huber = np.where(np.abs(d) <= delta, 0.5 * d**2, delta * (np.abs(d) - 0.5 * delta))
    cases = [
        (nn.MSELoss(reduction), d**2),
        (nn.L1Loss(reduction), np.abs(d)),
        (nn.HuberLoss(reduction, delta=delta), huber),
    ]
    for loss_fn, elementwise in cases:
        out = loss_fn(t64(PRED), t64(TARGET)).numpy()
        np.testing.assert_allclose(out, reduce(elementwise, reduction), rtol=1e-12)


def test_huber_gradient_is_d_inside_and_delta_sign_outside():
    x = gw.tensor([-3.0, -0.5, 0.25, 2.0], dtype="float64", requires_grad=True)
    nn.HuberLoss(reduction="sum", delta=1.0)(x, np.zeros(4)).backward()
    np.testing.assert_allclose(x.grad.numpy(), [-1.0, -0.5, 0.25, 1.0])


# --- binary cross-entropy -------------------------------------------------------------------


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_with_logits_follows_the_formula(reduction):
    y = (TARGET > 0).astype(float)
    s = 1 / (1 + np.exp(-PRED))
    expected = -(y * np.log(s) + (1 - y) * np.log(1 - s))
    out = nn.BCEWithLogitsLoss(reduction=reduction)(t64(PRED), t64(y)).numpy()
    np.testing.assert_allclose(out, reduce(expected, reduction), rtol=1e-10)


def test_bce_with_logits_pos_weight_and_weight():
    y = 1 / (1 + np.exp(-TARGET))  # soft targets in (0, 1)
    pw, w = np.array([1.0, 3.0, 0.5]), RNG.uniform(0.5, 2, (6, 3))
    s = 1 / (1 + np.exp(-PRED))
    expected = -w * (pw * y * np.log(s) + (1 - y) * np.log(1 - s))
    loss = nn.BCEWithLogitsLoss(weight=t64(w), pos_weight=t64(pw))
    np.testing.assert_allclose(loss(t64(PRED), t64(y)).item(), expected.mean(), rtol=1e-10)


def test_bce_with_logits_is_stable_for_huge_logits():
    x = gw.tensor([1e4, -1e4, 1e4, -1e4], requires_grad=True)
    loss = nn.BCEWithLogitsLoss(reduction="none")(x, [1.0, 0.0, 0.0, 1.0])
    np.testing.assert_allclose(loss.numpy(), [0.0, 0.0, 1e4, 1e4])
    loss.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.0, 0.0, 1.0, -1.0])


# --- cross-entropy -----------------------------------------------------------------------------

LOGITS = RNG.standard_normal((5, 4)) * 3
CLASSES = np.array([3, 0, 1, 1, 2])
ONEHOT = np.eye(4)[CLASSES]


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_with_class_indices(reduction):
    expected = -log_softmax(LOGITS)[np.arange(5), CLASSES]
    out = nn.CrossEntropyLoss(reduction=reduction)(t64(LOGITS), CLASSES).numpy()
    np.testing.assert_allclose(out, reduce(expected, reduction), rtol=1e-12)


@pytest.mark.parametrize("eps", [0.1, 0.3, 1.0])
def test_cross_entropy_label_smoothing(eps):
    q = (1 - eps) * ONEHOT + eps / 4
    expected = -(q * log_softmax(LOGITS)).sum(1).mean()
    out = nn.CrossEntropyLoss(label_smoothing=eps)(t64(LOGITS), CLASSES).item()
    np.testing.assert_allclose(out, expected, rtol=1e-12)


def test_cross_entropy_probability_targets_with_smoothing():
    p = np.exp(TARGET[:5, :3])
    p /= p.sum(1, keepdims=True)
    logits = LOGITS[:, :3]
    expected = -(p * log_softmax(logits)).sum(1)
    out = nn.CrossEntropyLoss(reduction="none")(t64(logits), t64(p)).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    q = 0.8 * p + 0.2 / 3
    out = nn.CrossEntropyLoss(label_smoothing=0.2)(t64(logits), t64(p)).item()
    np.testing.assert_allclose(out, -(q * log_softmax(logits)).sum(1).mean(), rtol=1e-12)


def test_cross_entropy_class_weights_divide_the_mean_by_the_total_weight():
    w = np.array([0.5, 2.0, 1.0, 3.0])
    per_row = -w[CLASSES] * log_softmax(LOGITS)[np.arange(5), CLASSES]
    out = nn.CrossEntropyLoss(weight=w)(t64(LOGITS), CLASSES).item()
    np.testing.assert_allclose(out, per_row.sum() / w[CLASSES].sum(), rtol=1e-12)
    out = nn.CrossEntropyLoss(weight=w, reduction="sum")(t64(LOGITS), CLASSES).item()
    np.testing.assert_allclose(out, per_row.sum(), rtol=1e-12)


def test_cross_entropy_weights_with_label_smoothing_as_pytorch():
    w, eps = np.array([0.5, 2.0, 1.0, 3.0]), 0.2
    logp = log_softmax(LOGITS)
    nll = -(w[CLASSES] * logp[np.arange(5), CLASSES]).sum() / w[CLASSES].sum()
    smooth = -(logp * w).sum(1).sum() / w[CLASSES].sum()
    expected = (1 - eps) * nll + eps / 4 * smooth
    out = nn.CrossEntropyLoss(weight=w, label_smoothing=eps)(t64(LOGITS), CLASSES).item()
    np.testing.assert_allclose(out, expected, rtol=1e-12)


def test_cross_entropy_ignore_index_skips_rows():
    labels = np.array([3, -100, 1, -100, 2])
    keep = labels != -100
    per_row = -log_softmax(LOGITS)[np.arange(5)[keep], labels[keep]]
    out = nn.CrossEntropyLoss()(t64(LOGITS), labels).item()
    np.testing.assert_allclose(out, per_row.mean(), rtol=1e-12)
    x = gw.tensor(LOGITS, dtype="float64", requires_grad=True)
    nn.CrossEntropyLoss(ignore_index=1)(x, CLASSES).backward()
    assert not x.grad.numpy()[[2, 3]].any()  # rows of class 1 pass no gradient
    none = nn.CrossEntropyLoss(reduction="none", ignore_index=1)(t64(LOGITS), CLASSES).numpy()
    assert none[2] == 0 and none[3] == 0


def test_cross_entropy_is_stable_for_logits_of_1e4():
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4], [1e4, 1e4, 1e4]])
    out = nn.CrossEntropyLoss(reduction="none")(gw.tensor(logits), [0, 0, 2]).numpy()
    np.testing.assert_allclose(out, [0.0, 2e4 + np.log(2), np.log(3)], rtol=1e-6)
    out = nn.CrossEntropyLoss(label_smoothing=0.1)(gw.tensor(logits), [0, 0, 2])
    assert np.isfinite(out.item())


def test_nll_loss_follows_the_formula():
    logp = log_softmax(LOGITS)
    w = np.array([0.5, 2.0, 1.0, 3.0])
    for reduction in REDUCTIONS:
        out = nn.NLLLoss(weight=w, reduction=reduction)(t64(logp), CLASSES).numpy()
        per_row = -w[CLASSES] * logp[np.arange(5), CLASSES]
        expected = (
            per_row.sum() / w[CLASSES].sum() if reduction == "mean" else reduce(per_row, reduction)
        )
        np.testing.assert_allclose(out, expected, rtol=1e-12)


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "loss_fn", [nn.MSELoss(), nn.L1Loss(), nn.HuberLoss(), nn.BCEWithLogitsLoss()], ids=repr
)
def test_shape_mismatch_names_the_loss_and_both_shapes(loss_fn):
    with pytest.raises(
        ValueError,
        match=r"in .*Loss\(.*input shape \(4, 1\) and target shape "
        r"\(4,\) must be equal \(an \(N, 1\) output",
    ):
        loss_fn(gw.zeros(4, 1), np.zeros(4))


def test_functional_losses_name_themselves_in_errors():
    with pytest.raises(
        ValueError, match=r"^mse_loss: input shape \(2, 3\) and target shape \(3, 2\)"
    ):
        nn.functional.mse_loss(gw.zeros(2, 3), np.zeros((3, 2)))


def test_cross_entropy_target_errors():
    ce = nn.CrossEntropyLoss()
    with pytest.raises(ValueError, match=r"class-index target must have shape \(5,\).*\(5, 1\)"):
        ce(gw.zeros(5, 4), np.zeros((5, 1), dtype=int))
    with pytest.raises(ValueError, match=r"target class 4 at row 2 is outside \[0, 4\)"):
        ce(gw.zeros(5, 4), [0, 1, 4, 0, 0])
    with pytest.raises(ValueError, match=r"probability target must have the input's shape"):
        ce(gw.zeros(5, 4), np.zeros((5, 3)))
    with pytest.raises(ValueError, match=r"input must have shape \(N, C\)"):
        ce(gw.zeros(4), [1])
    with pytest.raises(TypeError, match="integer class indices or float class probabilities"):
        ce(gw.zeros(2, 2), np.array([True, False]))
    with pytest.raises(ValueError, match=r"weight must have one entry per class"):
        nn.CrossEntropyLoss(weight=[1.0, 2.0])(gw.zeros(2, 3), [0, 1])


@pytest.mark.parametrize(
    "make",
    [nn.MSELoss, nn.L1Loss, nn.HuberLoss, nn.BCEWithLogitsLoss, nn.CrossEntropyLoss, nn.NLLLoss],
)
def test_unknown_reduction_is_rejected_up_front(make):
    with pytest.raises(ValueError, match=r"reduction must be 'mean', 'sum' or 'none'; got 'avg'"):
        make(reduction="avg")


def test_other_bad_configuration():
    with pytest.raises(ValueError, match="delta must be positive"):
        nn.HuberLoss(delta=0.0)
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\]"):
        nn.CrossEntropyLoss(label_smoothing=1.5)
