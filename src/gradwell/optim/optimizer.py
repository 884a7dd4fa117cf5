"""Optimizer: parameter groups, per-parameter state, zero_grad and state_dict."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from ..autograd.engine import enable_grad
from ..autograd.recording import stamp_write
from ..autograd.tensor import Tensor

Array = np.ndarray


class Optimizer:
    """Base class of the optimizers: parameter groups and per-parameter state.

    ``params`` is an iterable of Tensors, or of dicts (parameter groups) such as
    ``{"params": [w], "lr": 0.1}``; a group takes each hyperparameter it does
    not set from ``defaults``. ``param_groups`` is the list of groups (schedulers
    and the doctor read and write ``group["lr"]``), ``state`` maps each parameter
    to its state (moment estimates, step count), created on its first update.

    A subclass validates a group's hyperparameters in ``_check_group`` and
    implements ``step``; parameters whose ``grad`` is None are skipped. Updates
    work on the raw arrays in place, so nothing is recorded on the graph.

    >>> import gradwell as gw
    >>> w = gw.tensor([1.0, 2.0], requires_grad=True)
    >>> b = gw.tensor([0.0], requires_grad=True)
    >>> opt = gw.optim.SGD([{"params": [w]}, {"params": [b], "lr": 0.01}], lr=0.1)
    >>> [g["lr"] for g in opt.param_groups]
    [0.1, 0.01]
    """

    _scalar_state: tuple[str, ...] = ("step",)  # state entries that are numbers, not arrays

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]) -> None:
        self.defaults = dict(defaults)
        self.state: dict[Tensor, dict[str, Any]] = {}
        self.param_groups: list[dict[str, Any]] = []
        self._state_checked: dict[Tensor, Array] = {}  # parameter -> the array its state fits
        if isinstance(params, (Tensor, dict)):
            raise TypeError(
                f"{type(self).__name__}: params must be an iterable of Tensors or of "
                f"parameter-group dicts; got a single {type(params).__name__} (wrap it in a list)"
            )
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    # --- groups --------------------------------------------------------------
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters with its own hyperparameters (fine-tuning, unfreezing).

        Hyperparameters the group does not set come from the optimizer's defaults.
        """
        name = type(self).__name__
        where = f"{name} param group {len(self.param_groups)}"
        if not isinstance(param_group, dict):
            raise TypeError(f"{where}: expected a dict with a 'params' entry; got {param_group!r}")
        if "params" not in param_group:
            raise ValueError(f"{where}: the dict has no 'params' entry")
        params = param_group["params"]
        if isinstance(params, (set, frozenset)):
            raise TypeError(
                f"{where}: parameters must be in an ordered collection (list, tuple); got a set, "
                "whose order changes from run to run"
            )
        params = [params] if isinstance(params, Tensor) else list(params)
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f"{where}: parameter {i} must be a Tensor; got {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError(
                    f"{where}: parameter {i} (shape {p.shape}) is the result of op '{p.op}', "
                    "not a leaf; optimize the leaf tensors it was computed from"
                )
            if p.data.dtype.kind != "f":
                raise TypeError(
                    f"{where}: parameter {i} must be floating point; got dtype {p.data.dtype}"
                )
        if len({id(p) for p in params}) != len(params):
            raise ValueError(f"{where}: a parameter appears more than once in the group")
        taken = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in taken for p in params):
            raise ValueError(f"{where}: a parameter is already in another parameter group")
        group = {**self.defaults, **{k: v for k, v in param_group.items() if k != "params"}}
        self._check_group(group, where)
        group["params"] = params
        self.param_groups.append(group)

    def _check_group(self, group: dict[str, Any], where: str) -> None:
        """Validate (and normalise) a group's hyperparameters; raise naming ``where``."""
        check_lr(group, where)

    # --- the update ----------------------------------------------------------
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient; returns ``closure()`` if given."""
        raise NotImplementedError

    def _evaluate(self, closure: Callable[[], Any] | None) -> Any:
        if closure is None:
            return None
        with enable_grad():
            return closure()

    def _with_grad(self, group: dict[str, Any]) -> Iterator[tuple[Tensor, Array, Array]]:
        """(parameter, its array, its gradient array) for each parameter that has a gradient."""
        version = stamp_write()  # each is written in place: graphs that read it are stale
        checked = self._state_checked
        for i, p in enumerate(group["params"]):
            grad = p.grad
            if grad is None:
                continue
            if not isinstance(grad, Tensor):
                raise TypeError(
                    f"{type(self).__name__}: parameter {i} of its group has a gradient that is "
                    f"not a Tensor ({type(grad).__name__}); assign p.grad = gw.tensor(...)"
                )
            data = p.data
            g = grad.data
            if g.shape != data.shape:
                raise ValueError(
                    f"{type(self).__name__}: parameter {i} of its group has shape {data.shape} "
                    f"but its gradient has shape {g.shape}; they must match"
                )
            if checked.get(p) is not data:  # new data: checked once, not every step
                self._check_state(p, i, data)
                checked[p] = data
            p._version = version
            yield p, data, g

    def _begin_step(
        self, p: Tensor, data: Array, *arrays: str, **scalars: float
    ) -> tuple[dict[str, Any], int]:
        """``p``'s state with its ``step`` advanced, and that step (from 1). Made at the first
        update: ``step`` 0, then ``scalars``, then a zero array like ``data`` for each name
        in ``arrays`` (the rule's moments, named as PyTorch names them)."""
        state = self.state.get(p)
        if state is None:
            state = self.state[p] = {"step": 0, **scalars}
            state.update((name, new_state_array(data)) for name in arrays)
        t = state["step"] = state["step"] + 1
        return state, t

    def _check_state(self, p: Tensor, i: int, data: Array) -> None:
        """Raise if ``p``'s state arrays no longer fit its data (it was given data of
        another shape after a step): the fused kernels index both without bounds checks."""
        for key, value in self.state.get(p, {}).items():
            if isinstance(value, np.ndarray) and value.shape != data.shape:
                name = f" {p.name!r}" if p.name else ""
                raise ValueError(
                    f"{type(self).__name__}: parameter {i}{name} of its group now has shape "
                    f"{data.shape}, but its state {key!r} has shape {value.shape} (its shape at "
                    "an earlier step): new data of another shape needs a fresh state; "
                    "delete optimizer.state[param] or build a new optimizer"
                )

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients: set them to None (default), or fill them with zeros in place."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.data.fill(0)

    # --- saving and resuming -------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The optimizer's state in PyTorch's layout, with arrays copied.

        ``{"state": {index: {name: array or number}}, "param_groups": [{hyperparameters...,
        "params": [indices]}]}``; parameters are numbered in group order.
        """
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = [index.setdefault(id(p), len(index)) for p in group["params"]]
            groups.append(packed)
        state = {}
        for group in self.param_groups:
            for p in group["params"]:
                s = self.state.get(p)
                if s:
                    state[index[id(p)]] = {
                        k: v.copy() if isinstance(v, np.ndarray) else v for k, v in s.items()
                    }
        return {"state": dict(sorted(state.items())), "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Resume from :meth:`state_dict`: hyperparameters, step counts and moment estimates.

        The groups must match this optimizer's in number and size, their
        hyperparameters be this optimizer's (not another kind's), and each state
        array have the shape of its parameter; on a mismatch nothing is changed.
        """
        self._prepare_load(state_dict)()

    def _prepare_load(self, state_dict: Any) -> Callable[[], None]:
        """Check ``state_dict`` whole; return the function that loads it (which cannot fail)."""
        name = type(self).__name__
        where = f"{name}.load_state_dict"
        if (
            not isinstance(state_dict, dict)
            or not {"state", "param_groups"} <= state_dict.keys()
            or not isinstance(state_dict["state"], dict)
            or not isinstance(state_dict["param_groups"], (list, tuple))
        ):
            raise ValueError(
                f"{where}: expected a dict with 'state' and 'param_groups' (a dict and a list), "
                "as made by state_dict()"
            )
        saved_groups = list(state_dict["param_groups"])
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"{where}: the state dict has {len(saved_groups)} parameter "
                f"group(s) but this optimizer has {len(self.param_groups)}"
            )
        by_index: dict[int, Tensor] = {}
        new_groups = []
        for gi, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            saved_params = saved.get("params") if isinstance(saved, dict) else None
            if not isinstance(saved_params, (list, tuple)) or not all(
                isinstance(i, int) and not isinstance(i, bool) for i in saved_params
            ):
                raise ValueError(
                    f"{where}: parameter group {gi} must be a dict with 'params', a list of "
                    f"parameter indices; got {saved!r:.200}"
                )
            if len(saved_params) != len(group["params"]):
                raise ValueError(
                    f"{where}: parameter group {gi} has {len(saved_params)} "
                    f"parameter(s) in the state dict but {len(group['params'])} in this optimizer"
                )
            foreign = sorted(
                str(k) for k in saved if k not in group and k not in ("params", "initial_lr")
            )
            if foreign:
                raise ValueError(
                    f"{where}: parameter group {gi} has hyperparameters {foreign}, which {name} "
                    "does not have: the state dict comes from another kind of optimizer"
                )
            merged = {k: v for k, v in group.items() if k != "params"}
            for k, v in saved.items():
                if k == "params":
                    continue
                # JSON turns tuples such as betas into lists; keep the optimizer's types.
                merged[k] = tuple(v) if isinstance(group.get(k), tuple) else v
            self._check_group(merged, f"{where}: parameter group {gi}")
            merged["params"] = group["params"]
            new_groups.append(merged)
            by_index.update(zip(saved_params, group["params"]))
        new_state: dict[Tensor, dict[str, Any]] = {}
        for key, entries in state_dict["state"].items():
            p = by_index.get(int(key)) if isinstance(key, int) or str(key).isdigit() else None
            if p is None or not isinstance(entries, dict):
                raise ValueError(
                    f"{where}: state for parameter {key!r}, which no parameter group lists "
                    f"(indices are {sorted(by_index)}), or not a dict of state entries"
                )
            restored = {k: self._state_entry(p, key, k, v, where) for k, v in entries.items()}
            new_state[p] = {k: v for k, v in restored.items() if v is not None}

        def write() -> None:
            for group, merged in zip(self.param_groups, new_groups):
                group.clear()
                group.update(merged)
            self.state = new_state

        return write

    def _state_entry(self, p: Tensor, index: int, key: str, value: Any, where: str) -> Any:
        """One saved state entry, checked and converted for parameter ``p`` (None: skip it)."""
        if value is None:  # PyTorch's SGD saves momentum_buffer=None without momentum
            return None
        if isinstance(value, Tensor):
            value = value.data
        try:
            arr = np.asarray(value)
        except ValueError:  # ragged nested lists
            arr = np.empty(0, object)
        if arr.dtype.kind not in "biuf":
            raise ValueError(
                f"{where}: state {key!r} of parameter {index} must hold numbers; got {value!r:.80}"
            )
        if key in self._scalar_state:  # may come back as a 0-d array from a checkpoint
            if arr.size != 1:
                raise ValueError(
                    f"{where}: state {key!r} of parameter {index} must be one number; "
                    f"got shape {arr.shape}"
                )
            return int(arr.item()) if key == "step" else float(arr.item())
        if arr.shape != p.data.shape:
            raise ValueError(
                f"{where}: state {key!r} of parameter {index} has shape "
                f"{arr.shape} but the parameter has shape {p.data.shape}"
            )
        return np.array(arr, dtype=p.data.dtype, order="C")

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k in sorted(group):
                if k != "params":
                    lines.append(f"    {k}: {group[k]}")
        lines.append(")")
        return "\n".join(lines)


