"""The doctor issue's sick and healthy recipes rebuilt in PyTorch: each gives the same kind
at the same place as in gradwell (tests/doctor/test_acceptance.py), in PyTorch's words;
healthy runs stay quiet. The whole file runs in seconds."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch_doctor.kit import an_epoch, dataset, kinds, mlp, optimizer, paths_of, serious, train

import gradwell as gw
import gradwell.torch as gt
from gradwell.torch.replay import replay_nonfinite

SEEDS = (0, 1)


def linear_paths(model):
    return paths_of(model, "Linear")


def test_import_gradwell_never_imports_torch_nor_gradwell_torch_lightning():
    code = ("import sys, gradwell, gradwell.doctor; print('torch' in sys.modules); "
            "import gradwell.torch; print('lightning' in sys.modules)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# --------------------------------------------------------------------------- healthy

HEALTHY = [
    # data, activation, optimizer, lr, widths
    ("circle", "ReLU", "adam", 0.01, [32, 32]),
    ("circle", "Tanh", "sgd", 0.1, [16, 16]),
    ("xor", "ReLU", "momentum", 0.05, [32, 32, 32]),
    ("blobs", "Sigmoid", "adam", 0.01, [16, 16]),
    ("blobs", "GELU", "adam", 0.003, [32, 32]),
    ("spiral", "Tanh", "adam", 0.01, [32, 32, 32]),
]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("data,act,opt,lr,widths", HEALTHY)
def test_healthy_runs_raise_no_warning(data, act, opt, lr, widths, seed):
    X, y, C = dataset(data, seed)
    model = mlp(X.shape[1], widths, C, act, seed=seed)
    doctor = train(model, X, y, optimizer(opt, model, lr), epochs=4, seed=seed)
    assert serious(doctor) == [], [f.headline() for f in serious(doctor)]
    assert doctor.trace.n_samples >= 16  # it looked: at least 4 samples an epoch


# --------------------------------------------------------------------------- vanishing


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("data,depth,opt", [("circle", 6, "sgd"), ("blobs", 8, "adam")])
def test_deep_sigmoid_stack_vanishes_at_the_first_layers(data, depth, opt, seed):
    X, y, C = dataset(data, seed)
    model = mlp(X.shape[1], [16] * depth, C, "Sigmoid", seed=seed)
    lr = {"sgd": 0.5, "adam": 0.01}[opt]
    doctor = train(model, X, y, optimizer(opt, model, lr), epochs=3, seed=seed)
    found = [f for f in serious(doctor) if f.kind == "vanishing_gradients"]
    assert len(found) == 1
    f = found[0]
    hidden = linear_paths(model)[:-1]
    assert hidden[0] in f.locations and set(f.locations) <= set(hidden[:-1])
    assert f.evidence["ratio_to_strongest_later_layer"][f.locations[0]] < 0.01
    assert "replace Sigmoid at" in f.remedies[0] and "with ReLU" in f.remedies[0]
    # PyTorch's words, not gradwell's
    assert "nn.init.kaiming_normal_" in f.remedies[0] and "gw." not in " ".join(f.remedies)


# --------------------------------------------------------------------------- dead ReLU


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("data,widths,opt", [("circle", [32, 32], "sgd"),
                                             ("blobs", [64, 32, 16], "adam")])  # fmt: skip
def test_relu_network_killed_by_a_high_learning_rate(data, widths, opt, seed):
    X, y, C = dataset(data, seed)
    model = mlp(X.shape[1], widths, C, "ReLU", seed=seed)
    lr = {"sgd": 3.0, "adam": 1.0}[opt]
    doctor = train(model, X, y, optimizer(opt, model, lr), epochs=4, seed=seed)
    dead = [f for f in serious(doctor) if f.kind == "dead_relu"]
    assert len(dead) == 1, [f.headline() for f in doctor.findings]
    f = dead[0]
    assert set(f.locations) <= set(paths_of(model, "ReLU"))
    assert f.evidence["dead_fraction"] >= 0.3
    lower = [a for a in f.actions if a["action"] == "scale_lr"]
    assert lower and lower[0]["lr"][0] <= lr / 10
    assert any(f"replace ReLU at {f.where} with LeakyReLU" in r for r in f.remedies)


# --------------------------------------------------------------------------- exploding / NaN


def regression(name: str, seed: int):
    ds = getattr(gw.data.datasets, name)(n=512, noise=0.1, seed=seed)
    return (ds.X / 6.0).astype(np.float32), ds.y.reshape(-1, 1).astype(np.float32)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("data,widths,act", [("plane", [16, 16], "ReLU"),
                                             ("multi_gaussian", [32], "Tanh")])  # fmt: skip
def test_learning_rate_far_too_high_explodes_then_nan_with_the_module_named(
    data, widths, act, seed
):
    X, y = regression(data, seed)
    model = mlp(2, widths, 1, act, seed=seed)
    doctor = train(model, X, y, optimizer("sgd", model, 3.0), loss_fn=nn.MSELoss(), epochs=4,
                   seed=seed)  # fmt: skip
    found = kinds(doctor)
    assert "exploding_gradients" in found
    assert set(found["exploding_gradients"][0].split(", ")) <= set(linear_paths(model))
    assert found.get("learning_rate_too_high") == ["optimizer"]
    nan = [f for f in doctor.findings if f.kind == "nan_trap"]
    assert len(nan) == 1 and nan[0].severity == "critical"
    ev = nan[0].evidence
    assert ev["anomaly"] is not None, ev["note"]
    assert ev["anomaly"]["op"] in nan[0].explanation
    assert nan[0].where in set(linear_paths(model)) | {"MSELoss"} | set(paths_of(model, act))
    assert doctor.findings[0].kind in ("learning_rate_too_high", "exploding_gradients")
    assert nan[0].caused_by
    clip = " ".join(nan[0].remedies)
    assert "torch.nn.utils.clip_grad_norm_(model.parameters()" in clip


class LogOfRelu(nn.Module):
    """A custom layer with a bug: log of a ReLU output is -inf wherever the ReLU is 0."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.inner = nn.Linear(n, n)

    def forward(self, x):
        return torch.log(torch.relu(self.inner(x)))  # the buggy line


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_nan_trap_names_the_op_its_module_and_the_user_code_line(opt, seed):
    X, y, C = dataset("blobs", seed)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(X.shape[1], 16), LogOfRelu(16), nn.Linear(16, C))
    before = torch.random.get_rng_state()
    doctor = train(model, X, y, optimizer(opt, model, 0.01), epochs=1, seed=seed)
    f = next(f for f in doctor.findings if f.kind == "nan_trap")
    assert f.severity == "critical" and f.where == "1" and f.step == 0
    a = f.evidence["anomaly"]
    assert a["op"] == "log" and a["phase"] == "forward" and a["module"] == "1"
    assert a["input_ranges"][0][0] == 0.0  # log received exact zeros from the ReLU
    assert "the buggy line" in a["code"] and __file__ in a["code"]
    assert "the log at 1 received 0" in f.remedies[0] and "torch.clamp" in f.remedies[0]
    # the replay ran on a copy under a forked random state: training's stream is untouched
    assert torch.random.get_rng_state().equal(before)


