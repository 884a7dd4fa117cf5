"""Two output/loss mismatches the setup check knows in every framework (gradwell.keras's
tests rebuild them in Keras): a linear output before a loss that takes probabilities, and a
regression loss on class labels with one output per class."""

from __future__ import annotations

import numpy as np
import pytest
from doctor.kit import dataset

import gradwell as gw

nn = gw.nn


def head(C, *tail):
    return nn.Sequential(nn.Linear(6, 16, rng=0), nn.ReLU(), nn.Linear(16, C, rng=1), *tail)


def mismatch(found):
    return next((f for f in found if f.kind == "output_loss_mismatch"), None)


@pytest.mark.filterwarnings("ignore:invalid value encountered in log:RuntimeWarning")  # (the probe)
def test_a_linear_output_before_a_loss_on_probabilities_and_its_remedy():
    X, y, _ = dataset("blobs", 0)
    yb = (y == 0).astype(np.float32)[:, None]
    f = mismatch(gw.doctor.check(head(1), nn.BCELoss(), None, X, yb))
    assert f is not None and f.where == "2" and f.severity == "critical"
    assert f.actions[0] == {"action": "replace_loss", "loss": "bce_with_logits"}
    assert "gw.nn.BCEWithLogitsLoss()" in f.remedies[0]
    assert mismatch(gw.doctor.check(head(1, nn.Sigmoid()), nn.BCELoss(), None, X, yb)) is None
    assert mismatch(gw.doctor.check(head(1), "bce_with_logits", None, X, yb)) is None


def test_a_regression_loss_on_class_labels_and_its_remedy():
    X, y, C = dataset("blobs", 0)
    f = mismatch(gw.doctor.check(head(C), "mse", None, X, y[:, None].astype(np.float32)))
    assert f is not None and f.where == "loss" and f.severity == "critical"
    assert f.actions[0] == {"action": "replace_loss", "loss": "cross_entropy"}
    assert mismatch(gw.doctor.check(head(C), "cross_entropy", None, X, y)) is None
    # one output for an ordered target (a rating, a count) is a regression: no finding
    assert mismatch(gw.doctor.check(head(1), "mse", None, X, y[:, None].astype(np.float32))) is None