def flat_view(data: Array) -> Array | None:
    """A 1-D view of ``data`` that a fused kernel may write, or None if there is none."""
    flags = data.flags
    if flags.c_contiguous and flags.writeable:
        return data.ravel()
    return None


def update(kernel: Callable[..., None], data: Array, *args: Any) -> None:
    """``kernel(flat data, *args)``; a parameter with no flat view (not C-contiguous) is
    updated through a contiguous copy, written back."""
    flat = flat_view(data)
    if flat is not None:
        kernel(flat, *args)
        return
    flat = np.ascontiguousarray(data).ravel()
    kernel(flat, *args)
    data[...] = flat.reshape(data.shape)


def new_state_array(data: Array, fill: float = 0.0) -> Array:
    """A state array for parameter ``data``: its shape and dtype, C order (kernels need it)."""
    return np.full(data.shape, fill, dtype=data.dtype)


# --- hyperparameter checks: every message names the optimizer/group, the name and the value ---
def _number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_range(
    group: dict[str, Any],
    key: str,
    where: str,
    low: float = 0.0,
    high: float = math.inf,
    high_open: bool = False,
    low_open: bool = False,
) -> float:
    value = group[key]
    ok = _number(value) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (
            value < high if high_open else value <= high
        )
    if not ok:
        lo = f"({low}" if low_open else f"[{low}"
        hi = f"{high})" if high_open or high == math.inf else f"{high}]"
        raise ValueError(f"{where}: {key} must be a finite number in {lo}, {hi}; got {value!r}")
    group[key] = float(value)
    return float(value)


