"""Checkpoints describe their model: gw.load(path) rebuilds it; a different one is refused."""

import json

import numpy as np
import pytest
from safetensors import safe_open

import gradwell as gw
from gradwell import nn
from gradwell.preprocessing import ZScoreScaler
from gradwell.train.checkpoint import CheckpointError


def mlp(activation=nn.ReLU, seed=0):
    rng = np.random.default_rng(seed)
    return nn.Sequential(
        nn.Linear(3, 8, rng=rng), nn.BatchNorm1d(8), activation(), nn.Dropout(0.25, rng=rng),
        nn.Linear(8, 2, rng=rng),
    )  # fmt: skip


def test_load_without_a_model_rebuilds_it_with_preprocessing_and_metadata(tmp_path):
    model = mlp()
    X = np.random.default_rng(1).normal(size=(16, 3)).astype(np.float32)
    scaler = ZScoreScaler().fit(X)
    opt = gw.optim.SGD(model.parameters(), lr=0.1)
    gw.fit(model, (scaler.transform(X), np.arange(16) % 2), loss="cross_entropy", optimizer=opt,
           epochs=1, verbose=0)  # fmt: skip
    path = gw.save(tmp_path / "m.safetensors", model, scaler=scaler, note="hi")
    with safe_open(str(path), framework="numpy") as f:  # plain JSON, readable by anyone
        spec = json.loads(f.metadata()["gradwell"])["architecture"]
    assert [c["type"] for c in spec["children"]] == [
        "Linear", "BatchNorm1d", "ReLU", "Dropout", "Linear"
    ]  # fmt: skip
    loaded, preprocessing, metadata = gw.load(path)
    assert metadata == {"note": "hi"} and not loaded.training
    np.testing.assert_array_equal(
        gw.predict(loaded, preprocessing.transform(X)), gw.predict(model, scaler.transform(X))
    )


def test_a_relu_checkpoint_does_not_load_into_a_tanh_model(tmp_path):
    path = gw.save(tmp_path / "m.safetensors", mlp(nn.ReLU))
    with pytest.raises(CheckpointError, match=r"model\[2\] is a ReLU in the checkpoint but a Tanh"):
        gw.load(path, mlp(nn.Tanh))
    wider = mlp()
    wider[3] = nn.Dropout(0.5)
    with pytest.raises(CheckpointError, match=r"model\[3\] \(Dropout\) has p=0.25 .* p=0.5"):
        gw.load(path, wider)


class Net(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.width = width
        self.layer = nn.Linear(2, width)

    def forward(self, x):
        return self.layer(x)

    def get_config(self):
        return {"width": self.width}


def test_user_modules_load_by_registered_name_only(tmp_path):
    path = gw.save(tmp_path / "u.safetensors", Net(5))
    with pytest.raises(CheckpointError, match="user module 'Net' that was not registered"):
        gw.load(path)
    gw.register_module(Net)
    path = gw.save(tmp_path / "r.safetensors", Net(5))
    model, _, _ = gw.load(path)
    assert isinstance(model, Net) and model.width == 5
