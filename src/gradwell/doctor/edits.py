"""Applying a remedy's action: to a training configuration, or to a freshly built model.

Actions are the dicts in ``Finding.actions`` (see :data:`CONFIG_ACTIONS` and
:data:`MODEL_ACTIONS`). A configuration action returns a new config dict (the
keys below are the ones a ``build``/``train`` pair for :func:`repair` reads); a
model edit changes a model in place by module path, as ``named_modules()`` names
them, so it works for a model from any ``build``. Either raises
:class:`NotApplicable`, saying why, when it cannot be applied.

Configuration keys: ``lr`` (a number, or a list with one rate per parameter
group), ``optimizer`` ("SGD", "Adam", ...), ``batch_size``, ``clip_grad_norm``,
``scale_features`` (None, True for ``AutoScaler``, or a dict column -> chain),
``target_scaler`` (None or a ``TargetScaler`` method), ``loss``, ``weight_decay``,
``early_stopping`` (patience, or None).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..autograd.tensor import Tensor
from ..nn.module import Module


class NotApplicable(Exception):
    """An action that cannot be applied here; the message says why."""


# ------------------------------------------------------------------ configuration
def _scale_lr(config: dict[str, Any], a: dict[str, Any]) -> None:
    if a.get("lr"):
        rates = [float(r) for r in a["lr"]]
        config["lr"] = rates[0] if len(set(rates)) == 1 else rates
    elif "lr" in config and "factor" in a:
        old = config["lr"]
        f = float(a["factor"])
        config["lr"] = [r * f for r in old] if isinstance(old, list) else float(old) * f
    else:
        raise NotApplicable("scale_lr names no new rate and the config has no 'lr'")


def _set_optimizer(config: dict[str, Any], a: dict[str, Any]) -> None:
    config["optimizer"] = a["optimizer"]
    if a.get("lr") is not None:
        config["lr"] = float(a["lr"])


def _key_setter(key: str, field: str) -> Any:
    def apply(config: dict[str, Any], a: dict[str, Any]) -> None:
        if field not in a:
            raise NotApplicable(f"{a['action']} has no {field!r}")
        config[key] = a[field]

    return apply


def _scale_features(config: dict[str, Any], a: dict[str, Any]) -> None:
    """Chains for the columns named; a column scaled already gets the new chain after its
    old one (the doctor audited the data as scaled)."""
    old = config.get("scale_features")
    if not a.get("chains"):
        config["scale_features"] = True
        return
    if old is True:
        raise NotApplicable("the features are already scaled by an AutoScaler")
    chains = dict(old or {})
    for column, chain in a["chains"].items():
        chains[column] = f"{chains[column]} -> {chain}" if column in chains else chain
    config["scale_features"] = chains


#: Actions that change the training configuration, and how.
CONFIG_ACTIONS = {
    "scale_lr": _scale_lr,
    "set_optimizer": _set_optimizer,
    "set_batch_size": _key_setter("batch_size", "batch_size"),
    "clip_grad_norm": _key_setter("clip_grad_norm", "max_norm"),
    "scale_features": _scale_features,
    "scale_targets": _key_setter("target_scaler", "method"),
    "replace_loss": _key_setter("loss", "loss"),
    "weight_decay": _key_setter("weight_decay", "value"),
    "early_stopping": _key_setter("early_stopping", "patience"),
}


def apply_to_config(config: dict[str, Any], action: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``config`` with a configuration action applied."""
    fn = CONFIG_ACTIONS.get(action.get("action", ""))
    if fn is None:
        raise NotApplicable(f"{action.get('action')!r} is not a configuration action")
    new = copy.deepcopy(config)
    fn(new, action)
    return new


# ------------------------------------------------------------------ the model
def _modules(model: Module) -> dict[str, Module]:
    return dict(model.named_modules())


def _get(model: Module, path: str) -> Module:
    found = _modules(model).get(path)
    if found is None:
        known = [p for p in _modules(model) if p]
        raise NotApplicable(f"the model has no module {path!r} (it has {', '.join(known[:12])})")
    return found


