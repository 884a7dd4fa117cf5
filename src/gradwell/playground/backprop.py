"""Step through backpropagation on the playground's network, at one example.

The explain page (``gw.viz``) of the current network at its current weights, on the
data point nearest to where the page was clicked: the forward pass, the backward
pass, and one last step with the update ``w <- w - lr * dE/dw`` of every parameter.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..autograd import grad
from ..autograd.creation import tensor
from ..viz.explain import build_view, page
from ..viz.graph import Trace, graph
from ..viz.neurons import MAX_WEIGHTS, scalar_mlp
from ..viz.summary import number, summarize
from .run import Run


def explain_page(run: Run, x1: float, x2: float) -> str:
    """The page for the data point nearest to (x1, x2), at the run's current weights."""
    i = int(np.argmin((run.data.X[:, 0] - x1) ** 2 + (run.data.X[:, 1] - x2) ** 2))
    model = run.copy_of_model().eval()  # the run's own model is left as it is
    x = tensor(run.data.F[i : i + 1])
    y = tensor(run.data.targets[i : i + 1])
    x.name, y.name = "x", "y"
    loss_fn = run.base_loss
    with Trace() as trace:
        loss = loss_fn(model(x), y)
    views = []
    scalar = _neuron_view(model, run, i)
    if scalar is not None:
        views.append(build_view("neurons", "Neurons", graph(scalar, gradients=True)))
    views.append(
        build_view("tensors", "Tensors", graph(loss, model=model, trace=trace, gradients=True))
    )
    params = [(name, p) for name, p in model.named_parameters()]
    grads = grad(loss_fn(model(x), y), [p for _, p in params])
    step = _update_step(params, grads, run.config.lr, run.config.optimizer)
    for view in views:
        view["steps"].append({**step, "done": view["totals"]["products"]})
    label = run.data.y[i]
    where = f"({number(run.data.X[i, 0])}, {number(run.data.X[i, 1])})"
    kind = "training" if run.data.train[i] else "test"
    title = f"epoch {run.epoch}: the {kind} point {where}, target {label}"
    return page(views, title)


def _neuron_view(model: Any, run: Run, i: int) -> Any:
    """The neuron-by-neuron loss when the page can draw it: a plain MLP (no batch norm,
    no dropout), the squared error, and at most MAX_WEIGHTS weights."""
    if run.config.loss != "mse" or run.config.batchnorm or any(run.config.dropout):
        return None
    if sum(p.numel() for p in model.parameters()) > MAX_WEIGHTS:
        return None
    try:
        return scalar_mlp(model, run.data.F[i], run.data.targets[i])
    except ValueError:
        return None


def _update_step(
    params: list[tuple[str, Any]], grads: Any, lr: float, optimizer: str
) -> dict[str, Any]:
    rows = []
    for (name, p), g in zip(params, grads):
        new = p.data - lr * g.data
        rows.append(
            [name, f"{summarize(p.data)} - {number(lr)} × {summarize(g.data)} = {summarize(new)}"]
        )
    note = (
        "plain gradient descent on this one example"
        if optimizer == "sgd"
        else f"the plain gradient step on this one example; {optimizer} itself also keeps a "
        "running average of past gradients, so its actual step differs"
    )
    return {
        "phase": "update",
        "node": None,
        "title": f"update: w ← w − α·∂E/∂w with α = {number(lr)}",
        "rows": [["rule", note], *rows],
        "edges": [],
        "labels": [],
        "set": [],
    }