class SqrtWhereNonNegative(nn.Module):
    """torch.where's gradient trap: the forward is finite, the sqrt's backward is not."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.inner = nn.Linear(n, n)

    def forward(self, x):
        h = self.inner(x)
        return torch.where(h > 0, torch.sqrt(h), 0.0)  # the masked sqrt


@pytest.mark.parametrize("engine", ["engine", "autograd.grad"])
def test_nan_made_in_the_backward_names_the_op_its_module_and_the_line(engine, monkeypatch):
    if engine == "autograd.grad":  # a torch without the engine's private seam (before 2.3)
        monkeypatch.setattr("gradwell.torch.replay._engine_run_backward", None)
    X, y, C = dataset("blobs", 0)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(X.shape[1], 16), SqrtWhereNonNegative(16), nn.Linear(16, C))
    doctor = train(model, X, y, optimizer("adam", model, 0.01), epochs=1)
    f = next(f for f in doctor.findings if f.kind == "nan_trap")
    assert f.step == 0 and f.evidence["source"] == "gradient"
    a = f.evidence["anomaly"]
    assert a["phase"] == "backward" and a["op"] == "sqrt" and a["module"] == "1"
    assert a["input_ranges"][0][0] < 0  # what the sqrt received in the forward
    assert "the masked sqrt" in a["code"]
    assert "the sqrt at 1 received" in f.remedies[0]


def test_the_preflight_probe_leaves_the_model_its_gradients_and_the_random_state_as_they_were():
    from gradwell.doctor.thresholds import Thresholds
    from gradwell.torch.probes import probe_setup

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.5),
                          nn.Linear(8, 3))  # fmt: skip
    calls = []
    model[1].register_forward_hook(lambda *_: calls.append(1))  # the user's hook
    for p in model.parameters():
        p.grad = torch.full_like(p, 0.5)  # a loop's first step: the gradients are there
    before = {k: v.clone() for k, v in model.state_dict().items()}
    X, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
    rng = torch.random.get_rng_state()
    probe = probe_setup(model, nn.CrossEntropyLoss(), X, y, Thresholds())
    # the probe's forward and backward ran (on the copy: every layer's output gradient)...
    assert "error" not in probe and all(v["grad_rms"] > 0 for v in probe["layers"].values())
    assert set(probe["layers"]) == {"0", "4"}
    # ...and nothing of the model changed
    assert all(v.equal(model.state_dict()[k]) for k, v in before.items())  # running stats too
    assert all(p.grad.eq(0.5).all() for p in model.parameters())  # nothing accumulated
    assert torch.random.get_rng_state().equal(rng)
    assert calls == []


@pytest.mark.parametrize("sick", [False, True], ids=["clean_batch", "nan_in_backward"])
def test_the_replay_leaves_the_model_and_the_random_state_as_they_were(sick):
    torch.manual_seed(0)
    middle = SqrtWhereNonNegative(8) if sick else nn.Linear(8, 8)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), middle,
                          nn.Linear(8, 3))  # fmt: skip
    calls = []
    model[1].register_forward_hook(lambda *_: calls.append(1))  # the user's hook
    for p in model.parameters():
        p.grad = torch.full_like(p, 0.5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    rng = torch.random.get_rng_state()
    anomaly, note = replay_nonfinite(model, x, y, nn.CrossEntropyLoss())
    assert (anomaly is not None) == sick, note
    assert all(v.equal(model.state_dict()[k]) for k, v in before.items())  # running stats too
    assert all(p.grad.eq(0.5).all() for p in model.parameters())  # nothing accumulated
    assert torch.random.get_rng_state().equal(rng)
    assert calls == []  # the user's hook was set aside, and is back:
    model(x)
    assert calls == [1]


def test_nan_in_a_hand_written_loss_names_the_loss_and_the_line():
    X, y, C = dataset("blobs", 0)
    model = mlp(X.shape[1], [16], C, seed=0)

    def log_loss(out, target):  # probabilities from a ReLU: log of 0 is -inf
        return -torch.log(torch.relu(out).gather(1, target[:, None])).mean()  # loss line

    doctor = train(model, X, y, optimizer("adam", model, 0.01), loss_fn=log_loss, epochs=1)
    f = next(f for f in doctor.findings if f.kind == "nan_trap")
    a = f.evidence["anomaly"]
    assert a["op"] == "log" and a["module"] is None and "loss line" in a["code"]
    assert "log_loss" in f.explanation  # in the loss, named
    assert "keep the model's output positive before the log" in f.remedies[0]


# --------------------------------------------------------------------------- setup problems


@pytest.mark.parametrize("seed", SEEDS)
def test_unscaled_features_are_named_before_training(seed):
    X, y, C = dataset("blobs", seed)
    X = X.copy()
    X[:, 2] *= 1e4
    model = mlp(X.shape[1], [16], C, seed=seed)
    doctor = train(model, X, y, optimizer("sgd", model, 0.01), epochs=1, seed=seed)
    f = next(f for f in serious(doctor) if f.kind == "unscaled_features")
    assert f.locations[0] == "x2" and f.step is None
    assert "column x2" in f.remedies[0]


@pytest.mark.parametrize("seed", SEEDS)
def test_dropout_rate_one_is_critical_at_each_dropout(seed):
    X, y, C = dataset("circle", seed)
    model = mlp(X.shape[1], [32, 32], C, "ReLU", seed=seed, dropout=1.0)
    doctor = train(model, X, y, optimizer("sgd", model, 0.05), epochs=3, seed=seed)
    drops = paths_of(model, "Dropout")
    found = [f for f in serious(doctor) if f.kind == "dropout_misconfigured"]
    assert len(found) == 1 and found[0].locations == drops and found[0].severity == "critical"
    assert found[0].remedies[0] == f"set the Dropout rate at {', '.join(drops)} from 1 to 0"
    assert doctor.findings[0].kind == "dropout_misconfigured"
    assert "dead_relu" not in kinds(doctor)


def test_dropout_active_during_evaluation_is_flagged():
    X, y, C = dataset("blobs", 0)
    model = mlp(X.shape[1], [16], C, dropout=0.5)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    doctor = gt.Doctor(model, opt, verbose=False, raise_errors=True)
    Xt, yt = torch.as_tensor(X), torch.as_tensor(y)
    an_epoch(model, opt, doctor, Xt, yt)
    with torch.no_grad():  # evaluation, but model.eval() was forgotten
        model(Xt[:64])
    f = next(f for f in doctor.finish() if f.kind == "dropout_misconfigured")
    assert f.where == paths_of(model, "Dropout")[0] and f.severity == "warning"
    assert "model.eval()" in f.remedies[0] and "torch.no_grad()" in f.remedies[0]


def test_a_hand_loop_prints_a_line_when_a_serious_finding_first_appears(capsys):
    X, y, C = dataset("blobs", 0)
    model = mlp(X.shape[1], [16], C, dropout=0.5)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    doctor = gt.Doctor(model, opt, loss=nn.CrossEntropyLoss(), raise_errors=True)  # it speaks
    Xt, yt = torch.as_tensor(X), torch.as_tensor(y)
    printed, found = [], []
    for epoch in range(3):
        an_epoch(model, opt, doctor, Xt, yt)
        if epoch >= 1:
            with torch.no_grad():  # evaluation from the second epoch on, model.eval() forgotten
                model(Xt[:64])
        doctor.end_epoch()
        printed.append([line for line in capsys.readouterr().out.splitlines()
                        if "dropout_misconfigured" in line])  # fmt: skip
        found.append([f for f in doctor.findings if f.kind == "dropout_misconfigured"])
    # one line, at the epoch it appeared (not again while it stays as bad): its headline
    assert found[0] == [] and printed == [[], ["doctor: " + found[1][0].headline()], []]
    counts = [f[0].evidence["evaluation_calls_by_module"] for f in found[1:]]
    assert counts == [{paths_of(model, "Dropout")[0]: 1}, {paths_of(model, "Dropout")[0]: 2}]


def test_softmax_before_cross_entropy_is_caught_by_the_check_and_the_doctor():
    X, y, C = dataset("blobs", 0)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(X.shape[1], 16), nn.ReLU(), nn.Linear(16, C), nn.Softmax(1))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    Xt, yt = torch.as_tensor(X), torch.as_tensor(y)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    found = gt.check(model, nn.CrossEntropyLoss(), opt, Xt, yt)
    assert found[0].kind == "output_loss_mismatch" and found[0].where == "3"
    assert all(v.equal(model.state_dict()[k]) for k, v in state.items())  # nothing changed
    doctor = train(model, X, y, opt, epochs=1)
    assert doctor.findings[0].kind == "output_loss_mismatch" and doctor.findings[0].where == "3"


def test_check_finds_the_missing_nonlinearity_and_the_init_loss():
    X, y, C = dataset("blobs", 0)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(X.shape[1], 16), nn.Linear(16, C))
    with torch.no_grad():
        for m in model:
            m.weight.mul_(30.0)  # an initial loss far above log(classes)
    found = gt.check(model, nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.1),
                     torch.as_tensor(X), torch.as_tensor(y))  # fmt: skip
    assert {"missing_nonlinearity", "bad_initialization"} <= {f.kind for f in found}
    f = next(f for f in found if f.kind == "missing_nonlinearity")
    assert f.where == "0"


def test_check_rejects_what_is_not_a_torch_setup():
    with pytest.raises(TypeError, match="torch.nn.Module"):
        gt.check(gw.nn.Linear(2, 2), nn.MSELoss())
    with pytest.raises(ValueError, match="same number of rows"):
        gt.check(nn.Linear(2, 1), nn.MSELoss(), None, torch.zeros(4, 2), torch.zeros(3, 1))


def test_reports_are_written(tmp_path):
    X, y, C = dataset("circle", 0)
    model = mlp(X.shape[1], [16, 16], C, seed=0)
    doctor = train(model, X, y, optimizer("adam", model, 0.01), epochs=1)
    text = doctor.report()
    assert "0.weight" in text and "per-parameter gradients" in text
    path = doctor.save_html(tmp_path / "report.html")
    assert "<html" in open(path).read()[:200].lower()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # strict JSON of every series
        assert '"trace"' in doctor.to_json()


# --------------------------------------------------------------------------- repair


def build(config):
    X, y, C = dataset("circle", 0)
    model = mlp(X.shape[1], config["widths"], C, config["act"], seed=0,
                dropout=config.get("dropout"))  # fmt: skip
    return model, optimizer(config.get("optimizer", "sgd").lower(), model, config["lr"])


def train_fn(model, opt, config):
    """The loop of the README, with the accuracy of each epoch handed to the doctor."""
    X, y, _ = dataset("circle", 0)
    Xt, yt = torch.as_tensor(X), torch.as_tensor(y)
    loss_fn = nn.CrossEntropyLoss()
    doctor = gt.Doctor(model, opt, loss=loss_fn, train_data=(Xt, yt), verbose=False)
    g = torch.Generator().manual_seed(0)
    batch = config.get("batch_size", 32)
    for _ in range(config["epochs"]):
        order = torch.randperm(len(Xt), generator=g)
        for i in range(0, len(Xt), batch):
            xb, yb = Xt[order[i : i + batch]], yt[order[i : i + batch]]
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            doctor.step(loss, xb, yb)
            opt.step()
        with torch.no_grad():
            model.eval()
            accuracy = float((model(Xt).argmax(1) == yt).float().mean())
            model.train()
        doctor.end_epoch(accuracy=accuracy)
    return doctor


@pytest.mark.parametrize(
    "config,action",
    [({"widths": [16, 16], "act": "ReLU", "lr": 0.1, "dropout": 1.0, "epochs": 4}, "set_dropout"),
     ({"widths": [32, 32], "act": "ReLU", "lr": 3.0, "epochs": 4}, "scale_lr")],
)  # fmt: skip
def test_repair_applies_the_top_remedy_and_the_run_gets_healthy(config, action):
    lines = []
    result = gt.repair(build, train_fn, config, print_fn=lines.append)
    assert result.rounds[0].action["action"] == action
    assert result.outcome == "healthy", "\n".join(lines)
    assert result.final.score > result.first.score and result.final.metric == "accuracy"
    assert "gw." not in "\n".join(lines)  # it speaks PyTorch
    code = result.code()  # (called after the repair: still in PyTorch's words)
    assert "gw." not in code
    if action == "set_dropout":  # a model edit
        assert "model, optimizer = gradwell.torch.apply_edits(model, optimizer, EDITS)" in code
    assert "dropout" not in config or config["dropout"] == 1.0  # the user's config unchanged


def test_torch_model_edits_follow_the_actions():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 4), nn.Sigmoid(), nn.Linear(4, 3), nn.Softmax(1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    edits = [
        {"action": "replace_activation", "modules": ["1"], "from": "Sigmoid", "to": "ReLU",
         "init": "he"},
        {"action": "remove_module", "modules": ["3"]},
        {"action": "add_batchnorm", "after": ["0"]},
        {"action": "set_out_features", "module": "2", "out_features": 5},
    ]  # fmt: skip
    model, new_opt = gt.apply_edits(model, opt, edits)
    assert [type(m).__name__ for m in model] == ["Sequential", "ReLU", "Linear", "Identity"]
    assert isinstance(model[0][1], nn.BatchNorm1d) and model[2].out_features == 5
    assert new_opt is not opt and new_opt.param_groups[0]["lr"] == 0.1
    assert model(torch.zeros(4, 2)).shape == (4, 5)
    with pytest.raises(gw.doctor.edits.NotApplicable, match="not a Dropout"):
        gt.apply_edits(model, new_opt, [{"action": "set_dropout", "modules": ["1"], "rate": 0}])