def _replace(model: Module, path: str, new: Module) -> None:
    if not path:
        raise NotApplicable("cannot replace the model itself")
    parent_path, _, name = path.rpartition(".")
    setattr(_get(model, parent_path) if parent_path else model, name, new)


def _is(module: Any, name: str) -> bool:
    return any(c.__name__ == name for c in type(module).__mro__)


def make_activation(spec: str) -> Module:
    """``"ReLU"``, ``"LeakyReLU(0.01)"`` -> a gw.nn activation module (or :class:`Exp`)."""
    from .. import nn

    m = re.fullmatch(r"\s*([A-Za-z]+)\s*(?:\((.*)\))?\s*", spec)
    cls = (getattr(nn, m.group(1), None) or _OWN.get(m.group(1))) if m else None
    if not (isinstance(cls, type) and issubclass(cls, Module)):
        raise NotApplicable(f"{spec!r} is not a gw.nn activation")
    assert m is not None
    args = [float(v) for v in m.group(2).split(",") if v.strip()] if m.group(2) else []
    return cls(*args)  # type: ignore[no-any-return]


_RELU_FAMILY = ("ReLU", "LeakyReLU", "ELU", "GELU", "Softplus")


def init_for(activation: str) -> str:
    """He for the ReLU family, Xavier/Glorot otherwise (tanh, sigmoid, none)."""
    return "he" if activation.split("(")[0] in _RELU_FAMILY else "xavier"


def _reinit(linear: Module, init: str, seed: int) -> None:
    from ..nn.layers import _INITS

    if init not in _INITS:
        raise NotApplicable(f"unknown init {init!r}; expected one of {sorted(_INITS)}")
    _INITS[init](linear.weight, rng=np.random.default_rng([seed, 2718]))
    if getattr(linear, "bias", None) is not None:
        linear.bias.data[...] = 0.0


def _weight_ndim(m: Module) -> int:
    w = getattr(m, "_parameters", {}).get("weight")
    return 0 if w is None else int(w.data.ndim)


def _feeding_layer(model: Module, path: str) -> tuple[str, Module] | None:
    """The last layer with a matrix or kernel weight (Linear, Conv*) before ``path`` in
    forward (registration) order."""
    last = None
    for p, m in model.named_modules():
        if p == path:
            return last
        if _weight_ndim(m) >= 2:
            last = (p, m)
    return None


def _paths(a: dict[str, Any], key: str) -> list[str]:
    paths = a.get(key)
    if not paths:
        raise NotApplicable(f"{a['action']} names no modules ({key!r} is empty)")
    return [str(p) for p in ([paths] if isinstance(paths, str) else paths)]


def _replace_activation(model: Module, a: dict[str, Any]) -> None:
    new = str(a["to"])
    init = a["init"] if "init" in a else init_for(new)  # an older action: the init for `to`
    for i, path in enumerate(_paths(a, "modules")):
        _get(model, path)
        if init is not None:
            feeding = _feeding_layer(model, path)
            if feeding is not None:
                _reinit(feeding[1], str(init), seed=i)
        _replace(model, path, make_activation(new))


def _activation_after(model: Module, path: str) -> str:
    """The class name of the first activation after ``path`` in forward order ('' if none)."""
    from .profile import class_family

    seen = False
    for p, m in model.named_modules():
        if seen and class_family(m) is not None:
            return type(m).__name__
        seen = seen or p == path
    return ""


def _reinitialise(model: Module, a: dict[str, Any]) -> None:
    for i, path in enumerate(_paths(a, "modules")):
        m = _get(model, path)
        if a.get("init") == "default":  # a layer with its own init (an LSTM's)
            if not hasattr(m, "reset_parameters"):
                raise NotApplicable(f"module {path!r} ({type(m).__name__}) has no default init")
            m.reset_parameters(rng=np.random.default_rng([i, 2718]))
            continue
        if not hasattr(m, "weight"):
            raise NotApplicable(f"module {path!r} ({type(m).__name__}) has no weight")
        init = a.get("init") or init_for(_activation_after(model, path))  # None: for what it feeds
        _reinit(m, str(init), seed=i)


