"""Optimizer machinery: parameter groups, zero_grad, state_dict/resume, validation."""

import json

import numpy as np
import pytest

import gradwell as gw
from gradwell.optim import (
    SGD,
    Adadelta,
    Adagrad,
    Adam,
    Adamax,
    AdamW,
    NAdam,
    Optimizer,
    RAdam,
    RMSprop,
)

ALL = [
    (SGD, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    (Adam, dict(lr=0.01, amsgrad=True, weight_decay=0.01)),
    (AdamW, dict(lr=0.01)),
    (RMSprop, dict(lr=0.01, momentum=0.5, centered=True)),
    (Adagrad, dict(lr=0.1, lr_decay=0.01)),
    (Adamax, dict(lr=0.01, weight_decay=0.01)),
    (NAdam, dict(lr=0.01, decoupled_weight_decay=True, weight_decay=0.01)),
    (RAdam, dict(lr=0.01, weight_decay=0.01)),
    (Adadelta, dict(rho=0.8)),
]
IDS = [cls.__name__ for cls, _ in ALL]


def make_params(dtype="float32"):
    rng = np.random.default_rng(0)
    return [
        gw.tensor(rng.standard_normal((3, 2)), dtype=dtype, requires_grad=True),
        gw.tensor(rng.standard_normal(2), dtype=dtype, requires_grad=True),
        gw.tensor(rng.standard_normal((2, 2)), dtype=dtype, requires_grad=True),
    ]


def set_grads(params, step):
    rng = np.random.default_rng(100 + step)
    for p in params:
        p.grad = gw.tensor(rng.standard_normal(p.shape) + p.data, dtype=p.dtype)


def groups(params):
    return [{"params": params[:2]}, {"params": params[2:], "lr": 0.003}]


# --- construction and groups -------------------------------------------------------
def test_plain_list_becomes_one_group_with_the_defaults():
    params = make_params()
    opt = Adam(params, lr=0.02)
    assert len(opt.param_groups) == 1
    group = opt.param_groups[0]
    assert group["params"] == params
    assert group["lr"] == 0.02 and group["betas"] == (0.9, 0.999) and group["eps"] == 1e-8
    assert group["weight_decay"] == 0.0 and group["amsgrad"] is False


def test_generator_of_parameters_is_accepted():
    params = make_params()
    opt = SGD((p for p in params), lr=0.1)
    assert opt.param_groups[0]["params"] == params


def test_add_param_group_fills_defaults_and_validates():
    params = make_params()
    opt = SGD(params[:2], lr=0.1, momentum=0.9)
    opt.add_param_group({"params": params[2], "lr": 0.5})
    assert opt.param_groups[1]["params"] == [params[2]]
    assert opt.param_groups[1]["lr"] == 0.5 and opt.param_groups[1]["momentum"] == 0.9
    with pytest.raises(ValueError, match="already in another parameter group"):
        opt.add_param_group({"params": [params[0]]})
    with pytest.raises(ValueError, match=r"SGD param group 2: lr must be .* got -1"):
        opt.add_param_group({"params": [gw.tensor([1.0], requires_grad=True)], "lr": -1})


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        ([], ValueError, "empty parameter list"),
        (gw.tensor([1.0], requires_grad=True), TypeError, "got a single Tensor"),
        ([np.zeros(3)], TypeError, "parameter 0 must be a Tensor; got ndarray"),
        ([gw.tensor([1, 2])], TypeError, "must be floating point; got dtype int64"),
        ([{"lr": 0.1}], ValueError, "no 'params' entry"),
        ([{"params": {gw.tensor([1.0], requires_grad=True)}}], TypeError, "got a set"),
    ],
)
def test_bad_parameter_lists_are_refused(params, error, match):
    with pytest.raises(error, match=match):
        SGD(params, lr=0.1)


def test_non_leaf_and_duplicate_parameters_are_refused():
    x = gw.tensor([1.0], requires_grad=True)
    with pytest.raises(ValueError, match="result of op 'mul', not a leaf"):
        SGD([x * 2], lr=0.1)
    with pytest.raises(ValueError, match="appears more than once"):
        SGD([x, x], lr=0.1)


