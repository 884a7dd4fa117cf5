"""Sanity: every optimizer, driven by real backward passes, minimises an ill-scaled quadratic."""

import numpy as np
import pytest

import gradwell as gw
from gradwell.optim import SGD, Adadelta, Adagrad, Adam, Adamax, AdamW, NAdam, RAdam, RMSprop
from gradwell.optim import lr_scheduler as S

TARGET = np.array([1.0, -2.0, 0.5, 3.0], dtype=np.float32)
CURVATURE = np.array([0.5, 1.0, 2.0, 4.0], dtype=np.float32)


def loss_fn(w):
    return (gw.tensor(CURVATURE) * (w - gw.tensor(TARGET)) ** 2).sum() * 0.5


@pytest.mark.parametrize(
    ("cls", "kwargs", "steps"),
    [
        (SGD, dict(lr=0.1), 200),
        (SGD, dict(lr=0.05, momentum=0.9, nesterov=True), 200),
        (Adam, dict(lr=0.05), 400),
        (Adam, dict(lr=0.05, amsgrad=True), 400),
        (AdamW, dict(lr=0.05, weight_decay=1e-4), 400),
        (RMSprop, dict(lr=0.02), 400),
        (RMSprop, dict(lr=0.01, momentum=0.5, centered=True), 400),
        (Adagrad, dict(lr=0.5), 400),
        (Adamax, dict(lr=0.05), 400),
        (NAdam, dict(lr=0.05), 400),
        (RAdam, dict(lr=0.05), 400),
        (Adadelta, dict(lr=1.0, eps=1e-3), 600),  # its first steps are about sqrt(eps)
    ],
)
def test_minimises_a_quadratic(cls, kwargs, steps):
    w = gw.zeros(4, requires_grad=True)
    opt = cls([w], **kwargs)
    start = loss_fn(w).item()
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn(w)
        loss.backward()
        opt.step()
    assert loss_fn(w).item() < 1e-4 * start
    np.testing.assert_allclose(w.data, TARGET, atol=0.02)


def test_adam_with_warmup_and_cosine_schedule_converges():
    w = gw.zeros(4, requires_grad=True)
    opt = Adam([w], lr=0.1)
    sched = S.warmup(opt, 20, after=S.CosineAnnealingLR(opt, T_max=380))
    for _ in range(400):
        opt.zero_grad()
        loss_fn(w).backward()
        opt.step()
        sched.step()
    np.testing.assert_allclose(w.data, TARGET, atol=1e-3)
