"""The doctor's model edits applied to a PyTorch model, by module path.

The same actions as :mod:`gradwell.doctor.edits` (``Finding.actions``), made of torch's
modules and initialisers: a Sigmoid replaced by ``nn.ReLU`` with its feeding layer
re-initialised by ``nn.init.kaiming_normal_``, a ``nn.BatchNorm1d`` after a Linear, a
Dropout's ``p`` set, ... Configuration actions (learning rate, optimizer, batch size,
clipping) are the same for both frameworks and stay in gradwell's module.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..doctor.edits import NotApplicable, _paths, init_for
from ..doctor.profile import class_family


def _get(model: nn.Module, path: str) -> nn.Module:
    found = dict(model.named_modules()).get(path)
    if found is None:
        known = [p for p, _ in model.named_modules() if p]
        raise NotApplicable(f"the model has no module {path!r} (it has {', '.join(known[:12])})")
    return found


def _replace(model: nn.Module, path: str, new: nn.Module) -> None:
    if not path:
        raise NotApplicable("cannot replace the model itself")
    parent, _, name = path.rpartition(".")
    setattr(_get(model, parent) if parent else model, name, new)


def _activation_after(model: nn.Module, path: str) -> str:
    """The class name of the first activation after ``path`` in registration order."""
    seen = False
    for p, m in model.named_modules():
        if seen and class_family(m) is not None:
            return type(m).__name__
        seen = seen or p == path
    return ""


def make_activation(spec: str) -> nn.Module:
    """``"ReLU"``, ``"LeakyReLU(0.01)"`` -> a ``torch.nn`` activation module."""
    m = re.fullmatch(r"\s*([A-Za-z]+)\s*(?:\((.*)\))?\s*", spec)
    cls = (getattr(nn, m.group(1), None) or _OWN.get(m.group(1))) if m else None
    if m is None or not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise NotApplicable(f"{spec!r} is not a torch.nn activation")
    args = [float(v) for v in m.group(2).split(",") if v.strip()] if m.group(2) else []
    return cls(*args)


def _reinit(layer: nn.Module, init: str) -> None:
    weight = getattr(layer, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.ndim < 2:
        raise NotApplicable(f"{type(layer).__name__} has no weight to re-initialise")
    with torch.no_grad():
        if init == "he":
            nn.init.kaiming_normal_(weight, nonlinearity="relu")
        elif init == "xavier":
            nn.init.xavier_normal_(weight)
        else:
            raise NotApplicable(f"unknown init {init!r}; expected 'he' or 'xavier'")
        bias = getattr(layer, "bias", None)
        if isinstance(bias, torch.Tensor):
            bias.zero_()


def _feeding_layer(model: nn.Module, path: str) -> nn.Module | None:
    """The last layer with a weight (Linear, Conv) before ``path`` in registration order."""
    last = None
    for p, m in model.named_modules():
        if p == path:
            return last
        w = getattr(m, "weight", None)
        if isinstance(w, torch.Tensor) and w.ndim >= 2:
            last = m
    return None


def _replace_activation(model: nn.Module, a: dict[str, Any]) -> None:
    new = str(a["to"])
    init = a["init"] if "init" in a else init_for(new)
    for path in _paths(a, "modules"):
        _get(model, path)
        feeding = _feeding_layer(model, path)
        if init is not None and feeding is not None:
            _reinit(feeding, str(init))
        _replace(model, path, make_activation(new))


def _reinitialise(model: nn.Module, a: dict[str, Any]) -> None:
    for path in _paths(a, "modules"):
        m = _get(model, path)
        _reinit(m, str(a.get("init") or init_for(_activation_after(model, path))))


def _set_dropout(model: nn.Module, a: dict[str, Any]) -> None:
    rate = float(a["rate"])
    if not 0.0 <= rate <= 1.0:
        raise NotApplicable(f"a dropout rate is in [0, 1]; got {rate}")
    for path in _paths(a, "modules"):
        m = _get(model, path)
        if not isinstance(m, nn.modules.dropout._DropoutNd):
            raise NotApplicable(f"module {path!r} ({type(m).__name__}) is not a Dropout")
        m.p = rate


def _wrap_after(model: nn.Module, a: dict[str, Any], key: str, make: Any) -> None:
    for path in _paths(a, key):
        m = _get(model, path)
        _replace(model, path, nn.Sequential(m, make(m)))


def _batchnorm_for(m: nn.Module) -> nn.Module:
    if isinstance(m, nn.Linear):
        return nn.BatchNorm1d(m.out_features)
    if isinstance(m, nn.Conv2d):
        return nn.BatchNorm2d(m.out_channels)
    raise NotApplicable(f"BatchNorm goes after a Linear or Conv2d; got {type(m).__name__}")


def _remove_module(model: nn.Module, a: dict[str, Any]) -> None:
    for path in _paths(a, "modules"):
        _get(model, path)
        _replace(model, path, nn.Identity())


def _set_batchnorm_momentum(model: nn.Module, a: dict[str, Any]) -> None:
    momentum = a.get("momentum")
    if momentum is not None and not 0.0 <= float(momentum) <= 1.0:
        raise NotApplicable(f"a batch-norm momentum is in [0, 1] or None; got {momentum!r}")
    for path in _paths(a, "modules"):
        m = _get(model, path)
        if not isinstance(m, nn.modules.batchnorm._BatchNorm):
            raise NotApplicable(f"module {path!r} ({type(m).__name__}) is not a batch norm")
        m.momentum = None if momentum is None else float(momentum)


def _set_out_features(model: nn.Module, a: dict[str, Any]) -> None:
    path = str(a["module"])
    m = _get(model, path)
    if not isinstance(m, nn.Linear):
        raise NotApplicable(f"module {path!r} is a {type(m).__name__}, not a Linear")
    new = nn.Linear(m.in_features, int(a["out_features"]), bias=m.bias is not None)
    _replace(model, path, new.to(device=m.weight.device, dtype=m.weight.dtype))


class Exp(nn.Module):
    """``exp(x)``: a positive output (for a loss that takes its log)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(x)


