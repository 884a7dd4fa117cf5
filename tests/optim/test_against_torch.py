"""Optional cross-check against PyTorch itself (skipped when torch is not installed)."""

import numpy as np
import pytest

import gradwell as gw

torch = pytest.importorskip("torch")

OPTIMIZERS = [
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.2, weight_decay=0.05)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.05, maximize=True)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.9), weight_decay=0.1, amsgrad=True)),
    ("AdamW", dict(lr=0.01, weight_decay=0.3, amsgrad=True)),
    ("AdamW", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, centered=True, momentum=0.9, weight_decay=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.1, weight_decay=0.1, initial_accumulator_value=0.5)),
    ("Adamax", dict(lr=0.05, betas=(0.8, 0.9), weight_decay=0.1)),
    ("NAdam", dict(lr=0.05, weight_decay=0.1, momentum_decay=0.05)),
    ("NAdam", dict(lr=0.05, betas=(0.8, 0.95), weight_decay=0.2, decoupled_weight_decay=True)),
    ("RAdam", dict(lr=0.05, betas=(0.8, 0.9), weight_decay=0.1)),  # rectified from step 6
    ("RAdam", dict(lr=0.05, weight_decay=0.2, decoupled_weight_decay=True)),
    ("Adadelta", dict(lr=0.5, rho=0.8, weight_decay=0.1)),
]
#: PyTorch keeps NAdam's product of momentum coefficients in float32 whatever the
#: parameter's dtype; gradwell keeps it in float64, so float64 runs agree to about 1e-7.
TOLERANCE_64 = {"NAdam": 1e-6}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("name", "kwargs"), OPTIMIZERS, ids=[n for n, _ in OPTIMIZERS])
def test_optimizer_matches_torch(name, kwargs, dtype):
    rng = np.random.default_rng(1)
    p0 = rng.standard_normal((3, 4)).astype(dtype)
    tp = torch.tensor(p0, requires_grad=True)
    gp = gw.tensor(p0, dtype=dtype, requires_grad=True)
    topt = getattr(torch.optim, name)([tp], **kwargs)
    gopt = getattr(gw.optim, name)([gp], **kwargs)
    for _ in range(8):
        g = (rng.standard_normal(p0.shape) + gp.data.astype(np.float64) ** 2).astype(dtype)
        tp.grad = torch.tensor(g)
        gp.grad = gw.tensor(g, dtype=dtype)
        topt.step()
        gopt.step()
    tol = TOLERANCE_64.get(name, 1e-12) if dtype == np.float64 else 2e-5
    np.testing.assert_allclose(gp.data, tp.detach().numpy(), rtol=tol, atol=tol)
    assert not np.allclose(gp.data, p0)  # it moved


SCHEDULES = {
    "step": lambda S, o: S.StepLR(o, 3, 0.5),
    "exponential": lambda S, o: S.ExponentialLR(o, 0.9),
    "cosine": lambda S, o: S.CosineAnnealingLR(o, 7, eta_min=0.01),
    "linear": lambda S, o: S.LinearLR(o, 0.1, 0.9, 6),
    "one_cycle": lambda S, o: S.OneCycleLR(o, [1.0, 0.2], total_steps=40),
    "one_cycle_3": lambda S, o: S.OneCycleLR(
        o, 1.0, epochs=4, steps_per_epoch=10, anneal_strategy="linear", three_phase=True
    ),
    "sequential": lambda S, o: S.SequentialLR(
        o, [S.LinearLR(o, 0.2, total_iters=5), S.CosineAnnealingLR(o, 20)], [5]
    ),
}


@pytest.mark.parametrize("opt_name", ["SGD", "Adam"])
@pytest.mark.parametrize("name", SCHEDULES)
def test_schedule_matches_torch_exactly(name, opt_name):
    kwargs = dict(lr=0.5, momentum=0.9) if opt_name == "SGD" else dict(lr=0.5)
    topt = getattr(torch.optim, opt_name)(
        [{"params": [torch.zeros(2, requires_grad=True)]},
         {"params": [torch.zeros(1, requires_grad=True)], "lr": 0.05}], **kwargs
    )  # fmt: skip
    gopt = getattr(gw.optim, opt_name)(
        [{"params": [gw.zeros(2, requires_grad=True)]},
         {"params": [gw.zeros(1, requires_grad=True)], "lr": 0.05}], **kwargs
    )  # fmt: skip
    tsched = SCHEDULES[name](torch.optim.lr_scheduler, topt)
    gsched = SCHEDULES[name](gw.optim.lr_scheduler, gopt)
    key = "momentum" if opt_name == "SGD" else "betas"
    for _ in range(40):
        assert [g["lr"] for g in gopt.param_groups] == [g["lr"] for g in topt.param_groups]
        assert [tuple(np.ravel(g[key])) for g in gopt.param_groups] == [
            tuple(np.ravel(g[key])) for g in topt.param_groups
        ]
        topt.step()
        gopt.step()
        tsched.step()
        gsched.step()


def test_reduce_on_plateau_matches_torch_exactly():
    topt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    gopt = gw.optim.SGD([gw.zeros(1, requires_grad=True)], lr=1.0)
    kwargs = dict(factor=0.5, patience=2, cooldown=1, min_lr=0.01, threshold=0.01)
    tsched = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **kwargs)
    gsched = gw.optim.lr_scheduler.ReduceLROnPlateau(gopt, **kwargs)
    metrics = np.random.default_rng(0).uniform(0.8, 1.0, 60) * np.linspace(1.0, 0.5, 60)
    for m in metrics:
        tsched.step(float(m))
        gsched.step(float(m))
        assert gopt.param_groups[0]["lr"] == topt.param_groups[0]["lr"]
