"""A small MLP computed one number at a time, so its graph shows every neuron."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..autograd import ops
from ..autograd.creation import tensor
from ..autograd.tensor import Tensor

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor] | None] = {
    "tanh": ops.tanh,
    "relu": ops.relu,
    "sigmoid": ops.sigmoid,
    "identity": None,
}
MAX_WEIGHTS = 200  # beyond this a neuron-by-neuron drawing is unreadable


def scalar_mlp(
    layers: Any,
    x: Any,
    y: Any,
    activation: str | Sequence[str] = "tanh",
    output_activation: str = "identity",
    dtype: Any = None,
) -> Tensor:
    """The squared-error loss of an MLP on one example, built from one Tensor per number.

    ``layers`` is a list of ``(W, b)`` with ``W`` of shape (out, in) and ``b`` of
    shape (out,), as in ``nn.Linear``; ``activation`` (one name, or one per hidden
    layer: tanh, relu, sigmoid, identity) follows every layer but the last, and
    ``output_activation`` the last. ``layers`` may also be a ``gw.nn.Sequential`` of
    Linear layers and activations, which gives all three. The loss is
    ``mean((out - y) ** 2)``. Every weight, product, sum and activation is its own
    node, named like ``W1[0,1]``, ``z1[0]``, ``h1[0]``, ``out[0]``, ``loss``, so
    ``gw.viz.explain`` can show backpropagation neuron by neuron.

    >>> import gradwell as gw
    >>> loss = gw.viz.scalar_mlp([([[0.5, -1.0]], [0.0])], x=[1.0, 1.0], y=[0.0])
    >>> round(loss.item(), 4)   # (0.5 - 1.0 - 0) ** 2
    0.25
    """
    if hasattr(layers, "children"):
        layers, activation, output_activation = _from_model(layers)
    if not layers:
        raise ValueError("scalar_mlp() needs at least one (W, b) layer")
    weights = [np.asarray(_data(w)) for w, _ in layers]
    biases = [np.asarray(_data(b)) for _, b in layers]
    n_weights = sum(w.size + b.size for w, b in zip(weights, biases))
    if n_weights > MAX_WEIGHTS:
        raise ValueError(
            f"scalar_mlp() draws every weight as a node, for small networks of at most "
            f"{MAX_WEIGHTS} weights; got {n_weights}. Use the tensor view (gw.viz.graph) instead"
        )
    hidden = len(layers) - 1
    acts = [activation] * hidden if isinstance(activation, str) else list(activation)
    if len(acts) != hidden:
        raise ValueError(
            f"activation: expected one name or {hidden} (one per hidden layer); got {len(acts)}"
        )
    acts.append(output_activation)
    for a in acts:
        if a not in ACTIVATIONS:
            raise ValueError(f"unknown activation {a!r}; expected one of {sorted(ACTIVATIONS)}")
    if dtype is None:
        dtype = np.result_type(*weights, *biases)
        dtype = dtype if dtype.kind == "f" else np.float32

    from ..nn.parameter import Parameter  # imported here: gradwell.viz loads without nn

    def leaf(v: Any, name: str, learnable: bool) -> Tensor:
        t = Parameter(v, dtype=dtype) if learnable else tensor(v, dtype=dtype)
        t.name = name
        return t

    xs = np.asarray(_data(x), dtype=dtype).reshape(-1)
    ys = np.asarray(_data(y), dtype=dtype).reshape(-1)
    values = [leaf(v, f"x[{i}]", False) for i, v in enumerate(xs)]
    for number, (w, b) in enumerate(zip(weights, biases), start=1):
        if w.ndim != 2 or w.shape[1] != len(values) or b.shape != (w.shape[0],):
            raise ValueError(
                f"layer {number}: expected W of shape (out, {len(values)}) and b of shape "
                f"(out,); got W {w.shape} and b {b.shape}"
            )
        act = ACTIVATIONS[acts[number - 1]]
        outs = []
        for j in range(w.shape[0]):
            z = None
            for i, inp in enumerate(values):
                p = leaf(w[j, i], f"W{number}[{j},{i}]", True) * inp
                z = p if z is None else z + p
            z = z + leaf(b[j], f"b{number}[{j}]", True)
            z.name = f"z{number}[{j}]"
            if act is not None:
                z = act(z)
                z.name = f"h{number}[{j}]"
            outs.append(z)
        values = outs
    if len(ys) != len(values):
        raise ValueError(f"y: expected {len(values)} target values (one per output); got {len(ys)}")
    loss = None
    for i, (out, target) in enumerate(zip(values, ys)):
        out.name = f"out[{i}]"
        sq = (out - leaf(target, f"y[{i}]", False)) ** 2
        loss = sq if loss is None else loss + sq
    assert loss is not None
    if len(values) > 1:
        loss = loss / len(values)
    loss.name = "loss"
    return loss


def _data(v: Any) -> Any:
    return v.data if isinstance(v, Tensor) else v


def _from_model(model: Any) -> tuple[list[tuple[Any, Any]], list[str], str]:
    """(W, b) pairs and activation names of a Sequential of Linear layers and activations."""
    from .. import nn

    kinds = {nn.Tanh: "tanh", nn.ReLU: "relu", nn.Sigmoid: "sigmoid", nn.Identity: "identity"}
    layers: list[tuple[Any, Any]] = []
    acts: list[str] = []
    after: str | None = None  # the activation after the latest Linear
    for i, m in enumerate(model.children()):
        if isinstance(m, nn.Linear):
            if layers:
                acts.append(after or "identity")
            bias = m.bias.data if m.bias is not None else np.zeros(m.out_features, m.weight.dtype)
            layers.append((m.weight.data, bias))
            after = None
        elif type(m) in kinds and layers and after is None:
            after = kinds[type(m)]
        else:
            raise ValueError(
                f"scalar_mlp(): module {i} ({type(m).__name__}) is not supported; expected "
                "a Sequential of Linear layers, each followed by at most one of Tanh, ReLU, "
                "Sigmoid or Identity"
            )
    return layers, acts, after or "identity"
