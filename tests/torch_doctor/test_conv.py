"""The doctor on conv nets in PyTorch: each recipe runs through both doctors, the torch
model and its gradwell twin (same weights, same module paths), and must give the same kind
at the same place: dead channels after conv + ReLU, vanishing gradients through a deep
sigmoid CNN; healthy CNNs stay quiet."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
from doctor import kit as gw_kit
from torch import nn
from torch_doctor.kit import dataset, gradwell_twin, optimizer, paths_of, serious, train

SEEDS = (0, 1)


def digits(seed: int, n: int = 512) -> tuple[np.ndarray, np.ndarray]:
    X, y, _ = dataset("digits", seed)
    return X.reshape(-1, 1, 8, 8)[:n], y[:n]


def both(model: nn.Module, X, y, opt: str, lr: float, *, epochs: int, seed: int):
    """The serious findings of the torch run and of its gradwell twin's run."""
    twin = gradwell_twin(model)
    doctor = train(model, X, y, optimizer(opt, model, lr), epochs=epochs, seed=seed)
    history = gw_kit.train(twin, X, y, gw_kit.optimizer(opt, twin, lr), epochs=epochs, seed=seed)
    return serious(doctor), gw_kit.serious(history)


def conv_stack(depth: int, act: str, seed: int, channels: int = 8) -> nn.Sequential:
    """``depth`` blocks Conv2d(3x3, same padding) -> act on 1x8x8 images, then Flatten and
    a Linear to 10 classes; Xavier init for sigmoid/tanh, He init for ReLU."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    c = 1
    for _ in range(depth):
        layers += [nn.Conv2d(c, channels, 3, padding=1), getattr(nn, act)()]
        c = channels
    layers += [nn.Flatten(), nn.Linear(channels * 64, 10)]
    for m in layers:
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            if act == "ReLU":
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            else:
                nn.init.xavier_normal_(m.weight)
            nn.init.zeros_(m.bias)
    return nn.Sequential(*layers)


def conv_net(seed: int) -> nn.Sequential:
    """features (conv -> ReLU -> conv -> ReLU) then classifier (Flatten -> Linear), on 8x8
    single-channel images: PyTorch's names ``features.3``, ``classifier.1``."""
    torch.manual_seed(seed)
    features = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(),
                             nn.Conv2d(8, 16, 3, padding=1), nn.ReLU())  # fmt: skip
    classifier = nn.Sequential(nn.Flatten(), nn.Linear(16 * 8 * 8, 10))
    return nn.Sequential(OrderedDict(features=features, classifier=classifier))


# --------------------------------------------------------------------------- sick


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("depth,opt", [(6, "sgd"), (8, "adam")])
def test_deep_sigmoid_cnn_vanishes_at_the_first_convs_as_in_gradwell(depth, opt, seed):
    X, y = digits(seed)
    model = conv_stack(depth, "Sigmoid", seed)
    lr = {"sgd": 0.5, "adam": 0.01}[opt]
    in_torch, in_gradwell = both(model, X, y, opt, lr, epochs=3, seed=seed)
    convs = paths_of(model, "Conv2d")
    for findings in (in_torch, in_gradwell):
        vanishing = [f for f in findings if f.kind == "vanishing_gradients"]
        assert len(vanishing) == 1, [f.headline() for f in findings]
        f = vanishing[0]
        # the same place in both: from the first conv on, never the last conv (how many
        # convs in between fall under the threshold varies with the batches' order)
        assert f.locations[0] == convs[0] and set(f.locations) <= set(convs[:-1])
        assert f.evidence["ratio_to_strongest_later_layer"][convs[0]] < 0.01
    torch_texts = " ".join(next(f for f in in_torch if f.kind == "vanishing_gradients").remedies)
    assert "with ReLU" in torch_texts and "nn.init.kaiming_normal_" in torch_texts
    assert "gw." not in torch_texts


@pytest.mark.parametrize("seed", SEEDS)
def test_conv_net_has_dead_channels_after_conv_relu_as_in_gradwell(seed):
    X, y = digits(seed)
    model = conv_net(seed)
    with torch.no_grad():  # a conv bias far below zero: its channels never fire
        model.features[2].bias[:12] = -50.0
    in_torch, in_gradwell = both(model, X, y, "adam", 0.001, epochs=2, seed=seed)
    for findings in (in_torch, in_gradwell):
        f = next(f for f in findings if f.kind == "dead_relu")
        assert f.where == "features.3"  # the ReLU after the second conv, in both
        assert f.evidence["dead_units"] / f.evidence["units"] >= 12 / 16
    f = next(f for f in in_torch if f.kind == "dead_relu")
    assert f.evidence["units"] == 16 and f.evidence["dead_units"] >= 12  # judged per channel


# --------------------------------------------------------------------------- healthy


@pytest.mark.parametrize("seed", SEEDS)
def test_shallow_sigmoid_cnn_stays_quiet_as_in_gradwell(seed):
    X, y = digits(seed)
    for findings in both(conv_stack(2, "Sigmoid", seed), X, y, "adam", 0.01, epochs=3,
                         seed=seed):  # fmt: skip
        assert findings == [], [f.headline() for f in findings]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("build", [lambda s: conv_stack(6, "ReLU", s), conv_net],
                         ids=["deep_relu_stack", "conv_net"])  # fmt: skip
def test_healthy_relu_cnns_stay_quiet(build, seed):
    X, y = digits(seed)
    model = build(seed)
    doctor = train(model, X, y, optimizer("adam", model, 0.003), epochs=3, seed=seed)
    assert serious(doctor) == [], [f.headline() for f in serious(doctor)]