def _set_dropout(model: Module, a: dict[str, Any]) -> None:
    from ..nn.functional import check_rate

    for path in _paths(a, "modules"):
        m = _get(model, path)
        if not hasattr(m, "rate"):
            raise NotApplicable(f"module {path!r} ({type(m).__name__}) is not a Dropout")
        m.rate = check_rate(float(a["rate"]))


def _wrap_after(model: Module, a: dict[str, Any], key: str, make: Any) -> None:
    from ..nn import Sequential

    for path in _paths(a, key):
        m = _get(model, path)
        _replace(model, path, Sequential(m, make(m)))


def _add_batchnorm(model: Module, a: dict[str, Any]) -> None:
    from ..nn import BatchNorm1d, BatchNorm2d

    def make(m: Module) -> Module:
        # after a Linear or Conv1d, (N, C[, L]): BatchNorm1d; after a Conv2d: BatchNorm2d
        features = getattr(m, "out_channels", getattr(m, "out_features", None))
        spatial = _weight_ndim(m) - 2
        if features is None or spatial not in (0, 1, 2):
            raise NotApplicable(
                f"batch norm goes after a Linear, Conv1d or Conv2d; got {type(m).__name__}"
            )
        dtype = m.weight.data.dtype
        return (BatchNorm2d if spatial == 2 else BatchNorm1d)(int(features), dtype=dtype)

    _wrap_after(model, a, "after", make)


def _add_dropout(model: Module, a: dict[str, Any]) -> None:
    from ..nn import Dropout

    _wrap_after(model, a, "after", lambda m: Dropout(float(a.get("rate", 0.2)), rng=0))


def _insert_activation(model: Module, a: dict[str, Any]) -> None:
    spec = str(a.get("activation", "ReLU"))
    _wrap_after(model, a, "after", lambda m: make_activation(spec))


def _remove_module(model: Module, a: dict[str, Any]) -> None:
    from ..nn import Identity

    for path in _paths(a, "modules"):
        _get(model, path)
        _replace(model, path, Identity())


def _set_batchnorm_momentum(model: Module, a: dict[str, Any]) -> None:
    momentum = a.get("momentum")
    if momentum is not None and not 0.0 <= float(momentum) <= 1.0:
        raise NotApplicable(f"a batch-norm momentum is in [0, 1] or None; got {momentum!r}")
    for path in _paths(a, "modules"):
        m = _get(model, path)
        if not hasattr(m, "running_var"):
            raise NotApplicable(f"module {path!r} ({type(m).__name__}) is not a batch norm")
        m.momentum = None if momentum is None else float(momentum)


def _set_out_features(model: Module, a: dict[str, Any]) -> None:
    from ..nn import Linear

    path = str(a["module"])
    m = _get(model, path)
    if not _is(m, "Linear"):
        raise NotApplicable(f"module {path!r} is a {type(m).__name__}, not a Linear")
    _replace(
        model,
        path,
        Linear(
            m.in_features,
            int(a["out_features"]),
            bias=m.bias is not None,
            rng=0,
            dtype=m.weight.data.dtype,
        ),  # fmt: skip
    )


class Exp(Module):
    """``exp(x)``: a positive output (for a loss that takes its log)."""

    def forward(self, x: Tensor) -> Tensor:
        from ..autograd.ops import exp

        return exp(x)


class ClampMin(Module):
    """``max(x, floor)``: keeps a value that feeds log/sqrt/div above ``floor``."""

    def __init__(self, floor: float = 1e-6) -> None:
        super().__init__()
        self.floor = floor

    def forward(self, x: Tensor) -> Tensor:
        from ..autograd.ops import maximum

        return maximum(x, Tensor(np.asarray(self.floor, dtype=x.data.dtype)))


