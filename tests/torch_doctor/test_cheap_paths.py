"""The doctor's cheap paths record what its full paths record: the quiet step (most
steps) done in the torch Doctor itself gives the same trace and findings as gradwell's
full step on every step."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch_doctor.kit import dataset, mlp

from gradwell.torch import Doctor


def _run(monkeypatch: object, cheap: bool) -> Doctor:
    X, y, C = dataset("circle", 0)
    Xt, yt = torch.as_tensor(X), torch.as_tensor(y)
    model = mlp(X.shape[1], [16, 16], C, seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=7, gamma=0.7)  # lr moves
    loss_fn = nn.CrossEntropyLoss()
    doctor = Doctor(model, opt, loss=loss_fn, verbose=False, raise_errors=True)
    if not cheap:
        monkeypatch.setattr(doctor, "_quiet_step", lambda value: False)  # type: ignore[attr-defined]
    g = torch.Generator().manual_seed(0)
    for epoch in range(3):
        order = torch.randperm(len(Xt), generator=g)
        for i in range(0, len(Xt), 16):
            xb, yb = Xt[order[i : i + 16]], yt[order[i : i + 16]]
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            if epoch == 1 and i == 64:
                loss = loss * 10.0  # a jump: the alarm samples densely
            loss.backward()
            doctor.step(loss, xb, yb)
            opt.step()
            sched.step()
        doctor.end_epoch()
    doctor.finish()
    return doctor


def test_the_quiet_step_records_what_the_full_step_records(monkeypatch):
    cheap, full = _run(monkeypatch, True), _run(monkeypatch, False)
    a, b = cheap.trace, full.trace
    assert len(a.loss) == len(b.loss) > 40 and list(a.loss) == list(b.loss)
    assert list(a.lr) == list(b.lr) and len(set(a.lr)) > 2
    assert list(a.samples) == list(b.samples) and len(a.samples) > 20  # the alarm's among them
    assert a.grad_norm.keys() == b.grad_norm.keys()
    for name in a.grad_norm:
        np.testing.assert_array_equal(a.grad_norm[name], b.grad_norm[name])
    assert a.update_ratio.keys() == b.update_ratio.keys() and a.update_ratio
    for name in a.update_ratio:
        np.testing.assert_array_equal(a.update_ratio[name], b.update_ratio[name])
        assert sum(math.isfinite(v) for v in a.update_ratio[name]) > 20
    assert [(f.kind, f.where) for f in cheap.findings] == [(f.kind, f.where) for f in full.findings]


def test_the_batchnorm_check_puts_back_mixed_modes_hooks_and_plain_attributes():
    X, y, C = dataset("circle", 0)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 16), nn.BatchNorm1d(16), nn.ReLU(),
                          nn.Sequential(nn.Linear(16, 16), nn.BatchNorm1d(16)), nn.ReLU(),
                          nn.Linear(16, C))  # fmt: skip
    model[3].scale = torch.ones(16)  # a plain tensor attribute (its truth value is an error)
    model[3][1].eval()  # a frozen batch norm inside a training model
    seen = []
    model[0].register_forward_hook(lambda m, i, o: seen.append(1))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    doctor = Doctor(model, opt, loss=nn.CrossEntropyLoss(), train_data=(torch.as_tensor(X),
                    torch.as_tensor(y)), verbose=False, raise_errors=True)  # fmt: skip
    xb, yb = torch.as_tensor(X[:32]), torch.as_tensor(y[:32])
    loss = nn.CrossEntropyLoss()(model(xb), yb)
    loss.backward()
    doctor.step(loss, xb, yb)
    modes = [m.training for m in model.modules()]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    calls = len(seen)
    assert doctor._probes.check_batchnorm(10_000)  # it measured
    assert [m.training for m in model.modules()] == modes and not model[3][1].training
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert len(seen) == calls and model[0]._forward_hooks  # not seen, still there


def test_a_loss_of_several_elements_is_the_callers_error_and_says_its_shape():
    model = nn.Linear(2, 1)
    doctor = Doctor(model, torch.optim.SGD(model.parameters(), lr=0.1), verbose=False)
    x = torch.randn(4, 2)
    per_example = (model(x) ** 2).squeeze(1)  # forgot the mean
    with pytest.raises(ValueError, match=r"one number .* got Tensor of shape \(4,\)"):
        doctor.step(per_example, x)
    loss = per_example.mean()
    doctor.step(loss, x)
    assert list(doctor.trace.loss) == [loss.item()]