# --- hyperparameter validation -------------------------------------------------------
@pytest.mark.parametrize(
    ("cls", "kwargs", "match"),
    [
        (
            SGD,
            dict(lr=-0.1),
            r"SGD param group 0: lr must be a finite number in \[0.0, inf\); got -0.1",
        ),
        (SGD, dict(lr=float("nan")), "lr must be a finite number"),
        (SGD, dict(lr=None), "no learning rate"),
        (SGD, dict(lr="0.1"), "lr must be a finite number .* got '0.1'"),
        (SGD, dict(lr=0.1, momentum=-0.5), "momentum must be .* got -0.5"),
        (SGD, dict(lr=0.1, dampening=1.5), r"dampening must be .* \[0.0, 1.0\]; got 1.5"),
        (SGD, dict(lr=0.1, weight_decay=-1e-4), "weight_decay must be .* got -0.0001"),
        (SGD, dict(lr=0.1, nesterov=True), "nesterov=True needs momentum > 0 and dampening = 0"),
        (SGD, dict(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "dampening=0.1"),
        (Adam, dict(lr=-1e-3), "Adam param group 0: lr must be"),
        (Adam, dict(betas=(1.0, 0.999)), r"betas\[0\] must be a number in \[0, 1\); got 1.0"),
        (Adam, dict(betas=(0.9, -0.1)), r"betas\[1\] must be a number in \[0, 1\); got -0.1"),
        (Adam, dict(betas=0.9), r"betas must be a pair \(beta1, beta2\); got 0.9"),
        (Adam, dict(eps=-1e-8), "eps must be .* got -1e-08"),
        (Adam, dict(amsgrad="yes"), "amsgrad must be True or False; got 'yes'"),
        (AdamW, dict(weight_decay=-0.01), "AdamW param group 0: weight_decay must be"),
        (RMSprop, dict(alpha=1.5), r"alpha must be .* \[0.0, 1.0\]; got 1.5"),
        (RMSprop, dict(momentum=-0.1), "momentum must be"),
        (RMSprop, dict(centered=1), "centered must be True or False"),
        (Adagrad, dict(lr_decay=-0.1), "lr_decay must be .* got -0.1"),
        (Adagrad, dict(initial_accumulator_value=-1.0), "initial_accumulator_value must be"),
        (Adagrad, dict(eps=-1.0), "eps must be"),
        (Adamax, dict(betas=(0.9, 1.0)), r"betas\[1\] must be a number in \[0, 1\)"),
        (NAdam, dict(momentum_decay=-1.0), "NAdam param group 0: momentum_decay must be"),
        (NAdam, dict(decoupled_weight_decay=1), "decoupled_weight_decay must be True or False"),
        (RAdam, dict(weight_decay=-0.1), "RAdam param group 0: weight_decay must be"),
        (Adadelta, dict(rho=1.1), r"rho must be .* \[0.0, 1.0\]; got 1.1"),
        (Adadelta, dict(lr=None), "no learning rate"),
    ],
)
def test_bad_hyperparameters_are_refused_up_front(cls, kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        cls([gw.tensor([1.0], requires_grad=True)], **kwargs)


@pytest.mark.parametrize("cls", [Adam, AdamW, Adamax, NAdam, RAdam])
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(lr=-0.1), r"lr must be a finite number in \[0.0, inf\); got -0.1"),
        (dict(betas=(1.0, 0.9)), r"betas\[0\] must be a number in \[0, 1\); got 1.0"),
        (dict(betas=(0.9, -0.1)), r"betas\[1\] must be a number in \[0, 1\); got -0.1"),
        (dict(eps=-1e-8), "eps must be .* got -1e-08"),
        (dict(weight_decay=-0.1), "weight_decay must be .* got -0.1"),
    ],
)
def test_every_adam_variant_checks_the_hyperparameters_they_share(cls, kwargs, match):
    with pytest.raises(ValueError, match=f"{cls.__name__} param group 0: {match}"):
        cls([gw.tensor([1.0], requires_grad=True)], **kwargs)


