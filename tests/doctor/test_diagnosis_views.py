"""What one diagnosis shares or keeps between diagnoses gives the findings a fresh judgement
would: the batch-norm finding handed out again between checks changes when any number it is
made from changes, and is a copy; the loss views shared by the detectors of one diagnosis are
those of the loss as it is then."""

from __future__ import annotations

import contextlib
import math

import numpy as np
import pytest
from doctor.test_batchnorm_statistics import PROFILE, trace_with

from gradwell.doctor import detectors_batchnorm as bn
from gradwell.doctor import diagnosis
from gradwell.doctor.phrasing import speaking
from gradwell.doctor.profile import ModelProfile
from gradwell.doctor.thresholds import Thresholds
from gradwell.doctor.trace import Trace


def judged(t, prof=PROFILE, th=None):
    """The finding as the detector hands it out, and as judged afresh (no kept finding)."""
    th = th or Thresholds()
    kept = bn.detect_batchnorm_statistics(t, prof, th)
    fresh = bn._judge(t, prof, th)
    return kept, fresh


def same(a, b):
    return (a is None and b is None) or (a is not None and b is not None
                                          and a.to_dict() == b.to_dict())  # fmt: skip


def test_the_batchnorm_finding_changes_with_every_number_it_is_made_from():
    t = trace_with(0.5, 0.1, 1.0, 1.0, momentum=0.001)
    first, fresh = judged(t)
    assert first is not None and same(first, fresh)
    again, _ = judged(t)
    assert same(again, first) and again is not first
    rec = t.batchnorm["1"]
    changes = [
        lambda: rec["mean_shift"].append(0.05),  # a new check: the statistics now fit
        lambda: rec["mean_shift"].append(2.0),  # and miss again, further
        lambda: rec["momentum"].append(0.9),  # another remedy
        lambda: rec["step"].append(150),  # a later step (and onset)
        lambda: t.batchnorm_loss["eval_loss"].append(0.9),  # a larger gap: critical
        lambda: t.batchnorm_loss["eval_loss"].append(0.11),  # a gap too small to matter
        lambda: t.batchnorm_loss["eval_loss"].append(0.5),
        lambda: t.setup.update(batch_size=4),  # a tiny batch: one more remedy
        lambda: t.setup["probe"].update(loss=0.2),  # less gained in training
        lambda: t.epoch_starts.extend([0, 120]),  # the step is now in epoch 2
    ]
    seen = [first.to_dict()]
    for change in changes:
        change()
        kept, fresh = judged(t)
        assert same(kept, fresh)
        seen.append(kept.to_dict() if kept is not None else None)
        assert seen[-1] != seen[-2]
    # the profile, the thresholds and the framework of the texts
    prof = ModelProfile(order=PROFILE.order, types={**PROFILE.types, "1": "BatchNorm2d"},
                        layers=PROFILE.layers, batchnorm=PROFILE.batchnorm)  # fmt: skip
    for args in [(t, prof), (t, PROFILE, Thresholds(bn_gap=10.0))]:
        kept, fresh = judged(*args)
        assert same(kept, fresh) and not same(kept, judged(t)[0])
    with speaking("keras"):
        kept, fresh = judged(t)
    assert same(kept, fresh) and not same(kept, judged(t)[0])


def test_a_batchnorm_finding_handed_out_again_is_not_changed_by_relating_the_last_one():
    t = trace_with(0.5, 0.1, 1.0, 1.0, momentum=0.001)
    first = bn.detect_batchnorm_statistics(t, PROFILE, Thresholds())
    before = first.to_dict()
    first.remedies.insert(0, "fix the cause first")
    first.actions[0]["momentum"] = 0.5
    first.evidence["layers"]["1"]["mean_shift"] = 0.0
    first.caused_by.append("dropout_misconfigured")
    assert bn.detect_batchnorm_statistics(t, PROFILE, Thresholds()).to_dict() == before


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