class ClampMin(nn.Module):
    """``max(x, floor)``: keeps a value that feeds log/sqrt/div above ``floor``."""

    def __init__(self, floor: float = 1e-6) -> None:
        super().__init__()
        self.floor = floor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x, min=self.floor)


_OWN: dict[str, type[nn.Module]] = {"Exp": Exp, "ClampMin": ClampMin}


def _positive_output(model: nn.Module, a: dict[str, Any]) -> None:
    makers = {"softplus": nn.Softplus, "exp": Exp, "clamp": ClampMin}
    how = a.get("how", "softplus")
    if how not in makers:
        raise NotApplicable(f"positive_output: how must be one of {sorted(makers)}; got {how!r}")
    if not a.get("module"):
        raise NotApplicable("positive_output names no module")
    _wrap_after(model, {"action": "positive_output", "after": [str(a["module"])]}, "after",
                lambda m: makers[how]())  # fmt: skip


#: Actions that edit a built torch model, and how.
MODEL_ACTIONS = {
    "replace_activation": _replace_activation,
    "reinitialise": _reinitialise,
    "set_dropout": _set_dropout,
    "add_batchnorm": lambda model, a: _wrap_after(model, a, "after", _batchnorm_for),
    "add_dropout": lambda model, a: _wrap_after(
        model, a, "after", lambda m: nn.Dropout(float(a.get("rate", 0.2)))
    ),
    "insert_activation": lambda model, a: _wrap_after(
        model, a, "after", lambda m: make_activation(str(a.get("activation", "ReLU")))
    ),
    "remove_module": _remove_module,
    "set_out_features": _set_out_features,
    "positive_output": _positive_output,
    "set_batchnorm_momentum": _set_batchnorm_momentum,
}


def apply_edits(
    model: nn.Module, optimizer: Any, edits: Sequence[dict[str, Any]]
) -> tuple[nn.Module, Any]:
    """Apply model edits in order to a freshly built torch ``model``; returns (model,
    optimizer). New modules go to the device and dtype of the model's first parameter;
    when an edit adds or replaces parameters, the optimizer is rebuilt over the model's
    parameters with its first group's hyperparameters.

    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(2, 4), nn.Sigmoid(), nn.Linear(4, 1))
    >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> model, opt = apply_edits(model, opt, [{"action": "replace_activation",
    ...     "modules": ["1"], "from": "Sigmoid", "to": "ReLU", "init": "he"}])
    >>> type(model[1]).__name__
    'ReLU'
    """
    first_param = next(model.parameters(), None)
    for action in edits:
        fn = MODEL_ACTIONS.get(action.get("action", ""))
        if fn is None:
            raise NotApplicable(f"{action.get('action')!r} is not a model edit")
        fn(model, action)
    if first_param is not None:
        model.to(device=first_param.device, dtype=first_param.dtype)
    before = {id(p) for g in optimizer.param_groups for p in g["params"]}
    if {id(p) for p in model.parameters()} != before:
        group = {k: v for k, v in optimizer.param_groups[0].items() if k in optimizer.defaults}
        optimizer = type(optimizer)(model.parameters(), **group)
    return model, optimizer
