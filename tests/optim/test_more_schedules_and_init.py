"""Issue 16's schedules (against their closed forms, and PyTorch where installed),
init orthogonal_ / trunc_normal_, parameters_to_vector."""

from __future__ import annotations

import math

import numpy as np
import pytest

import gradwell as gw

S = gw.optim.lr_scheduler


def _lrs(make, epochs=12):
    opt = gw.optim.SGD([gw.tensor([1.0], requires_grad=True)], lr=0.5)
    sched = make(opt)
    out = [sched.get_last_lr()[0]]
    for _ in range(epochs):
        opt.step()
        sched.step()
        out.append(sched.get_last_lr()[0])
    return out


def test_schedules_follow_their_closed_forms():
    np.testing.assert_allclose(
        _lrs(lambda o: S.LambdaLR(o, lambda e: 0.9**e)), [0.5 * 0.9**e for e in range(13)]
    )
    np.testing.assert_allclose(
        _lrs(lambda o: S.MultiStepLR(o, [3, 7], 0.1)),
        [0.5 * 0.1 ** ((e >= 3) + (e >= 7)) for e in range(13)],
    )
    expected, period, t = [], 3, 0
    for _ in range(13):
        expected.append(0.01 + (0.5 - 0.01) * (1 + math.cos(math.pi * t / period)) / 2)
        t += 1
        if t == period:
            t, period = 0, period * 2
    np.testing.assert_allclose(
        _lrs(lambda o: S.CosineAnnealingWarmRestarts(o, 3, 2, 0.01)), expected
    )


def test_schedules_against_pytorch():
    torch = pytest.importorskip("torch")

    def theirs(make):
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.5)
        sched = make(opt)
        out = [sched.get_last_lr()[0]]
        for _ in range(12):
            opt.step()
            sched.step()
            out.append(sched.get_last_lr()[0])
        return out

    tS = torch.optim.lr_scheduler
    np.testing.assert_allclose(
        _lrs(lambda o: S.MultiStepLR(o, [3, 7])), theirs(lambda o: tS.MultiStepLR(o, [3, 7]))
    )
    np.testing.assert_allclose(
        _lrs(lambda o: S.CosineAnnealingWarmRestarts(o, 3, 2, 0.01)),
        theirs(lambda o: tS.CosineAnnealingWarmRestarts(o, 3, 2, 0.01)),
    )


def test_orthogonal_and_trunc_normal():
    for shape in [(4, 6), (6, 4), (3, 2, 2)]:
        w = gw.zeros(*shape, dtype="float64")
        gw.nn.init.orthogonal_(w, gain=2.0, rng=0)
        flat = w.data.reshape(shape[0], -1)
        small = flat @ flat.T if flat.shape[0] <= flat.shape[1] else flat.T @ flat
        np.testing.assert_allclose(small, 4.0 * np.eye(small.shape[0]), atol=1e-12)
    t = gw.zeros(20000, dtype="float64")
    gw.nn.init.trunc_normal_(t, mean=0.5, std=1.0, a=-1.0, b=1.0, rng=0)
    assert t.data.min() >= -1.0 and t.data.max() <= 1.0
    # The mean of N(0.5, 1) truncated to [-1, 1]: mu + (phi(alpha) - phi(beta)) / Z sigma.
    from scipy.stats import truncnorm

    assert t.data.mean() == pytest.approx(truncnorm.mean(-1.5, 0.5, loc=0.5), abs=0.02)


def test_parameters_to_vector_round_trip():
    model = gw.nn.Linear(3, 2)
    vec = gw.nn.utils.parameters_to_vector(model.parameters())
    assert vec.shape == (8,)
    gw.nn.utils.vector_to_parameters(vec * 2.0, model.parameters())
    np.testing.assert_allclose(
        gw.nn.utils.parameters_to_vector(model.parameters()).data, vec.data * 2
    )
    with pytest.raises(ValueError, match="8"):
        gw.nn.utils.vector_to_parameters(np.zeros(3), model.parameters())
