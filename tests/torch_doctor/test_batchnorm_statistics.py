"""The batch-norm train/eval gap in PyTorch: the gradwell doctor's sick and healthy recipes
(tests/doctor/test_batchnorm_statistics.py) rebuilt in torch give the same kind at the same
layers, the remedy speaks torch, and the momentum edit applied to a torch model closes the
gap."""

from __future__ import annotations

import pytest
import torch
from doctor.kit import images
from torch import nn
from torch_doctor.kit import an_epoch, dataset, train

from gradwell.torch import apply_edits

KIND = "batchnorm_statistics_mismatch"


def bn_mlp(n_in, n_out, seed, momentum=0.1, dropout=None):
    """Linear -> [Dropout] -> BatchNorm1d -> ReLU, twice, then a Linear (the gradwell test's
    model, with the same module paths)."""
    torch.manual_seed(seed)
    layers, d = [], n_in
    for w in (32, 32):
        layers.append(nn.Linear(d, w))
        if dropout:
            layers.append(nn.Dropout(dropout))
        layers += [nn.BatchNorm1d(w, momentum=momentum), nn.ReLU()]
        d = w
    return nn.Sequential(*layers, nn.Linear(d, n_out))


def bn_cnn(seed, momentum=0.1):
    """Conv2d -> BatchNorm2d -> ReLU (-> MaxPool2d), twice, on 8x8 digits."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8, momentum=momentum), nn.ReLU(),
        nn.MaxPool2d(2), nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8, momentum=momentum),
        nn.ReLU(), nn.Flatten(), nn.Linear(8 * 16, 10),
    )  # fmt: skip


def run(model, X, y, epochs, seed):
    return train(model, X, y, torch.optim.Adam(model.parameters(), lr=0.01), epochs=epochs,
                 seed=seed)  # fmt: skip


def finding(doctor):
    found = [f for f in doctor.findings if f.kind == KIND and f.rank >= 1]
    return found[0] if found else None


def bn_paths(model):
    return [p for p, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@pytest.mark.parametrize("seed", (0, 1))
def test_healthy_batchnorm_mlp_and_cnn_stay_silent(seed):
    X, y, C = dataset("circle", seed)
    doctor = run(bn_mlp(2, C, seed), X, y, 5, seed)
    assert [f.headline() for f in doctor.findings if f.rank >= 1] == []
    # the check ran at the first epoch's end and at the end (between: on its time budget)
    ran = doctor.trace.batchnorm_loss["step"]
    assert ran[0] == doctor.trace.epochs[0]["end_step"] + 1 and ran[-1] == len(doctor.trace.loss)
    Xi, yi, _ = images("digits", seed)
    doctor = run(bn_cnn(seed), Xi, yi, 2, seed)
    assert [f.headline() for f in doctor.findings if f.rank >= 1] == []


class _Clock:
    """A stand-in for the thread's CPU time: ``now`` moves when the test says (the
    training between epochs), and every reading costs ``tick`` (the check's own cost)."""

    def __init__(self, tick: float) -> None:
        self.now, self.tick = 0.0, tick

    def __call__(self) -> float:
        self.now += self.tick
        return self.now


@pytest.mark.parametrize("epoch_time,expected", [(1.0, "every epoch"), (0.01, "first and last")])
def test_the_batch_norm_check_runs_when_training_since_the_last_is_100_times_its_cost(
    epoch_time, expected, monkeypatch
):
    import gradwell.doctor.probes as probes
    from gradwell.torch import Doctor

    clock = _Clock(tick=0.001)  # a check costs 0.001 (its two readings 0.001 apart)
    monkeypatch.setattr(probes.time, "thread_time", clock)
    X, y, C = dataset("circle", 0)
    X, y = torch.as_tensor(X), torch.as_tensor(y)
    model = bn_mlp(2, C, 0)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    doctor = Doctor(model, opt, loss=nn.CrossEntropyLoss(), train_data=(X, y), verbose=False)
    steps = []
    for _ in range(6):
        an_epoch(model, opt, doctor, X, y)
        clock.now += epoch_time  # the epoch's training, against 100 x 0.001 = 0.1
        doctor.end_epoch()
        steps.append(len(doctor.trace.loss))
    doctor.finish()
    ran = list(doctor.trace.batchnorm_loss["step"])
    if expected == "every epoch":
        assert ran == steps  # (finish right after the last epoch's end: nothing new)
    else:  # the first check, then none until 0.1 of training has passed: the final one
        assert ran == [steps[0], len(doctor.trace.loss)] and len(doctor.trace.loss) == steps[-1]


@pytest.mark.parametrize("seed", (0, 1, 2))
@pytest.mark.parametrize("options,action", [({"momentum": 0.001}, "set_batchnorm_momentum"),
                                            ({"dropout": 0.5}, "remove_module")])  # fmt: skip
def test_running_statistics_that_miss_are_caught_at_the_batch_norm_layers(options, action, seed):
    X, y, C = dataset("circle", seed)
    model = bn_mlp(2, C, seed, **options)
    f = finding(run(model, X, y, 8, seed))
    assert f is not None
    assert f.locations and set(f.locations) <= set(bn_paths(model))
    assert f.evidence["share_given_back"] >= 0.1
    assert f.actions[0]["action"] == action
    assert "torch.optim.swa_utils.update_bn" in f.remedies[-1]  # PyTorch's words


@pytest.mark.parametrize("seed", (0, 1))
def test_the_momentum_edit_closes_the_gap_in_torch(seed):
    X, y, C = dataset("circle", seed)
    sick = run(bn_mlp(2, C, seed, momentum=0.001), X, y, 8, seed)
    action = finding(sick).actions[0]
    model = bn_mlp(2, C, seed, momentum=0.001)
    model, _ = apply_edits(model, torch.optim.Adam(model.parameters()), [action])
    assert all(m.momentum == 0.1 for m in model.modules() if isinstance(m, nn.BatchNorm1d))
    healed = run(model, X, y, 8, seed)
    assert finding(healed) is None

    def gap(doctor):
        bl = doctor.trace.batchnorm_loss
        return bl["eval_loss"][-1] - bl["batch_loss"][-1]

    assert gap(healed) < 0.1 * gap(sick)


def test_the_check_changes_nothing_in_the_torch_model():
    X, y, C = dataset("circle", 0)
    model = bn_mlp(2, C, 0, dropout=0.2)
    doctor = run(model, X, y, 1, 0)
    model.train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    assert doctor._probes.check_batchnorm(10_000)  # it measured
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert all(m.training for m in model.modules())