@pytest.mark.parametrize("kwargs", [dict(lr=-1.0), dict(eps=-1e-6), dict(weight_decay=-0.1)])
def test_adadelta_refuses_negative_hyperparameters(kwargs):
    (name,) = kwargs
    with pytest.raises(ValueError, match=f"Adadelta param group 0: {name} must be"):
        Adadelta([gw.tensor([1.0], requires_grad=True)], **kwargs)


@pytest.mark.parametrize("cls", [Adam, Adamax, NAdam, RAdam, Adadelta, RMSprop, Adagrad])
def test_a_group_without_params_is_refused_naming_the_optimizer(cls):
    with pytest.raises(ValueError, match=f"{cls.__name__} param group 0: the dict has no 'params'"):
        cls([{"lr": 0.1}])


def test_group_hyperparameters_are_validated_too():
    with pytest.raises(ValueError, match=r"Adam param group 1: betas\[0\]"):
        Adam([{"params": make_params()[:1]}, {"params": make_params()[1:], "betas": (2, 0.9)}])


# --- zero_grad ----------------------------------------------------------------------
def test_zero_grad_sets_gradients_to_none_by_default():
    params = make_params()
    opt = SGD(params, lr=0.1)
    set_grads(params, 0)
    opt.zero_grad()
    assert all(p.grad is None for p in params)


def test_zero_grad_without_none_fills_existing_gradients_in_place():
    params = make_params()
    opt = SGD(params, lr=0.1)
    set_grads(params[:2], 0)
    arrays = [p.grad.data for p in params[:2]]
    opt.zero_grad(set_to_none=False)
    for p, array in zip(params[:2], arrays):
        assert p.grad.data is array
        np.testing.assert_array_equal(array, 0.0)
    assert params[2].grad is None


def test_zero_grad_works_on_gradients_from_backward():
    p = gw.tensor([1.0, 2.0], requires_grad=True)
    opt = SGD([p], lr=0.1)
    (p * 3).sum().backward()
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(p.grad.data, [0.0, 0.0])
    (p * 3).sum().backward()
    np.testing.assert_array_equal(p.grad.data, [3.0, 3.0])


# --- state_dict and resuming -----------------------------------------------------------
@pytest.mark.parametrize(("cls", "kwargs"), ALL, ids=IDS)
def test_resumed_optimizer_continues_exactly_like_an_uninterrupted_one(cls, kwargs):
    straight = make_params()
    opt = cls(groups(straight), **kwargs)
    for step in range(3):
        set_grads(straight, step)
        opt.step()
    saved_params = [p.data.copy() for p in straight]
    saved = opt.state_dict()
    for step in range(3, 6):
        set_grads(straight, step)
        opt.step()

    resumed = make_params()
    for p, data in zip(resumed, saved_params):
        p.data[...] = data
    opt2 = cls(groups(resumed), **kwargs)
    opt2.load_state_dict(saved)
    for step in range(3, 6):
        set_grads(resumed, step)
        opt2.step()
    for a, b in zip(straight, resumed):
        np.testing.assert_array_equal(a.data, b.data)


def test_state_dict_layout_is_pytorchs_and_copies_arrays():
    params = make_params()
    opt = Adam(groups(params), lr=0.01)
    set_grads(params, 0)
    opt.step()
    sd = opt.state_dict()
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1], [2]]
    assert sd["param_groups"][1]["lr"] == 0.003 and sd["param_groups"][0]["lr"] == 0.01
    assert sorted(sd["state"]) == [0, 1, 2]
    assert sorted(sd["state"][0]) == ["exp_avg", "exp_avg_sq", "step"]
    assert sd["state"][2]["step"] == 1
    m = sd["state"][0]["exp_avg"]
    assert m.shape == (3, 2) and m.dtype == np.float32
    m[...] = 123.0
    assert not np.any(opt.state[params[0]]["exp_avg"] == 123.0)


