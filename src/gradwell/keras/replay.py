"""The NaN trap for Keras: replay one batch to name the layer, the op and the line that
first made inf or NaN, in the forward or in the backward.

The replay runs the batch through ``model.stateless_call`` on copies of the variables'
values (the moving statistics and seeds copied, so nothing of the model changes), under
a forked torch random state and the torch NaN trap's function mode
(:class:`gradwell.torch.replay._Trap`), which sees every op Keras runs on torch and
records which op, layer and line made each graph node. A forward pre-hook and hook on
each layer keep the stack of layers being called, so an op is placed in its layer (an
activation inside a layer, ``Dense(16, activation="relu")``, in ``dense/activation``, as
the probes place it); an op outside every layer is in the loss. The first layer whose
output is not finite from finite inputs runs once more with its ops checked, which
stops at the first op making a non-finite value from finite inputs. When the forward and
the loss are finite, their backward runs with a hook on each recorded node
(:func:`gradwell.torch.replay._watched_grad`, the torch replay's own): the first node
whose gradient comes out non-finite from finite ones names the op, its layer and the
user's line (a sqrt masked by ``where``). The user's line is the innermost frame outside
torch, Keras and gradwell.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import keras
import torch

from ..doctor.replay import weights_already_nonfinite
from ..torch.replay import (
    _anomaly,
    _finite,
    _finite_each,
    _tensors,
    _Trap,
    _watched_grad,
    treat_as_library,
)
from .profile import INSIDE, has_kernel, layer_activation, leaf_layers
from .seams import Swapped

treat_as_library(os.path.dirname(keras.__file__))


def values_of(model: Any, requires_grad: bool = False) -> tuple[list[Any], list[Any]]:
    """Copies of the model's trainable and non-trainable variables' values, for
    ``stateless_call`` (the trainable ones as leaves that take gradients, if asked)."""
    trainable = [v.value.detach().clone().requires_grad_(requires_grad)
                 for v in model.trainable_variables]  # fmt: skip
    return trainable, [v.value.detach().clone() for v in model.non_trainable_variables]


@contextmanager
def forked_random_state(model: Any) -> Iterator[None]:
    """torch's random streams (the CPU's and those of the model's CUDA devices), put back
    after the block."""
    devices = sorted({v.value.device.index or 0 for v in model.variables
                      if v.value.device.type == "cuda"})  # fmt: skip
    with torch.random.fork_rng(devices=devices):
        yield


class _Calls:
    """Hooks on each layer that keep the stack of layers being called (innermost last, for
    the trap to place each op in its layer) and record each call's tensors; the trap checks
    the ops of the layer ``checking`` only (``EVERYWHERE``: all of them)."""

    EVERYWHERE = "*"

    def __init__(self, layers: list[tuple[str, Any]], trap: _Trap, checking: str | None) -> None:
        self.trap, self.checking = trap, checking
        self.calls: list[tuple[str, list[torch.Tensor], list[torch.Tensor]]] = []
        trap.check = checking == self.EVERYWHERE
        self.handles: list[Any] = []
        for path, layer in layers:
            self.handles.append(layer.register_forward_pre_hook(partial(self.enter, path)))
            self.handles.append(
                layer.register_forward_hook(partial(self.leave, path), always_call=True)
            )
            if has_kernel(layer) and layer_activation(layer) is not None:  # its own place
                inside = partial(self.activation, path + INSIDE, layer.activation)
                self.handles.append(Swapped(layer, "activation", inside))

    def activation(self, path: str, activation: Any, x: Any, *args: Any, **kwargs: Any) -> Any:
        """A layer's own activation (``Dense(..., activation="exponential")``), called as a
        layer of its own: ``dense/activation``."""
        self.enter(path, None, None)
        y = None
        try:
            y = activation(x, *args, **kwargs)
        finally:
            self.leave(path, None, (x,), y)
        return y

    def enter(self, path: str, layer: Any, args: Any) -> None:
        self.trap.module_stack.append(path)
        self.trap.check = self.checking in (path, self.EVERYWHERE)

    def leave(self, path: str, layer: Any, args: Any, output: Any) -> None:  # (returns None:
        stack = self.trap.module_stack  # a hook's result would replace the layer's output)
        stack.pop()
        self.trap.check = self.checking in ((stack[-1] if stack else None), self.EVERYWHERE)
        self.calls.append((path, _tensors(list(args)), _tensors([output])))

    def remove(self) -> None:
        for h in self.handles:
            h.remove()

    def first_nonfinite(self) -> tuple[str, list[torch.Tensor], list[torch.Tensor]] | None:
        """The call (layer, inputs, outputs) of the first layer, in the order they returned,
        whose output is not finite while its inputs are, from one check of their tensors."""
        tensors = {id(t): t for _, ins, outs in self.calls for t in (*ins, *outs)}
        ok = dict(zip(tensors, _finite_each(list(tensors.values()))))
        for call in self.calls:
            if not all(ok[id(o)] for o in call[2]) and all(ok[id(t)] for t in call[1]):
                return call
        return None


def _what(layers: dict[str, Any], path: str) -> str:
    """What runs at ``path``: the layer's class, or the name of a layer's own activation."""
    if path in layers:
        return type(layers[path]).__name__
    activation = layers[path.removesuffix(INSIDE)].activation
    return str(getattr(activation, "__name__", type(activation).__name__))


def replay_nonfinite(
    model: Any, inputs: Any, targets: Any, loss_fn: Any
) -> tuple[dict[str, Any] | None, str]:
    """Replay one batch to find what first made inf or NaN: (the anomaly as a dict, or None;
    a note that says what the replay did). Training is not changed.

    The forward and the loss run once with every op recorded and each layer's call kept;
    then one check of the layers' tensors finds the first layer whose output is not finite
    from finite inputs, and the forward runs once more with that layer's ops checked (a
    value masked later, as ``where(h > 0, sqrt(h), 0)`` masks, is no culprit); a
    non-finite loss runs once more checked; a finite one's backward is watched node by
    node."""
    if inputs is None:
        return None, "The batch was not available to replay."
    layers = leaf_layers(model)
    named = [(f"{path}/{v.name}", v.value) for path, layer in layers for v in layer.weights]
    finite = _finite_each([p for _, p in named])
    if not all(finite):
        return None, weights_already_nonfinite([n for (n, _), ok in zip(named, finite) if not ok])
    trainable, non_trainable = values_of(model, requires_grad=True)

    def forward(checking: str | None) -> tuple[_Trap, _Calls, Any]:
        trap = _Trap([], check=False)
        calls = _Calls(layers, trap, checking)
        try:
            with forked_random_state(model), torch.enable_grad(), trap:
                pred, _ = model.stateless_call(trainable, non_trainable, inputs, training=True)
        finally:
            calls.remove()
        return trap, calls, pred

    try:
        trap, calls, pred = forward(None)
        found, culprit = None, calls.first_nonfinite()
        if culprit is not None:  # its op, or (a rerun drawing other random numbers) the layer
            found = forward(culprit[0])[0].found or _anomaly(
                "forward", _what(dict(layers), culprit[0]), *culprit, "?"
            )
        elif not all(map(_finite, _tensors([pred]))):  # (made outside every layer)
            found = forward(_Calls.EVERYWHERE)[0].found
        elif loss_fn is not None and targets is not None:
            with torch.enable_grad(), trap:
                loss = loss_fn(pred, targets)
            if isinstance(loss, torch.Tensor) and not all(_finite_each([loss])):
                checked = _Trap([])  # the loss once more, its ops checked
                with torch.enable_grad(), checked:
                    loss_fn(pred, targets)
                found = checked.found
            elif isinstance(loss, torch.Tensor) and loss.requires_grad:
                found = _watched_grad(trap.made_by, [loss], trainable, None)
    except Exception as e:  # the replay is best effort: report, never break training
        return None, f"Replaying the batch failed: {e!r}."
    if found is not None:
        how = "hooks on the graph nodes" if found["phase"] == "backward" else "every op watched"
        return found, f"Located by replaying the batch ({how}, layer by layer)."
    return None, (
        "Replaying the batch produced no non-finite value (the original depended on "
        "randomness the replay did not repeat, such as dropout masks)."
        if loss_fn is not None
        else "Replaying the forward pass produced no non-finite value (no loss to replay)."
    )