def check_lr(group: dict[str, Any], where: str) -> float:
    if group.get("lr") is None:
        raise ValueError(f"{where}: no learning rate; pass lr=... (e.g. lr=0.01)")
    return check_range(group, "lr", where)


def check_bool(group: dict[str, Any], key: str, where: str) -> bool:
    value = group[key]
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{where}: {key} must be True or False; got {value!r}")
    group[key] = bool(value)
    return bool(value)


def check_adam_group(group: dict[str, Any], where: str) -> None:
    """The hyperparameters every Adam variant has: lr, betas, eps and weight_decay."""
    check_lr(group, where)
    check_betas(group, where)
    check_range(group, "eps", where)
    check_range(group, "weight_decay", where)


def adam_hyperparameters(
    group: dict[str, Any], decoupled: bool
) -> tuple[float, float, float, float, float, float]:
    """(lr, beta1, beta2, eps, decay, l2) of an Adam variant's group, as Python floats:
    with ``decoupled`` weight decay the weights shrink by ``decay`` = 1 - lr * weight_decay
    and ``l2`` is 0; without, ``decay`` is 1 and ``l2`` = weight_decay joins the gradient."""
    lr, (beta1, beta2) = float(group["lr"]), group["betas"]
    wd = float(group["weight_decay"])
    decay, l2 = (1.0 - lr * wd, 0.0) if decoupled else (1.0, wd)
    return lr, float(beta1), float(beta2), float(group["eps"]), decay, l2


def check_betas(group: dict[str, Any], where: str) -> None:
    betas = group["betas"]
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"{where}: betas must be a pair (beta1, beta2); got {betas!r}")
    checked = []
    for i, b in enumerate(betas):
        if not (_number(b) and 0.0 <= b < 1.0):
            raise ValueError(f"{where}: betas[{i}] must be a number in [0, 1); got {b!r}")
        checked.append(float(b))
    group["betas"] = (checked[0], checked[1])
