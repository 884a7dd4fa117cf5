"""A sampled step's numbers in torch follow their formulas, wherever the doctor reads them:
the update right after the optimizer's step (its step post-hook), or on the next step
when the optimizer has no such hook; the gradient reaching a layer's output as autograd
has it, also when an in-place op follows the layer. Training never changes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch_doctor.kit import dataset, mlp

from gradwell.torch import Doctor


class _PlainSGD:
    """An optimizer that is not a ``torch.optim.Optimizer`` (no step hooks): w -= lr g."""

    def __init__(self, params: list[nn.Parameter], lr: float) -> None:
        self.param_groups = [{"params": list(params), "lr": lr}]

    def zero_grad(self) -> None:
        for p in self.param_groups[0]["params"]:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        group = self.param_groups[0]
        for p in group["params"]:
            p -= group["lr"] * p.grad


def _batches(n: int = 6) -> list[tuple[torch.Tensor, torch.Tensor]]:
    X, y, _ = dataset("blobs", 0)
    X, y = torch.as_tensor(X), torch.as_tensor(y)
    return [(X[i * 32 : (i + 1) * 32], y[i * 32 : (i + 1) * 32]) for i in range(n)]


@pytest.mark.parametrize("kind", ["torch", "no step hooks", "another hook after"])
def test_update_ratios_follow_their_formula_and_are_read_when_the_optimizer_has_stepped(kind):
    X, y, C = dataset("blobs", 0)
    model = mlp(X.shape[1], [8, 8], C, seed=0)
    lr = 0.1
    opt = (_PlainSGD(list(model.parameters()), lr) if kind == "no step hooks"
           else torch.optim.SGD(model.parameters(), lr=lr))  # fmt: skip
    loss_fn = nn.CrossEntropyLoss()
    doctor = Doctor(model, opt, loss=loss_fn, sample_every=1, verbose=False, raise_errors=True)
    later = []
    if kind == "another hook after":  # the doctor's hook must not disturb the ones after it
        opt.register_step_post_hook(lambda o, args, kwargs: later.append(1))
    weights = [n for n, p in model.named_parameters() if p.ndim == 2]
    expected, right_after = [], []
    for i, (xb, yb) in enumerate(_batches()):
        opt.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        doctor.step(loss, xb, yb)
        params = dict(model.named_parameters())
        # plain SGD: w' - w = -lr g, so |update| / |w| = lr |g| / |w|
        expected.append({n: lr * float(params[n].grad.double().norm()
                                       / params[n].detach().double().norm())
                         for n in weights})  # fmt: skip
        opt.step()
        series = doctor.trace.update_ratio.get(weights[0], [])
        right_after.append(series[i] if len(series) > i else math.nan)
    doctor.finish()
    ratios = doctor.trace.update_ratio
    for i, exp in enumerate(expected):
        for n, v in exp.items():
            assert ratios[n][i] == pytest.approx(v, rel=1e-4)
    # read at the optimizer's step where it has a hook there, else on the next step
    if kind == "no step hooks":
        assert all(math.isnan(v) for v in right_after)
    else:
        assert right_after == pytest.approx([e[weights[0]] for e in expected], rel=1e-4)
    assert len(later) == (6 if kind == "another hook after" else 0)


def test_an_update_the_optimizer_skipped_is_measured_on_the_next_step_as_none():
    # (as a gradient scaler does on an overflow): no step between two sampled steps
    X, y, C = dataset("blobs", 0)
    model = mlp(X.shape[1], [8], C, seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    loss_fn = nn.CrossEntropyLoss()
    doctor = Doctor(model, opt, loss=loss_fn, sample_every=1, verbose=False, raise_errors=True)
    for s, (xb, yb) in enumerate(_batches(4)):
        opt.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        doctor.step(loss, xb, yb)
        if s != 1:
            opt.step()
    doctor.finish()
    ratio = doctor.trace.update_ratio["0.weight"]
    assert ratio[1] == 0.0 and all(v > 0 for i, v in enumerate(ratio) if i != 1)


def test_the_signal_is_the_gradient_reaching_the_layer_output_before_an_in_place_op():
    X, y, C = dataset("blobs", 0)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(X.shape[1], 16), nn.ReLU(inplace=True), nn.Linear(16, C))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    loss_fn = nn.CrossEntropyLoss()
    doctor = Doctor(model, opt, loss=loss_fn, sample_every=1, verbose=False, raise_errors=True)
    expected = []
    for xb, yb in _batches(4):
        # independently: the gradient of the loss with respect to the first Linear's output
        z = model[0](xb)
        (dz,) = torch.autograd.grad(loss_fn(model[2](torch.relu(z)), yb), z)
        expected.append(float(dz.double().square().mean().sqrt()))
        opt.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        doctor.step(loss, xb, yb)
        opt.step()
    doctor.finish()
    assert list(doctor.trace.signal["0"]) == pytest.approx(expected, rel=1e-5)
    assert all(v > 0 for v in doctor.trace.signal["2"])


@pytest.mark.parametrize("optimizer", ["adam", "plain"])
def test_training_is_the_same_bit_for_bit_with_the_doctor_off_on_and_sampling_every_step(
    optimizer,
):
    def run(mode: str) -> tuple[list[float], dict[str, torch.Tensor]]:
        X, _, C = dataset("blobs", 0)
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(X.shape[1], 16), nn.BatchNorm1d(16), nn.ReLU(),
                              nn.Dropout(0.1), nn.Linear(16, C))  # fmt: skip
        opt = (torch.optim.Adam(model.parameters(), lr=0.01) if optimizer == "adam"
               else _PlainSGD(list(model.parameters()), 0.05))  # fmt: skip
        loss_fn = nn.CrossEntropyLoss()
        doctor = None
        if mode != "off":
            doctor = Doctor(model, opt, loss=loss_fn, sample_every=1 if mode == "every" else None,
                            verbose=False, raise_errors=True)  # fmt: skip
        losses = []
        for _ in range(6):  # epochs
            for xb, yb in _batches():
                opt.zero_grad()
                loss = loss_fn(model(xb), yb)
                loss.backward()
                if doctor is not None:
                    doctor.step(loss, xb, yb)
                opt.step()
                losses.append(loss.item())
            if doctor is not None:
                doctor.end_epoch()
        if doctor is not None:
            assert len(doctor.trace.samples) >= 3
            doctor.finish()
        return losses, {k: v.clone() for k, v in model.state_dict().items()}

    off, on, every = run("off"), run("default"), run("every")
    for other in (on, every):
        assert other[0] == off[0]
        assert all(torch.equal(off[1][k], v) for k, v in other[1].items())
    assert np.isfinite(off[0]).all()
