"""gw.doctor.repair and gradwell doctor --fix: apply the top remedy, retrain, keep what helps."""

from __future__ import annotations

import json
import math
import re
import textwrap

import numpy as np
import pytest

import gradwell as gw
from gradwell.cli import main
from gradwell.doctor import Finding, NotApplicable, apply_edits, recipes, repair
from gradwell.doctor.edits import apply_to_config, why_not
from gradwell.train.history import History

nn = gw.nn


def _mlp(act="Sigmoid"):
    model = nn.Sequential(nn.Linear(4, 8, init="xavier", rng=0), getattr(nn, act)(),
                          nn.Linear(8, 8, init="xavier", rng=1), getattr(nn, act)(),
                          nn.Dropout(0.9, rng=0), nn.Linear(8, 3, rng=2))  # fmt: skip
    return model, gw.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)


def _edit(action, act="Sigmoid"):
    model, opt = _mlp(act)
    return apply_edits(model, opt, [action])


# ---------------------------------------------------------------- model edits
def test_replace_activation_reinitialises_the_layers_feeding_it():
    model, _ = _edit({"action": "replace_activation", "modules": ["1", "3"], "from": "Sigmoid",
                      "to": "LeakyReLU(0.05)", "init": "he"})  # fmt: skip
    assert [type(model[i]).__name__ for i in (1, 3)] == ["LeakyReLU", "LeakyReLU"]
    assert model[1].negative_slope == 0.05
    w = model[2].weight.numpy()  # He uniform: bound sqrt(6 / fan_in)
    assert np.abs(w).max() <= math.sqrt(6 / 8) and np.abs(w).max() > math.sqrt(6 / 8) * 0.8
    fresh, _ = _mlp()
    assert not np.array_equal(w, fresh[2].weight.numpy())  # it was Xavier-sized
    assert np.array_equal(model[5].weight.numpy(), fresh[5].weight.numpy())  # not the output
    kept, _ = _edit({"action": "replace_activation", "modules": ["1"], "to": "ReLU", "init": None})
    assert np.array_equal(kept[0].weight.numpy(), fresh[0].weight.numpy())


def test_reinitialise_set_dropout_remove_and_insert():
    model, _ = _edit({"action": "reinitialise", "modules": ["0"], "init": "xavier"})
    bound = math.sqrt(6 / (4 + 8))
    assert np.abs(model[0].weight.numpy()).max() <= bound
    model, _ = _edit({"action": "set_dropout", "modules": ["4"], "rate": 0.2})
    assert model[4].rate == 0.2
    model, _ = _edit({"action": "remove_module", "modules": ["4"]})
    assert type(model[4]).__name__ == "Identity"
    model, _ = _edit({"action": "insert_activation", "after": ["2"], "activation": "ReLU"})
    assert [type(m).__name__ for m in model[2]] == ["Linear", "ReLU"]
    x = gw.tensor(np.ones((2, 4), np.float32))
    assert model(x).shape == (2, 3)


def test_reinitialise_without_an_init_picks_the_one_for_the_activation_it_feeds():
    layers = []
    for i in range(6):  # paths 0..11: "10" sorts before "2" as text, not in the model
        layers += [nn.Linear(8, 8, init="xavier", rng=i), nn.ReLU() if i < 5 else nn.Tanh()]
    model = nn.Sequential(*layers, nn.Linear(8, 2, rng=9))
    opt = gw.optim.SGD(model.parameters(), lr=0.1)
    apply_edits(model, opt, [{"action": "reinitialise", "modules": ["2", "10"]}])
    he, xavier = math.sqrt(6 / 8), math.sqrt(6 / 16)
    assert xavier < np.abs(model[2].weight.numpy()).max() <= he  # feeds a ReLU: He
    assert np.abs(model[10].weight.numpy()).max() <= xavier  # feeds the Tanh: Xavier


def test_edits_that_add_parameters_rebuild_the_optimizer():
    model, opt = _edit({"action": "add_batchnorm", "after": ["0", "2"]})
    assert [type(m).__name__ for m in model[0]] == ["Linear", "BatchNorm1d"]
    assert {id(p) for p in model.parameters()} == {id(p) for p in opt.param_groups[0]["params"]}
    assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[0]["momentum"] == 0.9
    model, opt = _edit({"action": "set_out_features", "module": "5", "out_features": 5})
    assert model(gw.tensor(np.ones((2, 4), np.float32))).shape == (2, 5)
    assert {id(p) for p in model.parameters()} == {id(p) for p in opt.param_groups[0]["params"]}
    model, _ = _edit({"action": "add_dropout", "after": ["1"], "rate": 0.3})
    assert model[1][1].rate == 0.3


