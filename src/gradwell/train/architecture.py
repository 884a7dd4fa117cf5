"""A model's architecture as plain JSON, and the model rebuilt from it.

Built-in modules are described by their type, their constructor arguments and
their children; a user's module by the name it was registered under
(:func:`register_module`) and the arguments its ``get_config()`` returns. Building
from a description only calls those constructors: nothing from the file runs.

>>> from gradwell import nn
>>> from gradwell.train.architecture import build, describe
>>> spec = describe(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Dropout(0.1)))
>>> spec["children"][0]
{'type': 'Linear', 'args': {'in_features': 3, 'out_features': 4, 'bias': True, 'dtype': 'float32'}}
>>> build(spec)
Sequential(
  (0): Linear(in_features=3, out_features=4, bias=True)
  (1): ReLU()
  (2): Dropout(rate=0.1)
)
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from .. import nn

#: User modules that checkpoints may name: registered name -> class.
_REGISTERED: dict[str, type] = {}
#: Constructor arguments that are not architecture: weights come from the checkpoint.
_NOT_ARCHITECTURE = ("self", "rng", "init", "dtype", "modules", "args", "kwargs")
_CONTAINERS = ("Sequential", "ModuleList")


class ArchitectureError(ValueError):
    """A described architecture that cannot be built, or does not match a model."""


def register_module(cls: type | None = None, *, name: str | None = None) -> Any:
    """Let checkpoints describe (and ``gw.load`` rebuild) a user module class.

    The class must have ``get_config()`` returning its constructor arguments as
    JSON-like values; ``cls(**config)`` rebuilds it. Usable as ``@register_module``
    or ``@register_module(name="MyNet")``.
    """

    def add(c: type) -> type:
        if not callable(getattr(c, "get_config", None)):
            raise TypeError(
                f"register_module: {c.__name__} needs a get_config() method returning its "
                "constructor arguments"
            )
        _REGISTERED[name or c.__name__] = c
        return c

    return add if cls is None else add(cls)


def _builtin(module: Any) -> bool:
    cls = type(module)
    return getattr(nn, cls.__name__, None) is cls


def _registered_name(module: Any) -> str | None:
    return next((n for n, c in _REGISTERED.items() if c is type(module)), None)


def describe(module: Any) -> dict[str, Any]:
    """The JSON description of ``module`` (see the module docstring)."""
    name = type(module).__name__
    if _builtin(module):
        if name in _CONTAINERS:
            return {"type": name, "children": [describe(child) for child in module]}
        args: dict[str, Any] = {}
        for param in inspect.signature(type(module).__init__).parameters:
            if param in _NOT_ARCHITECTURE:
                continue
            value = getattr(module, param)
            if param == "bias" and not isinstance(value, bool):  # a Parameter or None
                value = value is not None
            args[param] = value.item() if isinstance(value, np.generic) else value
        first = next(iter(module.parameters()), None)
        if first is not None and "dtype" in inspect.signature(type(module).__init__).parameters:
            args["dtype"] = str(first.data.dtype)
        return {"type": name, "args": args}
    registered = _registered_name(module)
    if registered is not None:
        return {"type": registered, "registered": True, "args": dict(module.get_config())}
    return {"type": name, "registered": False}


def build(spec: Any, where: str = "model") -> Any:
    """A fresh module from a description written by :func:`describe`."""
    if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
        raise ArchitectureError(f"{where}: expected a module description, got {spec!r:.80}")
    name = spec["type"]
    children = spec.get("children")
    if name in _CONTAINERS:
        if not isinstance(children, list):
            raise ArchitectureError(f"{where}: a {name} needs a list of children")
        built = [build(c, f"{where}[{i}]") for i, c in enumerate(children)]
        return nn.Sequential(*built) if name == "Sequential" else nn.ModuleList(built)
    args = spec.get("args", {})
    if not isinstance(args, dict):
        raise ArchitectureError(f"{where}: the arguments of {name} must be a dict")
    if spec.get("registered") is False:
        raise ArchitectureError(
            f"{where} is a user module {name!r} that was not registered when saved; build the "
            f"model yourself and pass it (gw.load(path, model)), or decorate {name} with "
            "gw.register_module and give it get_config()"
        )
    if spec.get("registered"):
        cls = _REGISTERED.get(name)
        if cls is None:
            raise ArchitectureError(
                f"{where} is the user module {name!r}; register its class with "
                f"gw.register_module before loading (registered: {sorted(_REGISTERED)})"
            )
    else:
        cls = getattr(nn, name, None)
        if not (inspect.isclass(cls) and issubclass(cls, nn.Module)):
            raise ArchitectureError(f"{where}: {name!r} is not a gradwell.nn module")
    try:
        return cls(**args)
    except (TypeError, ValueError) as e:
        raise ArchitectureError(f"{where}: cannot build {name}({args}): {e}") from None


def first_difference(saved: Any, actual: Any, where: str = "model") -> str | None:
    """Where two descriptions first differ, in words; None when they are the same.

    A module that is neither built in nor registered is not described, so it is not
    compared (a SyncBatchNorm swapped in for a BatchNorm1d loads as before)."""
    if saved.get("registered") is False or actual.get("registered") is False:
        return None
    if saved.get("type") != actual.get("type"):
        return f"{where} is a {saved.get('type')} in the checkpoint but a {actual.get('type')} here"
    if saved.get("args", {}) != actual.get("args", {}):
        a, b = saved.get("args", {}), actual.get("args", {})
        key = next(k for k in sorted({*a, *b}) if a.get(k) != b.get(k))
        return (
            f"{where} ({saved['type']}) has {key}={a.get(key)!r} in the checkpoint but "
            f"{key}={b.get(key)!r} here"
        )
    s_children, a_children = saved.get("children") or [], actual.get("children") or []
    for i, (s, a) in enumerate(zip(s_children, a_children, strict=False)):
        found = first_difference(s, a, f"{where}[{i}]")
        if found:
            return found
    if len(s_children) != len(a_children):
        return (
            f"{where} ({saved['type']}) has {len(s_children)} children in the checkpoint but "
            f"{len(a_children)} here"
        )
    return None
