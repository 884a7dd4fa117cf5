"""The NaN trap for Keras: replay one batch to name the layer and the op that first made
inf or NaN.

The replay runs the batch through ``model.stateless_call`` on the variables' current
values (the moving statistics and seeds copied, so nothing of the model changes), under
a forked torch random state and the torch NaN trap's function mode
(:class:`gradwell.torch.replay._Trap`), which sees every op Keras runs on torch and stops
at the first one that makes a non-finite value from finite inputs. A forward pre-hook and
hook on each layer keep the stack of layers being called, so the op is placed in its
layer; an op outside every layer is in the loss. The user's line is the innermost frame
outside torch, Keras and gradwell. The backward is not replayed: a non-finite gradient
from a finite forward and loss is reported as such.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import keras
import torch

from ..doctor.replay import weights_already_nonfinite
from ..torch.replay import _all_finite, _finite, _Trap, treat_as_library
from .profile import leaf_layers

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


def replay_nonfinite(
    model: Any, inputs: Any, targets: Any, loss_fn: Any
) -> tuple[dict[str, Any] | None, str]:
    """Replay one batch to find what first made inf or NaN: (the anomaly as a dict, or None;
    a note that says what the replay did). Training is not changed."""
    if inputs is None:
        return None, "The batch was not available to replay."
    layers = leaf_layers(model)
    named = [(f"{path}/{v.name}", v.value) for path, layer in layers for v in layer.weights]
    if not _all_finite([p for _, p in named]):
        return None, weights_already_nonfinite([n for n, p in named if not _finite(p.detach())])
    stack: list[str] = []

    def leave(module: Any, args: Any, output: Any) -> None:  # (a hook's result would replace
        stack.pop()  # the layer's output)

    handles = []
    for path, layer in layers:
        handles.append(layer.register_forward_pre_hook(lambda m, a, path=path: stack.append(path)))
        handles.append(layer.register_forward_hook(leave))
    trap = _Trap(stack)
    trainable, non_trainable = values_of(model)
    try:
        with forked_random_state(model), torch.no_grad(), trap:
            pred, _ = model.stateless_call(trainable, non_trainable, inputs, training=True)
            if trap.found is None and loss_fn is not None and targets is not None:
                loss_fn(pred, targets)
    except Exception as e:  # the replay is best effort: report, never break training
        return None, f"Replaying the batch failed: {e!r}."
    finally:
        for h in handles:
            h.remove()
    if trap.found is not None:
        return trap.found, "Located by replaying the batch (every op watched, layer by layer)."
    return None, (
        "Replaying the forward pass and the loss produced no non-finite value: it arose in "
        "the backward pass (which the Keras replay does not watch op by op), or depended on "
        "randomness the replay did not repeat, such as dropout masks."
    )