@pytest.mark.parametrize("how", ["softplus", "exp", "clamp"])
def test_positive_output_keeps_the_output_positive(how):
    model, _ = _edit({"action": "positive_output", "module": "5", "how": how})
    out = model(gw.tensor(np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)))
    assert (out.numpy() > 0).all()


def test_an_edit_that_cannot_apply_says_why():
    with pytest.raises(NotApplicable, match="the model has no module '9'"):
        _edit({"action": "set_dropout", "modules": ["9"], "rate": 0.1})
    with pytest.raises(NotApplicable, match="is not a Dropout"):
        _edit({"action": "set_dropout", "modules": ["0"], "rate": 0.1})
    with pytest.raises(NotApplicable, match="'Sigmoid' is a Sigmoid, not a Linear|not a Linear"):
        _edit({"action": "set_out_features", "module": "1", "out_features": 2})
    assert why_not({"action": "lr_find"}).startswith("it is advice")
    assert why_not({"action": "teleport"}) == "repair does not know the action 'teleport'"
    assert why_not({"action": "scale_lr", "factor": 0.1}) is None


# ---------------------------------------------------------------- config actions
def test_config_actions_set_their_keys_and_leave_the_original_alone():
    cfg = {"lr": 1.0}
    adam = {"optimizer": "Adam", "lr": 1e-3}
    cases = [
        ({"action": "scale_lr", "factor": 0.05, "lr": [0.05]}, {"lr": 0.05}),
        ({"action": "scale_lr", "factor": 0.5}, {"lr": 0.5}),
        ({"action": "set_optimizer", **adam}, adam),
        ({"action": "set_batch_size", "batch_size": 64}, {"batch_size": 64}),
        ({"action": "clip_grad_norm", "max_norm": 5.0}, {"clip_grad_norm": 5.0}),
        ({"action": "scale_features", "chains": {"a": "z"}}, {"scale_features": {"a": "z"}}),
        ({"action": "scale_targets", "method": "log"}, {"target_scaler": "log"}),
        ({"action": "replace_loss", "loss": "cross_entropy"}, {"loss": "cross_entropy"}),
        ({"action": "weight_decay", "value": 0.01}, {"weight_decay": 0.01}),
        ({"action": "early_stopping", "patience": 3}, {"early_stopping": 3}),
    ]  # fmt: skip
    for action, expected in cases:
        new = apply_to_config(cfg, action)
        assert {k: new[k] for k in expected} == expected, action
    assert cfg == {"lr": 1.0}
    # a second scaling composes with the first (the doctor audited the scaled data)
    scaled = {"scale_features": {"a": "log -> linear"}}
    again = apply_to_config(
        scaled, {"action": "scale_features", "chains": {"a": "zscore", "b": "linear"}}
    )
    assert again["scale_features"] == {"a": "log -> linear -> zscore", "b": "linear"}
    with pytest.raises(NotApplicable, match="already scaled by an AutoScaler"):
        apply_to_config(
            {"scale_features": True}, {"action": "scale_features", "chains": {"a": "z"}}
        )
    with pytest.raises(NotApplicable, match="has no 'lr'"):
        apply_to_config({}, {"action": "scale_lr", "factor": 0.1})


# ---------------------------------------------------------------- the loop
def _finding(kind, where, actions, texts=None):
    texts = texts or [a["action"] for a in actions]
    return Finding(kind, "critical", where, 0, 0, {}, "x.", texts, actions)


def _fake(score_of, findings_of):
    """build/train pair whose run's metric and findings are functions of the config."""
    seen = []

    def build(config):
        model = nn.Sequential(nn.Linear(2, 2, rng=0), nn.Dropout(0.9, rng=0))
        return model, gw.optim.SGD(model.parameters(), lr=config.get("lr", 1.0))

    def train(model, opt, config):
        seen.append((dict(config), model[1].rate))
        h = History()
        h.record_epoch(0, {"loss": 1.0, "val_accuracy": score_of(config, model)})
        h.findings, h.doctor = findings_of(config, model), "a doctor"
        return h

    return build, train, seen


