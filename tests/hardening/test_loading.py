"""Loading is all or nothing, and a file gradwell did not write is named as such."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save_file

import gradwell as gw
from gradwell.train.checkpoint import CheckpointError


def make_model():
    return gw.nn.Sequential(
        gw.nn.Linear(2, 3, rng=0), gw.nn.Dropout(0.5, rng=1), gw.nn.Linear(3, 1, rng=2)
    )


def trained(model, opt):
    (model(gw.ones(4, 2)) ** 2).sum().backward()
    opt.step()


def snapshot(model, opt=None):
    state = {k: v.copy() for k, v in model.state_dict().items()}
    rng = model[1].rng.bit_generator.state
    return state, rng, None if opt is None else repr(opt.state_dict())


def assert_unchanged(before, model, opt=None):
    state, rng, opt_state = before
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, state[k], err_msg=k)
    assert model[1].rng.bit_generator.state == rng
    if opt is not None:
        assert repr(opt.state_dict()) == opt_state


@pytest.mark.parametrize(
    "bad",
    [
        np.array(["x", "y", "z"]).reshape(1, 3),  # text of the right shape
        np.array([[None, None, None]]),
        np.zeros((1, 4)),
        [[1.0, 2.0], [3.0]],
    ],
)
def test_load_state_dict_checks_every_entry_before_writing(bad):
    model = make_model()
    sd = model.state_dict()
    sd["0.weight"] = sd["0.weight"] + 1  # valid, listed first
    sd["2.weight"] = bad
    before = snapshot(model)
    with pytest.raises(RuntimeError, match=r"nothing was loaded[\s\S]*'2.weight'"):
        model.load_state_dict(sd)
    assert_unchanged(before, model)


def test_a_state_dict_must_be_a_mapping():
    with pytest.raises(TypeError, match="expected a dict of arrays by name"):
        make_model().load_state_dict([("0.weight", np.zeros((3, 2)))])


def test_an_optimizer_whose_groups_do_not_match_changes_nothing(tmp_path):
    model = make_model()
    opt = gw.optim.Adam(model.parameters(), lr=0.1)
    trained(model, opt)
    path = gw.save(tmp_path / "run.safetensors", model, opt)
    other = make_model()
    other_opt = gw.optim.Adam(
        [{"params": list(other.parameters())[:2]}, {"params": list(other.parameters())[2:]}], lr=0.1
    )
    trained(other, other_opt)
    before = snapshot(other, other_opt)
    with pytest.raises(CheckpointError, match=r"run.safetensors: .*1 parameter group\(s\)"):
        gw.load(path, other, other_opt)
    assert_unchanged(before, other, other_opt)


def test_an_adam_checkpoint_does_not_load_into_sgd(tmp_path):
    model = make_model()
    adam = gw.optim.Adam(model.parameters(), lr=0.1)
    trained(model, adam)
    path = gw.save(tmp_path / "run.safetensors", model, adam)
    sgd = gw.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(CheckpointError, match="optimizer state of class Adam; .* into SGD"):
        gw.load(path, model, sgd)
    assert "betas" not in sgd.param_groups[0]
    with pytest.raises(ValueError, match=r"hyperparameters \['amsgrad', 'betas', 'eps'\]"):
        sgd.load_state_dict(adam.state_dict())  # directly too
    assert "betas" not in sgd.param_groups[0]


def test_a_bad_scheduler_state_changes_nothing():
    opt = gw.optim.SGD([gw.tensor([1.0], requires_grad=True)], lr=1.0)
    first = gw.optim.lr_scheduler.StepLR(opt, 2)
    second = gw.optim.lr_scheduler.StepLR(opt, 3)
    seq = gw.optim.lr_scheduler.SequentialLR(opt, [first, second], milestones=[2])
    saved = seq.state_dict()
    saved["_schedulers"][1] = {"bogus": 1}  # the first child is fine, the second is not
    before = repr(seq.state_dict())
    with pytest.raises(ValueError, match="does not belong to this schedule"):
        seq.load_state_dict(saved)
    assert repr(seq.state_dict()) == before


def test_save_refuses_metadata_that_load_would_refuse(tmp_path):
    deep = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(ValueError, match="metadata nests more than 62 levels"):
        gw.save(tmp_path / "a.safetensors", make_model(), notes=deep)
    nested = []
    for _ in range(60):
        nested = [nested]
    path = gw.save(tmp_path / "a.safetensors", make_model(), notes=nested)
    assert gw.load(path, make_model())["notes"] == nested


def test_save_refuses_a_scaler_that_is_not_one(tmp_path):
    with pytest.raises(TypeError, match="scaler must be a scaler from gw.preprocessing .* got int"):
        gw.save(tmp_path / "a.safetensors", make_model(), scaler=1)
    with pytest.raises(TypeError, match="scaler 'x' must be a scaler"):
        gw.save(tmp_path / "a.safetensors", make_model(), scaler={"x": "minmax"})
    assert not list(tmp_path.iterdir())


# ----------------------------------------------------------------------- schema
@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    model = make_model()
    opt = gw.optim.Adam(model.parameters(), lr=0.1)
    trained(model, opt)
    path = gw.save(tmp_path_factory.mktemp("ck") / "run.safetensors", model, opt)
    with safe_open(str(path), "numpy") as f:
        meta = json.loads(f.metadata()["gradwell"])
        arrays = {k: f.get_tensor(k) for k in f.keys()}
    return meta, arrays


def edited(meta, change):
    copy = json.loads(json.dumps(meta))
    change(copy)
    return json.dumps(copy)


SCHEMA_CASES = {
    "not JSON": (
        lambda m: "{not json",
        "not a gradwell checkpoint: its metadata is not valid JSON",
    ),
    "a JSON list": (lambda m: "[1, 2]", "not a gradwell checkpoint: its format is 'list'"),
    "another format": (lambda m: edited(m, lambda c: c.update(format="x")), "its format is 'x'"),
    "a newer version": (
        lambda m: edited(m, lambda c: c.update(version=7)),
        "written by a newer version of gradwell",
    ),
    "a bool version": (
        lambda m: edited(m, lambda c: c.update(version=True)),
        "format version is True",
    ),
    "no model_keys": (lambda m: edited(m, lambda c: c.pop("model_keys")), "'model_keys' must be"),
    "no random_state": (
        lambda m: edited(m, lambda c: c.pop("random_state")),
        "'random_state' must",
    ),
    "a key with no tensor": (
        lambda m: edited(m, lambda c: c["model_keys"].append("7.weight")),
        "model key '7.weight' has no tensor",
    ),
    "a bogus RNG state": (
        lambda m: edited(
            m,
            lambda c: c["random_state"]["modules"].update(
                {"1.rng": {"dict": [["bit_generator", "PCG64"], ["state", 5]]}}
            ),
        ),
        "the random state of '1.rng' is not a PCG64 state",
    ),
    "200k levels of nesting": (lambda m: "[" * 200_000 + "]" * 200_000, "nests more than"),
    "deep but valid JSON": (
        lambda m: edited(m, lambda c: c["metadata"].update(deep=json.loads("[" * 100 + "]" * 100))),
        "nests more than 64 levels",
    ),
    "an unknown tag": (
        lambda m: edited(m, lambda c: c["optimizer"].update(state={"pickle": "x"})),
        "where an array reference or a tagged container was expected",
    ),
    "a missing array": (
        lambda m: edited(m, lambda c: c["optimizer"].update(state={"array": "no"})),
        "where an array reference",
    ),
    "optimizer state of the wrong kind": (
        lambda m: edited(m, lambda c: c["optimizer"].update(state={"dict": [["state", 1]]})),
        "Adam.load_state_dict: expected a dict",
    ),
    "metadata not a dict": (
        lambda m: edited(m, lambda c: c.update(metadata=[])),
        "'metadata' must",
    ),
    "a broken scaler": (
        lambda m: edited(m, lambda c: c.update(scaler={"type": "LinearScaler", "fitted": True})),
        "its scaler cannot be rebuilt",
    ),
}


@pytest.mark.parametrize("case", SCHEMA_CASES.values(), ids=SCHEMA_CASES.keys())
def test_metadata_not_written_by_gradwell(saved, tmp_path, case):
    meta, arrays = saved
    text_of, message = case
    path = tmp_path / "odd.safetensors"
    save_file(arrays, str(path), metadata={"gradwell": text_of(meta)})
    model = make_model()
    opt = gw.optim.Adam(model.parameters(), lr=0.1)
    trained(model, opt)
    before = snapshot(model, opt)
    with pytest.raises(CheckpointError) as err:
        gw.load(path, model, opt)
    assert message in str(err.value) and str(path) in str(err.value)
    assert_unchanged(before, model, opt)


@pytest.mark.parametrize(
    "content",
    [b"", b"\xff" * 64, b"\x08" + b"\x00" * 7 + b"{}      ", b"PK\x03\x04 a zip file, or a pickle"],
)
def test_files_that_are_not_safetensors(tmp_path, content):
    path = tmp_path / "x.safetensors"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="x.safetensors"):
        gw.load(path, make_model())