def test_state_dict_survives_a_json_round_trip():
    # A checkpoint may store numbers as JSON (lists, string keys) and arrays elsewhere.
    params = make_params()
    opt = Adam(groups(params), lr=0.01, amsgrad=True)
    for step in range(2):
        set_grads(params, step)
        opt.step()
    sd = opt.state_dict()
    as_json = json.loads(
        json.dumps(sd, default=lambda a: a.tolist() if isinstance(a, np.ndarray) else a)
    )
    resumed = make_params()
    for p, q in zip(resumed, params):
        p.data[...] = q.data
    opt2 = Adam(groups(resumed), lr=0.01, amsgrad=True)
    opt2.load_state_dict(as_json)
    assert opt2.param_groups[0]["betas"] == (0.9, 0.999)
    assert opt2.state[resumed[0]]["exp_avg"].dtype == np.float32
    assert opt2.state[resumed[0]]["step"] == 2
    set_grads(params, 2)
    set_grads(resumed, 2)
    opt.step()
    opt2.step()
    for a, b in zip(params, resumed):
        np.testing.assert_array_equal(a.data, b.data)


def test_loading_restores_hyperparameters_but_keeps_the_parameters():
    params = make_params()
    opt = SGD(params, lr=0.1)
    sd = opt.state_dict()
    sd["param_groups"][0]["lr"] = 0.5
    opt.load_state_dict(sd)
    assert opt.param_groups[0]["lr"] == 0.5
    assert opt.param_groups[0]["params"] == params


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (
            lambda sd: sd["param_groups"].pop(),
            r"has 1 parameter group\(s\) but this optimizer has 2",
        ),
        (lambda sd: sd["param_groups"][1]["params"].append(7), "group 1 has 2 parameter"),
        (
            lambda sd: sd["state"][0].update(exp_avg=np.zeros((2, 3))),
            r"'exp_avg' of parameter 0 has shape \(2, 3\) but the parameter has shape \(3, 2\)",
        ),
        (
            lambda sd: sd["state"].update({9: {"step": 1}}),
            "state for parameter 9, which no parameter group lists",
        ),
        (lambda sd: sd["param_groups"][0].update(lr=-1.0), "parameter group 0: lr must be"),
        (lambda sd: sd.pop("state"), "expected a dict with 'state' and 'param_groups'"),
    ],
)
def test_mismatched_state_dicts_are_refused_and_change_nothing(mutate, match):
    params = make_params()
    opt = Adam(groups(params), lr=0.01)
    set_grads(params, 0)
    opt.step()
    before = opt.state_dict()
    sd = opt.state_dict()
    mutate(sd)
    with pytest.raises(ValueError, match=match):
        opt.load_state_dict(sd)
    after = opt.state_dict()
    assert after["param_groups"] == before["param_groups"]
    for i, entries in before["state"].items():
        for k, v in entries.items():
            np.testing.assert_array_equal(after["state"][i][k], v)


def test_base_optimizer_has_no_update_rule():
    opt = Optimizer([gw.tensor([1.0], requires_grad=True)], dict(lr=0.1))
    with pytest.raises(NotImplementedError):
        opt.step()


def test_repr_lists_the_groups():
    text = repr(SGD([{"params": make_params()[:1]}, {"params": make_params()[1:]}], lr=0.1))
    assert text.startswith("SGD (") and "Parameter Group 1" in text and "lr: 0.1" in text


def test_a_missing_momentum_buffer_starts_afresh():
    # PyTorch's SGD saves momentum_buffer=None for parameters it never moved with momentum.
    p = gw.tensor([1.0], dtype="float64", requires_grad=True)
    opt = SGD([p], lr=0.1, momentum=0.9)
    opt.load_state_dict({"state": {0: {"momentum_buffer": None}}, "param_groups": [
        {**{k: v for k, v in opt.param_groups[0].items() if k != "params"}, "params": [0]}
    ]})  # fmt: skip
    p.grad = gw.tensor([2.0], dtype="float64")
    opt.step()
    opt.step()
    np.testing.assert_allclose(p.data, [1.0 - 0.1 * 2.0 - 0.1 * (0.9 * 2.0 + 2.0)])