def test_a_change_that_does_not_help_is_undone_and_the_next_remedy_tried():
    lower = {"action": "scale_lr", "factor": 0.1, "lr": [0.1]}
    drop = {"action": "set_dropout", "modules": ["1"], "rate": 0.0}
    sick = [_finding("dropout_misconfigured", "1", [lower, drop])]
    build, train, seen = _fake(
        lambda c, m: 0.9 if m[1].rate == 0 else 0.3, lambda c, m: [] if m[1].rate == 0 else sick
    )
    lines: list[str] = []
    config = {"lr": 1.0}
    result = repair(build, train, config, print_fn=lines.append)
    assert config == {"lr": 1.0}  # the user's config is not changed
    assert [r.kept for r in result.rounds] == [False, True]
    assert result.rounds[0].after.config["lr"] == 0.1 and result.config == {"lr": 1.0}
    assert result.edits == [drop] and result.outcome == "healthy"
    assert [r.before.score for r in result.rounds] == [0.3, 0.3]
    assert [r.after.score for r in result.rounds] == [0.3, 0.9]
    text = "\n".join(lines)
    assert "val_accuracy 0.3 -> 0.3 (undone: no better)" in text
    assert "val_accuracy 0.3 -> 0.9 (kept)" in text
    assert "EDITS = [" in text and "'rate': 0.0" in text


def test_nothing_helps_when_no_remedy_applies_and_it_says_why():
    stuck = _finding("nan_trap", "loss", [{"action": "fix_log"}, {"action": "teleport"}],
                     ["add an epsilon", "teleport"])  # fmt: skip
    build, train, seen = _fake(lambda c, m: 0.3, lambda c, m: [stuck])
    lines: list[str] = []
    result = repair(build, train, {"lr": 1.0}, print_fn=lines.append)
    assert result.outcome == "nothing helps" and result.reason == "no remedy can be applied"
    assert result.rounds == [] and len(seen) == 1
    text = "\n".join(lines)
    assert "not applicable: nan_trap: add an epsilon (an epsilon inside the log" in text
    assert "not applicable: nan_trap: teleport (repair does not know the action 'teleport')" in text


def test_a_healthy_run_is_left_alone():
    build, train, seen = _fake(lambda c, m: 0.95, lambda c, m: [])
    lines: list[str] = []
    result = repair(build, train, {"lr": 1.0}, print_fn=lines.append)
    assert result.outcome == "healthy" and result.rounds == [] and len(seen) == 1
    assert not any("CONFIG" in line for line in lines)


def test_a_run_without_the_doctor_is_an_error():
    def train(model, opt, config):
        return gw.fit(model, (np.ones((4, 2)), np.zeros(4, np.int64)), loss="cross_entropy",
                      optimizer=opt, epochs=1, verbose=0, doctor=False)  # fmt: skip

    build, _, _ = _fake(lambda c, m: 0.5, lambda c, m: [])
    with pytest.raises(ValueError, match=r"without a doctor \(fit\(..., doctor=False\)\?\)"):
        repair(build, train, {"lr": 0.1}, print_fn=None)
    with pytest.raises(ValueError, match="must return the History of a run the doctor watched"):
        repair(build, lambda m, o, c: 0.9, {"lr": 0.1}, print_fn=None)


def test_rounds_used_up():
    build, train, _ = _fake(lambda c, m: 0.1 / c["lr"],
                            lambda c, m: [_finding("learning_rate_too_high", "optimizer",
                                          [{"action": "scale_lr", "factor": 0.5}])])  # fmt: skip
    result = repair(build, train, {"lr": 1.0}, rounds=2, print_fn=None)
    assert result.outcome == "rounds used up" and result.config["lr"] == 0.25
    with pytest.raises(ValueError, match="rounds must be an int >= 0"):
        repair(build, train, {}, rounds=-1)


