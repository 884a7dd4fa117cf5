"""A float32 model trains in float32: no op output, gradient or optimizer state is float64."""

from __future__ import annotations

import numpy as np
import pytest

import gradwell as gw
from gradwell import nn


def _watch_float64():
    seen: list[str] = []

    def forward(step):
        if step.output.dtype == np.float64:
            seen.append(f"forward {step.op.name}")

    def vjp(node, g, input_grads):
        for ig in input_grads:
            if ig is not None and np.asarray(ig).dtype == np.float64:
                seen.append(f"backward {node.op}")

    return seen, forward, vjp


@pytest.mark.parametrize(
    "opt_cls", [gw.optim.Adam, gw.optim.AdamW, gw.optim.SGD, gw.optim.RMSprop, gw.optim.Adagrad]
)
@pytest.mark.parametrize("loss_name", ["cross_entropy", "mse"])
def test_forward_backward_and_step_stay_float32(opt_cls, loss_name):
    rng = np.random.default_rng(0)
    model = nn.Sequential(
        nn.Linear(5, 16, rng=0), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.2, rng=0),
        nn.Linear(16, 8, rng=1), nn.GELU(), nn.Linear(8, 8, rng=2), nn.Tanh(),
        nn.Linear(8, 3, rng=3),
    )  # fmt: skip
    kwargs = {"lr": 0.01, "momentum": 0.9} if opt_cls is gw.optim.SGD else {"lr": 0.01}
    opt = opt_cls(model.parameters(), **kwargs)
    x = rng.standard_normal((32, 5))  # float64 data, as users often have it
    if loss_name == "cross_entropy":
        loss_fn, y = nn.CrossEntropyLoss(label_smoothing=0.1), rng.integers(0, 3, 32)
    else:
        loss_fn, y = nn.MSELoss(), rng.standard_normal((32, 3))
    seen, fwd, vjp = _watch_float64()
    with gw.autograd.observe(op=fwd, vjp=vjp):
        for _ in range(3):
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            gw.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
    assert seen == []
    assert loss.dtype == np.float32
    for name, p in model.named_parameters():
        assert p.dtype == np.float32 and p.grad.dtype == np.float32, name
    for state in opt.state.values():
        for key, value in state.items():
            if isinstance(value, np.ndarray):
                assert value.dtype == np.float32, key
    for name, b in model.named_buffers():
        assert b.dtype.kind != "f" or b.dtype == np.float32, name
