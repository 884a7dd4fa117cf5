"""The playground's settings: every field checked against its range, remedies mapped."""

import pytest

from gradwell.playground.config import (
    FIELDS,
    LEARNING_RATES,
    PRESETS,
    Config,
    apply_action,
    first_applicable,
    preset,
)


def test_defaults_are_the_playgrounds():
    c = Config()
    assert (c.dataset, c.layers, c.activation, c.lr, c.batch_size) == (
        "circle",
        (4, 2),
        "tanh",
        0.03,
        10,
    )
    assert c.features == ("x1", "x2") and c.train_ratio == 50 and c.problem == "classification"


@pytest.mark.parametrize(
    "field, value, expected",
    [
        ("lr", 0.02, "expected one of"),
        ("lr", "0.03", "expected one of"),
        ("noise", 55, "in [0, 50]"),
        ("train_ratio", 5, "in [10, 90]"),
        ("batch_size", 0, "in [1, 30]"),
        ("batch_size", 2.5, "an integer"),
        ("batch_size", True, "an integer"),
        ("layers", [4] * 7, "at most 6"),
        ("layers", [9], "layers[0]"),
        ("features", [], "non-empty"),
        ("features", ["__import__('os')"], "unknown feature"),
        ("dropout", [0.95], "dropout[0]"),
        ("activation", "softmax", "expected one of"),
        ("clip", float("nan"), "a number"),
        ("blowup_scale", 1e9, "a number"),
    ],
)
def test_a_bad_field_is_refused_with_its_name_and_range(field, value, expected):
    with pytest.raises(ValueError, match=rf"^{field}") as e:
        Config.from_dict({field: value})
    assert expected in str(e.value)


def test_unknown_fields_and_non_objects_are_refused():
    with pytest.raises(ValueError, match="unknown field 'eval'"):
        Config.from_dict({"eval": "1"})
    with pytest.raises(ValueError, match="expected an object"):
        Config.from_dict(["dataset"])


def test_the_dict_round_trips_and_lists_follow_the_layers():
    c = Config.from_dict({"layers": [3, 5, 2], "dropout": [0.1], "features": ["x2", "x1", "x2"]})
    assert c.dropout == (0.1, 0.1, 0.1)  # one rate per layer, the last repeated
    assert c.features == ("x1", "x2")  # canonical order, no repeats
    assert Config.from_dict(c.to_dict()) == c
    assert set(c.to_dict()) == set(FIELDS)


def test_regression_sets_use_mse_and_only_lr_and_regularization_keep_the_network():
    assert Config.from_dict({"dataset": "plane", "loss": "cross_entropy"}).loss == "mse"
    c = Config()
    assert not c.changes_network(c.with_(lr=0.3, regularization="l2", reg_rate=0.01))
    for change in (
        {"activation": "relu"},
        {"layers": [4]},
        {"noise": 10},
        {"seed": 3},
        {"optimizer": "adam"},
    ):
        assert c.changes_network(c.with_(**change)), change


def test_actions_map_to_settings():
    c = Config(lr=3.0)
    assert apply_action(c, {"action": "scale_lr", "factor": 0.1, "lr": [0.3]}, {}).lr == 0.3
    # a rate the Playground does not list: the nearest on a log scale
    assert apply_action(c, {"action": "scale_lr", "factor": 0.1, "lr": [0.2]}, {}).lr == 0.3
    assert (
        apply_action(c, {"action": "replace_activation", "to": "ReLU", "init": "he"}, {}).activation
        == "relu"
    )
    assert apply_action(c, {"action": "add_batchnorm", "after": ["0"]}, {}).batchnorm
    assert (
        apply_action(c, {"action": "scale_features", "chains": {"x1": "linear"}}, {}).scaling
        == "scaled"
    )
    assert apply_action(c, {"action": "clip_grad_norm", "max_norm": 5.0}, {}).clip == 5.0
    d = Config(layers=(4, 4), dropout=(0.9, 0.9))
    assert apply_action(
        d, {"action": "set_dropout", "modules": ["5"], "rate": 0.2}, {"2": 0, "5": 1}
    ).dropout == (0.9, 0.2)
    with pytest.raises(ValueError, match="not applicable"):
        apply_action(c, {"action": "early_stopping", "patience": 3}, {})


def test_the_first_applicable_action_is_taken_and_the_others_say_why():
    actions = [{"action": "lr_find"}, {"action": "scale_lr", "factor": 0.1, "lr": [0.003]}]
    new, action, skipped = first_applicable(Config(), actions, {})
    assert new.lr == 0.003 and action == actions[1]
    assert skipped and "not applicable" in skipped[0]
    same, none, why = first_applicable(Config(batchnorm=True), [{"action": "add_batchnorm"}], {})
    assert none is None and same == Config(batchnorm=True) and "already so" in why[0]


def test_presets_keep_the_seed_and_change_what_they_say():
    base = Config(seed=7, lr=0.3)
    assert preset("vanishing", base).activation == "sigmoid" and preset("vanishing", base).seed == 7
    assert preset("exploding", base).lr == 3.0 and preset("exploding", base).lr in LEARNING_RATES
    assert preset("dropout", base).dropout == (0.9, 0.9)
    assert preset("unscaled", base).blowup_column == "x1"
    assert set(PRESETS) == {"vanishing", "exploding", "dead-relu", "unscaled", "dropout"}
    with pytest.raises(ValueError, match="preset"):
        preset("nope", base)