def test_repair_edits_a_users_own_model_by_module_path():
    """Any build works: here a hand-built deep sigmoid stack trained with gw.fit."""
    X, y, C = _circle()

    def build(config):
        layers = []
        for i in range(6):
            layers += [nn.Linear(2 if i == 0 else 16, 16, init="xavier", rng=i), nn.Sigmoid()]
        model = nn.Sequential(*layers, nn.Linear(16, C, rng=9))
        return model, gw.optim.SGD(model.parameters(), lr=config["lr"])

    def train(model, opt, config):
        return gw.fit(model, (X[:400], y[:400]), loss="cross_entropy", optimizer=opt,
                      epochs=8, validation=(X[400:], y[400:]), metrics=["accuracy"],
                      seed=0, verbose=0, doctor=gw.doctor.Doctor(verbose=False))  # fmt: skip

    result = repair(build, train, {"lr": 0.1}, print_fn=None)
    assert result.first.findings[0].kind == "vanishing_gradients"
    assert result.rounds[0].action["action"] == "replace_activation"
    assert result.outcome == "healthy" and result.final.score > 0.9 > result.first.score + 0.3


def _circle():
    ds = gw.data.datasets.circle(n=500, noise=0.1, seed=0)
    return (ds.X / 6).astype(np.float32), ds.y.astype(np.int64), 2


# ---------------------------------------------------------------- gradwell doctor --fix
def test_fix_a_python_script(tmp_path, capsys):
    (tmp_path / "helpers.py").write_text("WIDTHS = [32, 32]\n")
    script = tmp_path / "run.py"
    script.write_text(
        textwrap.dedent("""
        from helpers import WIDTHS
        from gradwell.doctor import recipes

        CONFIG = {"data": "circle", "widths": WIDTHS, "lr": 3.0, "epochs": 6}

        def build(config):
            return recipes.build(config)

        def train(model, optimizer, config):
            return recipes.train(model, optimizer, config)
    """)
    )
    before = script.read_text()
    assert main(["doctor", "--fix", str(script)]) == 0
    out = capsys.readouterr().out
    assert "change: lower the learning rate from 3 to " in out
    assert re.search(r"'lr': [0-9.e-]+,  # was 3.0", out) and "outcome: healthy" in out
    assert script.read_text() == before  # no user file is changed
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix) == ["helpers.py", "run.py"]


def test_fix_a_json_recipe_config(tmp_path, capsys):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"recipe": "mlp", "data": "wine", "widths": [16], "lr": 0.05,
                                "epochs": 20}))  # fmt: skip
    assert main(["doctor", "--fix", str(path), "--metric", "val_loss", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert "z-score column proline" in out and "'scale_features': {" in out
    assert "before: val_loss " in out


def test_fix_reports_bad_files(tmp_path, capsys):
    assert main(["doctor", "--fix", str(tmp_path / "none.py")]) == 2
    assert "no file at" in capsys.readouterr().out
    bad = tmp_path / "bad.py"
    bad.write_text("CONFIG = {}\n")
    assert main(["doctor", "--fix", str(bad)]) == 2
    assert "it lacks build, train" in capsys.readouterr().out
    typo = tmp_path / "typo.json"
    typo.write_text(json.dumps({"recipe": "mlp", "learning_rate": 0.1}))
    assert main(["doctor", "--fix", str(typo)]) == 2
    assert "unknown config key 'learning_rate'" in capsys.readouterr().out
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"recipe": "resnet"}))
    assert main(["doctor", "--fix", str(other)]) == 2
    assert 'naming a built-in recipe ("recipe": "mlp")' in capsys.readouterr().out


def test_recipe_rejects_unknown_data():
    with pytest.raises(ValueError, match="unknown data 'mnist'"):
        recipes.build({"data": "mnist"})


def test_a_change_that_breaks_training_is_undone():
    grow = {"action": "set_out_features", "module": "0", "out_features": 3}
    sick = [_finding("exploding_gradients", "0", [grow])]

    def train(model, opt, config):
        if model[0].out_features != 2:
            raise ValueError("targets have 2 columns")
        h = History()
        h.record_epoch(0, {"loss": 1.0, "val_accuracy": 0.5})
        h.findings, h.doctor = sick, "a doctor"
        return h

    build, _, _ = _fake(lambda c, m: 0.5, lambda c, m: sick)
    lines: list[str] = []
    result = repair(build, train, {"lr": 1.0}, print_fn=lines.append)
    assert [r.kept for r in result.rounds] == [False] and result.edits == []
    assert result.rounds[0].after.error.startswith("ValueError('targets have 2 columns')")
    assert result.outcome == "nothing helps"
    assert any("training failed after the change (ValueError(" in line for line in lines)
