"""Module.summary: output shapes from a real forward pass, parameter counts by the formula."""

import numpy as np
import pytest

import gradwell as gw

nn = gw.nn


def test_counts_and_shapes_of_a_cnn():
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Sequential(nn.Linear(8 * 5 * 5, 16), nn.Dropout(0.1)),
        nn.Linear(16, 4, bias=False),
    )  # fmt: skip
    model[6].weight.requires_grad = False  # frozen: non-trainable
    model.train()
    lines = []
    s = model.summary(np.zeros((7, 3, 10, 10), np.float32), print_fn=lines.append)
    rows = {r.path: r for r in s.rows}
    assert list(rows) == ["0", "1", "2", "3", "4", "5.0", "5.1", "6"]  # containers are paths
    conv, bn, dense, head = 8 * 3 * 3 * 3 + 8, 2 * 8, 200 * 16 + 16, 16 * 4
    assert (rows["0"].trainable, rows["0"].non_trainable) == (conv, 0)
    assert (rows["1"].trainable, rows["1"].non_trainable) == (bn, 2 * 8)  # running mean, var
    assert (rows["5.0"].params, rows["6"].trainable, rows["6"].non_trainable) == (dense, 0, head)
    assert s.trainable == conv + bn + dense and s.non_trainable == 16 + head
    assert s.total == s.trainable + s.non_trainable
    assert rows["0"].output_shape == ("N", 8, 10, 10) and rows["3"].output_shape == ("N", 8, 5, 5)
    assert rows["4"].output_shape == ("N", 200) and rows["6"].output_shape == ("N", 4)
    assert rows["1"].type == "BatchNorm2d"
    assert all(m.training for m in model.modules())  # modes come back
    table = lines[0]
    assert "5.0 (Linear)" in table and "(N, 8, 5, 5)" in table
    assert f"Total params: {s.total:,}" in table and f"Non-trainable params: {16 + head:,}" in table


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = nn.Linear(3, 3)
        self.scale = gw.nn.Parameter(gw.ones(3))

    def forward(self, x):
        return self.inner(x) * self.scale


def test_a_user_module_with_its_own_parameters_and_input_shape():
    s = Block().summary(input_shape=(3,), print_fn=None)
    assert [(r.path, r.type, r.params) for r in s.rows] == [
        ("model", "Block", 3),
        ("inner", "Linear", 12),
    ]
    assert s.total == 15 and s.input_shape == ("N", 3)


def test_one_of_example_or_input_shape():
    with pytest.raises(TypeError, match="one of them"):
        nn.Linear(2, 2).summary(print_fn=None)
    with pytest.raises(TypeError, match="input_shape as a tuple"):
        nn.Linear(2, 2).summary(input_shape="wide", print_fn=None)