def _positive_output(model: Module, a: dict[str, Any]) -> None:
    from ..nn import Softplus

    how = a.get("how", "softplus")
    makers = {"softplus": Softplus, "exp": Exp, "clamp": ClampMin}
    if how not in makers:
        raise NotApplicable(f"positive_output: how must be one of {sorted(makers)}; got {how!r}")
    path = str(a.get("module") or "")
    if not path:  # the model's output
        raise NotApplicable("positive_output names no module")
    _wrap_after(model, {"action": "positive_output", "after": [path]}, "after",
                lambda m: makers[how]())  # fmt: skip


_OWN: dict[str, type[Module]] = {"Exp": Exp, "ClampMin": ClampMin}

#: Actions that edit a built model, and how.
MODEL_ACTIONS = {
    "replace_activation": _replace_activation,
    "reinitialise": _reinitialise,
    "set_dropout": _set_dropout,
    "add_batchnorm": _add_batchnorm,
    "add_dropout": _add_dropout,
    "insert_activation": _insert_activation,
    "remove_module": _remove_module,
    "set_out_features": _set_out_features,
    "positive_output": _positive_output,
    "set_batchnorm_momentum": _set_batchnorm_momentum,
}

#: Why the actions that are advice for a person are not applied by a machine.
ADVICE_ONLY = {
    "lr_find": "it is advice to run gw.lr_find; repair sizes the rate from the findings",
    "fewer_layers": "which layers to drop is the user's design decision",
    "clean_inputs": "the data must be cleaned where it is loaded",
    "eval_mode": "it concerns code outside training (model.eval() before predicting)",
    "terminate_on_nan": "stopping at NaN does not repair the run",
    "fix_log": "an epsilon inside the log is advice for the loss's code",
    "fix_div": "guarding a division is advice for the loss's code",
    "fix_exp": "bounding an exp's input is advice for the code that calls it",
    "fix_sqrt": "guarding a sqrt is advice for the loss's code",
    "recompute_batchnorm": "it is a step after training, outside the run that repair trains",
}


def is_model_edit(action: dict[str, Any]) -> bool:
    return action.get("action") in MODEL_ACTIONS


def why_not(action: dict[str, Any]) -> str | None:
    """None when repair can apply ``action``; else the reason it cannot."""
    kind = action.get("action")
    if kind in CONFIG_ACTIONS or kind in MODEL_ACTIONS:
        return None
    return ADVICE_ONLY.get(str(kind), f"repair does not know the action {kind!r}")


def apply_edits(model: Module, optimizer: Any, edits: Sequence[dict[str, Any]]) -> tuple[Any, Any]:
    """Apply model edits in order to a freshly built ``model``; returns (model, optimizer).

    When an edit adds or replaces parameters (BatchNorm, a new Linear), the optimizer
    is rebuilt over the model's parameters with its first group's hyperparameters.

    >>> import gradwell as gw
    >>> model = gw.nn.Sequential(gw.nn.Linear(2, 4), gw.nn.Sigmoid(), gw.nn.Linear(4, 1))
    >>> opt = gw.optim.SGD(model.parameters(), lr=0.1)
    >>> model, opt = apply_edits(model, opt, [{"action": "replace_activation",
    ...     "modules": ["1"], "from": "Sigmoid", "to": "ReLU", "init": "he"}])
    >>> type(model[1]).__name__
    'ReLU'
    """
    for action in edits:
        fn = MODEL_ACTIONS.get(action.get("action", ""))
        if fn is None:
            raise NotApplicable(f"{action.get('action')!r} is not a model edit")
        fn(model, action)
    before = {id(p) for g in optimizer.param_groups for p in g["params"]}
    if {id(p) for p in model.parameters()} != before:
        first = optimizer.param_groups[0]
        group = {k: first[k] for k in optimizer.defaults if k in first}
        optimizer = type(optimizer)(model.parameters(), **group)
    return model, optimizer
