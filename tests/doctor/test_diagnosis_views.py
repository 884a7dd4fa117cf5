"""The loss views shared by the detectors of one diagnosis are those of the loss as it is
then."""

from __future__ import annotations

import contextlib
import math

import numpy as np
import pytest

from gradwell.doctor import diagnosis
from gradwell.doctor.profile import ModelProfile
from gradwell.doctor.trace import Trace


def loss_trace(values):
    t = Trace()
    t.loss.extend(values)
    return t


@pytest.mark.parametrize(
    "values,first_bad,middle",
    [
        ([3.0, 1.0, 2.0], -1, 2.0),
        ([], -1, math.nan),
        ([1.0, math.nan, 2.0, math.inf], 1, 1.0),
        ([4.0, 2.0, -math.inf], 2, 3.0),
        ([math.nan, 1.0], 0, math.nan),
        ([1e308, 1e308, 1.0], -1, 1e308),  # (a sum would overflow)
    ],
)
def test_the_loss_views_of_a_diagnosis_are_those_of_the_loss(values, first_bad, middle):
    t = loss_trace(values)
    for held in (False, True):  # computed afresh, then shared by a diagnosis
        with t.diagnosing() if held else contextlib.nullcontext():
            for _ in range(2):
                assert t.first_nonfinite_loss() == first_bad
                assert np.array_equal(t.loss_array(), values, equal_nan=True)
                assert t.finite_loss_median() == middle or math.isnan(middle)
                assert math.isnan(t.finite_loss_median()) == math.isnan(middle)
            assert (t.loss_array() is t.loss_array()) == held
            assert not t.loss_array().flags.writeable
    assert t._views is None
    t.loss.append(math.nan)  # no view pins the loss's buffer after a diagnosis: it can grow
    assert t.first_nonfinite_loss() == (first_bad if first_bad >= 0 else len(values))


def test_each_diagnosis_reads_the_loss_as_it_is_then():
    t = loss_trace([1.0] * 30)
    prof = ModelProfile(order=["0"], types={"0": "Linear"}, layers=["0"], lrs=[0.1])
    assert not [f for f in diagnosis.detect_all(t, prof) if f.kind == "learning_rate_too_high"]
    t.loss.extend([1e6] * 30)  # the loss diverged since the last diagnosis
    kinds = [f.kind for f in diagnosis.detect_all(t, prof)]
    assert "learning_rate_too_high" in kinds
