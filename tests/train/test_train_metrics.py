"""Metrics against their formulas, and accumulators against the one-shot functions."""

import math

import numpy as np
import pytest

from gradwell.train import metrics as M


def test_accuracy_multiclass_binary_and_labels():
    scores = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [0.5, 0.4, 0.9], [1.0, 0.0, 0.0]])
    y = np.array([0, 1, 0, 0])
    assert M.accuracy(y, scores) == 3 / 4
    probs = np.array([0.9, 0.2, 0.6, 0.4])
    assert M.accuracy([1, 0, 0, 0], probs) == 3 / 4
    assert M.accuracy([1, 0, 0, 0], probs.reshape(-1, 1)) == 3 / 4
    assert M.accuracy([1, 0, 1, 0], np.array([-1.0, -2.0, 0.5, 3.0]), threshold=0.0) == 2 / 4
    assert M.accuracy(np.eye(3)[[0, 1, 2]], np.eye(3)[[0, 2, 2]]) == 2 / 3  # one-hot targets
    assert M.accuracy([1, 2, 3], np.array([1, 2, 0])) == 2 / 3  # predicted labels


def test_top_k_accuracy_counts_true_class_among_k_highest():
    scores = np.array([[0.1, 0.5, 0.4], [0.6, 0.3, 0.1], [0.2, 0.3, 0.5]])
    y = np.array([2, 2, 0])
    # ranks of the true class: 2nd, 3rd, 3rd
    assert M.top_k_accuracy(y, scores, k=1) == 0.0
    assert M.top_k_accuracy(y, scores, k=2) == 1 / 3
    assert M.top_k_accuracy(y, scores, k=3) == 1.0
    assert M.top_k_accuracy(y, scores, k=10) == 1.0


def test_regression_metrics_match_formulas():
    t = np.array([1.0, 2.0, 4.0, -1.0])
    p = np.array([1.5, 2.0, 3.0, 1.0])
    err = p - t
    assert M.mse(t, p) == pytest.approx(np.sum(err**2) / 4)
    assert M.rmse(t, p) == pytest.approx(math.sqrt(np.sum(err**2) / 4))
    assert M.mae(t, p) == pytest.approx(np.sum(np.abs(err)) / 4)
    ss_tot = np.sum((t - t.mean()) ** 2)
    assert M.r2(t, p) == pytest.approx(1 - np.sum(err**2) / ss_tot)
    assert M.mse(t, p.reshape(-1, 1)) == pytest.approx(M.mse(t, p))  # column vs vector


def test_r2_multi_output_averages_and_constant_target_convention():
    t = np.array([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0]])
    p = np.array([[1.0, 5.0], [2.0, 5.0], [4.0, 5.0]])
    first = 1 - 1.0 / 2.0  # SS_res = 1, SS_tot = 2; second output is constant and exact: 1
    assert M.r2(t, p) == pytest.approx((first + 1.0) / 2)
    assert M.r2([5.0, 5.0], [5.0, 4.0]) == 0.0


@pytest.mark.parametrize(
    "name, fn",
    [
        ("accuracy", M.accuracy),
        ("mse", M.mse),
        ("rmse", M.rmse),
        ("mae", M.mae),
        ("r2", M.r2),
        ("top_2_accuracy", lambda t, p: M.top_k_accuracy(t, p, k=2)),
    ],
)
def test_accumulated_over_batches_equals_the_whole_data_value(name, fn):
    rng = np.random.default_rng(0)
    if "accuracy" in name:
        t = rng.integers(0, 4, size=103)
        p = rng.normal(size=(103, 4))
    else:
        t = rng.normal(loc=1e3, size=(103, 2))  # far from 0: tests the stable variance merge
        p = t + rng.normal(size=(103, 2))
    acc = M.get(name)
    for start in range(0, 103, 17):  # uneven batches
        acc.update(t[start : start + 17], p[start : start + 17])
    assert acc.result() == pytest.approx(fn(t, p), rel=1e-9)
    acc.reset()
    assert math.isnan(acc.result())


def test_get_resolves_names_functions_and_callables():
    assert M.get("accuracy").name == "accuracy"
    assert M.get("top_3_accuracy").k == 3
    assert M.get(M.rmse).name == "rmse"
    assert M.get("accuracy", logits=True).threshold == 0.0

    def hits(y_true, y_pred):
        return float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))

    custom = M.get(hits)
    custom.update([1, 2], [1, 0])  # 0.5 on 2 examples
    custom.update([1, 1, 1, 1], [1, 1, 1, 1])  # 1.0 on 4
    assert custom.name == "hits" and custom.result() == pytest.approx(5 / 6)
    with pytest.raises(ValueError, match="unknown metric 'f1'"):
        M.get("f1")


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match=r"mse: y_true and y_pred must have the same shape"):
        M.mse(np.zeros(3), np.zeros((4, 2)))
