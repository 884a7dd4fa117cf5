"""Small PyTorch models and hand-written loops for the torch doctor's tests: the doctor
issue's recipes rebuilt in torch (data from the gradwell doctor's kit)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from doctor.kit import dataset  # noqa: F401  (the same data as gradwell's recipes)
from torch import nn

import gradwell as gw
from gradwell.torch import Doctor


def mlp(n_in: int, widths: list[int], n_out: int, act: str = "ReLU", *, seed: int = 0,
        dropout: float | None = None, init: str | None = None) -> nn.Sequential:  # fmt: skip
    """Linear -> act -> [Dropout] blocks, then a last Linear; Xavier init for sigmoid/tanh
    and He init for the rest (as the gradwell kit)."""
    torch.manual_seed(seed)
    init = init or ("xavier" if act in ("Sigmoid", "Tanh") else "kaiming")
    layers: list[nn.Module] = []
    d = n_in
    for w in widths:
        layers += [nn.Linear(d, w), getattr(nn, act)()]
        if dropout is not None:
            layers.append(nn.Dropout(dropout))
        d = w
    layers.append(nn.Linear(d, n_out))
    for m in layers:
        if isinstance(m, nn.Linear):
            if init == "xavier":
                nn.init.xavier_normal_(m.weight)
            else:
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)
    return nn.Sequential(*layers)


def optimizer(name: str, model: nn.Module, lr: float) -> torch.optim.Optimizer:
    params = model.parameters()
    return {
        "sgd": lambda: torch.optim.SGD(params, lr=lr),
        "momentum": lambda: torch.optim.SGD(params, lr=lr, momentum=0.9),
        "adam": lambda: torch.optim.Adam(params, lr=lr),
    }[name]()


def an_epoch(model: nn.Module, opt: Any, doctor: Doctor, X: Any, y: Any) -> None:
    """One epoch of the issue's loop over batches of 64 in order, the doctor watching (no
    ``end_epoch``: the caller may evaluate first)."""
    loss_fn = nn.CrossEntropyLoss()
    for i in range(0, len(X), 64):
        opt.zero_grad()
        loss = loss_fn(model(X[i : i + 64]), y[i : i + 64])
        loss.backward()
        doctor.step(loss, X[i : i + 64], y[i : i + 64])
        opt.step()


def train(model: nn.Module, X: Any, y: Any, opt: torch.optim.Optimizer, *, loss_fn: Any = None,
          epochs: int = 4, batch_size: int = 32, seed: int = 0, **options: Any
          ) -> Doctor:  # fmt: skip
    """The issue's loop (doctor.step between backward and optimizer.step), shuffled
    mini-batches, ``end_epoch`` at each epoch's end; returns the finished Doctor."""
    X = torch.as_tensor(np.asarray(X))
    y = torch.as_tensor(np.asarray(y))
    loss_fn = loss_fn if loss_fn is not None else nn.CrossEntropyLoss()
    doctor = Doctor(model, opt, loss=loss_fn, train_data=(X, y), verbose=False,
                    raise_errors=True, **options)  # fmt: skip
    g = torch.Generator().manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for _ in range(epochs):
            order = torch.randperm(len(X), generator=g)
            for i in range(0, len(X), batch_size):
                xb, yb = X[order[i : i + batch_size]], y[order[i : i + batch_size]]
                opt.zero_grad()
                loss = loss_fn(model(xb), yb)
                loss.backward()
                doctor.step(loss, xb, yb)
                opt.step()
            doctor.end_epoch()
    doctor.finish()
    return doctor


def serious(doctor: Doctor) -> list[Any]:
    return [f for f in doctor.findings if f.severity in ("warning", "critical")]


def kinds(doctor: Doctor) -> dict[str, list[str]]:
    """kind -> the `where` of each serious finding of that kind."""
    out: dict[str, list[str]] = {}
    for f in serious(doctor):
        out.setdefault(f.kind, []).append(f.where)
    return out


def paths_of(model: nn.Module, cls: str) -> list[str]:
    return [p for p, m in model.named_modules() if type(m).__name__ == cls]


# --------------------------------------------------------------------------- the gradwell twin


class _Chain(gw.nn.Module):
    """gradwell's counterpart of a torch Sequential with named children (``features``,
    ``classifier``): the same module paths."""

    def __init__(self, named: list[tuple[str, Any]]) -> None:
        super().__init__()
        for name, module in named:
            setattr(self, name, module)

    def forward(self, x: Any) -> Any:
        for module in self._modules.values():
            x = module(x)
        return x


def gradwell_twin(model: nn.Module) -> Any:
    """The same network in gradwell, with the same module paths and the same weights, so
    that a recipe can be run through both doctors."""
    if isinstance(model, nn.Sequential):
        named = [(name, gradwell_twin(child)) for name, child in model.named_children()]
        if all(name.isdigit() for name, _ in named):
            return gw.nn.Sequential(*(m for _, m in named))
        return _Chain(named)
    if isinstance(model, nn.Conv2d):
        twin = gw.nn.Conv2d(model.in_channels, model.out_channels, model.kernel_size,
                            stride=model.stride, padding=model.padding)  # fmt: skip
    elif isinstance(model, nn.Linear):
        twin = gw.nn.Linear(model.in_features, model.out_features)
    elif isinstance(model, nn.MaxPool2d):
        twin = gw.nn.MaxPool2d(model.kernel_size, model.stride)
    elif isinstance(model, (nn.Flatten, nn.ReLU, nn.Sigmoid, nn.Tanh)):
        twin = getattr(gw.nn, type(model).__name__)()
    else:
        raise TypeError(f"gradwell_twin: no gradwell counterpart for {type(model).__name__}")
    for name, p in model.named_parameters():
        getattr(twin, name).data[...] = p.detach().numpy()
    return twin
