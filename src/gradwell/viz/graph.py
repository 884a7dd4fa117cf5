"""The computation graph behind a tensor, as plain data: nodes, edges, values, gradients."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..autograd import engine, recording
from ..autograd.engine import GraphReleasedError
from ..autograd.ops import ArrayF
from ..autograd.tensor import Tensor
from . import render
from .summary import summarize


@dataclass(frozen=True)
class Node:
    """One tensor of the graph.

    ``op`` is the primitive that made it, or ``"parameter"``, ``"input"`` or
    ``"constant"`` for a leaf. ``value`` and ``grad`` are short text summaries
    (the number itself for a one-element tensor); ``grad`` is None when unknown.
    """

    id: int
    op: str
    name: str | None
    module: str | None
    shape: tuple[int, ...]
    dtype: str
    value: str
    grad: str | None
    requires_grad: bool

    @property
    def is_leaf(self) -> bool:
        return self.op in LEAF_KINDS


LEAF_KINDS = ("parameter", "input", "constant")


@dataclass(frozen=True)
class Edge:
    """``src`` is input number ``arg`` of ``dst`` (x * x gives two edges, arg 0 and 1)."""

    src: int
    dst: int
    arg: int


@dataclass
class Graph:
    """The graph that produced a tensor: nodes in topological order (inputs first).

    ``tensors[i]`` is node i's Tensor and ``gradients[i]`` its gradient as a numpy
    array; ``edge_gradients[j]`` is what backward sent along edge j (the consumer's
    vector-Jacobian product for that input). Both are None where not computed.
    Render with :meth:`to_dot` or :meth:`to_svg`.
    """

    nodes: list[Node]
    edges: list[Edge]
    output: int
    tensors: list[Tensor] = field(repr=False, compare=False)
    gradients: list[np.ndarray | None] = field(repr=False, compare=False)
    edge_gradients: list[np.ndarray | None] = field(repr=False, compare=False)

    def inputs_of(self, node: int) -> list[Edge]:
        """The edges into ``node``, in argument order."""
        return self._index()[0][node]

    def consumers_of(self, node: int) -> list[Edge]:
        """The edges out of ``node``, one per use (x * x uses x twice)."""
        return self._index()[1][node]

    def _index(self) -> tuple[list[list[Edge]], list[list[Edge]]]:
        cached = self.__dict__.get("_edge_index")
        if cached is None:
            ins: list[list[Edge]] = [[] for _ in self.nodes]
            outs: list[list[Edge]] = [[] for _ in self.nodes]
            for e in self.edges:
                ins[e.dst].append(e)
                outs[e.src].append(e)
            cached = self.__dict__["_edge_index"] = (ins, outs)
        return cached

    def carries_gradient(self, edge: Edge) -> bool:
        """Whether backward computes a gradient along ``edge`` (its source requires one)."""
        return self.nodes[edge.src].requires_grad

    def paths_to_output(self) -> list[int]:
        """For every node, the number of distinct paths from it to the output.

        Counted by dynamic programming over the reverse topological order, in
        exact integers: the count doubles with every diamond, so it grows
        exponentially with depth while backward's work grows linearly.
        """
        paths = [0] * len(self.nodes)
        paths[self.output] = 1
        for node in reversed(range(len(self.nodes))):
            for e in self.consumers_of(node):
                if self.carries_gradient(e):
                    paths[node] += paths[e.dst]
        return paths

    def count_paths(self) -> int:
        """Paths from every leaf that requires a gradient to the output."""
        paths = self.paths_to_output()
        return sum(paths[n.id] for n in self.nodes if n.is_leaf and n.requires_grad)

    def count_path_factors(self) -> int:
        """Local derivatives a path-by-path chain rule would multiply: all paths' total length.

        Backpropagation computes one product per edge instead (:meth:`gradient_products`).
        Dynamic programming again: with P(n) paths from n to the output and L(n)
        their total length, L(n) = sum over n's uses n -> c of L(c) + P(c).
        """
        paths = self.paths_to_output()
        length = [0] * len(self.nodes)
        for node in reversed(range(len(self.nodes))):
            for e in self.consumers_of(node):
                if self.carries_gradient(e):
                    length[node] += length[e.dst] + paths[e.dst]
        return sum(length[n.id] for n in self.nodes if n.is_leaf and n.requires_grad)

    def gradient_products(self) -> int:
        """Vector-Jacobian products backward computes: one per edge that carries a gradient."""
        return sum(1 for e in self.edges if self.carries_gradient(e))

    def to_dot(self) -> str:
        """The graph in Graphviz DOT, left to right (render with ``dot -Tsvg``)."""
        return render.to_dot(self)

    def to_svg(self) -> str:
        """The graph as a standalone SVG drawing, laid out by gradwell (no Graphviz needed)."""
        return render.to_svg(self)


class Trace:
    """Remembers which module produced each tensor while it is active.

    >>> import gradwell as gw
    >>> with gw.viz.trace() as tr:
    ...     y = gw.tensor([1.0], requires_grad=True) * 2
    >>> tr.module_of(y) is None   # made outside any module
    True
    """

    def __init__(self) -> None:
        self._modules: dict[int, Any] = {}
        self._keep: list[Tensor] = []  # keeps ids unique while the trace lives

    def _record(self, step: recording.Step) -> None:
        if step.scope is not None:
            self._modules[id(step.output)] = step.scope
            self._keep.append(step.output)

    def module_of(self, t: Tensor) -> Any:
        """The innermost module that was running when ``t`` was made, or None."""
        return self._modules.get(id(t))

    def __enter__(self) -> Trace:
        self._observing = recording.observe(op=self._record)
        self._observing.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._observing.__exit__(None, None, None)


def trace() -> Trace:
    """A context manager that records which module made each tensor, for :func:`graph`."""
    return Trace()


def graph(
    output: Tensor,
    *,
    model: Any = None,
    trace: Trace | None = None,
    gradients: bool = False,
) -> Graph:
    """The graph that produced ``output``, as plain data.

    Call it before ``backward`` (which frees the graph) or after
    ``backward(retain_graph=True)``. ``model`` names the parameters (through its
    ``named_parameters()``) and, with a ``trace`` recorded during the forward pass,
    the module that made each node. ``gradients=True`` runs a backward pass of its
    own (``output`` must have one element) and records every node's gradient,
    leaving all ``.grad`` untouched and the graph intact.

    >>> import gradwell as gw
    >>> x = gw.tensor(2.0, requires_grad=True)
    >>> y = x * x + x
    >>> g = gw.viz.graph(y, gradients=True)
    >>> [n.op for n in g.nodes], g.count_paths()
    (['input', 'mul', 'add'], 3)
    >>> g.nodes[0].grad   # dy/dx = 2x + 1
    '5'
    """
    if not isinstance(output, Tensor):
        raise TypeError(f"graph() needs a gradwell Tensor; got {type(output).__name__}")
    order, edges = _collect(output)
    grads: list[np.ndarray | None]
    edge_grads: list[np.ndarray | None] = [None] * len(edges)
    if gradients:
        grads, edge_grads = _all_gradients(output, order, edges)
    else:  # leaves may hold gradients from an earlier backward
        grads = [t.grad.data if t._op is None and t.grad is not None else None for t in order]

    param_names = _parameter_names(model)
    module_names = _module_names(model)
    parameter_type = _parameter_type()
    nodes = []
    for i, t in enumerate(order):
        name = param_names.get(id(t)) or t.name
        if t._op is not None:
            op = t._op.name
        elif id(t) in param_names or (parameter_type is not None and isinstance(t, parameter_type)):
            op = "parameter"
        elif _is_constant(t):
            op = "constant"
        else:
            op = "input"
        module = trace.module_of(t) if trace is not None else None
        g = grads[i]
        nodes.append(
            Node(
                id=i,
                op=op,
                name=name,
                module=None if module is None else _module_label(module, module_names),
                shape=tuple(t.shape),
                dtype=str(t.dtype),
                value=summarize(t.data),
                grad=None if g is None else summarize(g),
                requires_grad=t.requires_grad,
            )
        )
    return Graph(nodes, edges, len(order) - 1, order, grads, edge_grads)


def _is_constant(t: Tensor) -> bool:
    """An unnamed 0-d leaf needing no gradient: a Python number lifted by an op."""
    return t._op is None and not t.requires_grad and t.name is None and t.ndim == 0


def _collect(output: Tensor) -> tuple[list[Tensor], list[Edge]]:
    """Every tensor ``output`` depends on, inputs first, in evaluation order; and the edges.

    Iterative depth-first post-order (no recursion, so any depth works). A tensor
    used several times appears once, except constants: the engine shares one
    tensor per Python number, but it carries no gradient, so it is drawn at each use.
    """
    order: list[Tensor] = []
    edges: list[Edge] = []
    position: dict[int, int] = {}
    stack: list[tuple[Tensor, bool]] = [(output, False)]
    while stack:
        t, expanded = stack.pop()
        if expanded:
            if t._op is not None:
                args = []
                for inp in t._inputs or ():
                    if _is_constant(inp):
                        order.append(inp)
                        args.append(len(order) - 1)
                    else:
                        args.append(position[id(inp)])
                edges += [Edge(src, len(order), k) for k, src in enumerate(args)]
            position[id(t)] = len(order)
            order.append(t)
            continue
        if id(t) in position:
            continue
        position[id(t)] = -1  # on the stack: expanded once
        stack.append((t, True))
        if t._op is None:
            continue
        if t._inputs is None:
            raise GraphReleasedError(
                f"the graph through op '{t._op.name}' was freed by backward(); draw it before "
                "calling backward(), or call backward(retain_graph=True)"
            )
        for inp in reversed(t._inputs):  # reversed: argument 0 is visited first
            if id(inp) not in position and not _is_constant(inp):
                stack.append((inp, False))
    return order, edges


def _all_gradients(
    output: Tensor, order: list[Tensor], edges: list[Edge]
) -> tuple[list[np.ndarray | None], list[np.ndarray | None]]:
    """Every node's gradient and every edge's contribution, from one backward of the engine.

    The recording seam reports each node's total gradient and each VJP's results,
    so what is recorded is what backward computed, not a re-derivation.
    """
    if output.numel() != 1:
        raise ValueError(
            f"graph(gradients=True) needs a one-element output (a loss); got shape {output.shape}"
        )
    if not output.requires_grad:
        raise ValueError(
            "graph(gradients=True): the output does not depend on anything that "
            "requires grad, so it has no gradients to show"
        )
    position = {id(t): i for i, t in enumerate(order) if not _is_constant(t)}
    edge_at = {(e.dst, e.arg): j for j, e in enumerate(edges)}
    node_grads: dict[int, np.ndarray] = {}
    edge_grads: list[np.ndarray | None] = [None] * len(edges)

    def on_grad(node: Tensor, g: Any) -> None:
        node_grads[id(node)] = np.array(g, copy=True)

    def on_vjp(node: Tensor, g: Any, in_grads: Any) -> None:
        dst = position.get(id(node))
        if dst is None:
            return
        assert node._inputs is not None
        for k, (inp, ig) in enumerate(zip(node._inputs, in_grads)):
            if ig is None or not inp.requires_grad:
                continue
            ig = np.asarray(ig)
            if ig.shape != inp.data.shape:  # the engine sums broadcast gradients the same way
                ig = ArrayF.sum_to(ig, inp.data.shape)
            edge_grads[edge_at[(dst, k)]] = np.array(ig, copy=True)

    leaves = [t for t in order if t._op is None and t.requires_grad]
    with recording.observe(grad=on_grad, vjp=on_vjp):
        engine.grad(output, leaves, retain_graph=True, allow_unused=True)
    return [node_grads.get(id(t)) for t in order], edge_grads


def _parameter_names(model: Any) -> dict[int, str]:
    if model is None:
        return {}
    if not hasattr(model, "named_parameters"):
        raise TypeError(
            f"model must have named_parameters() (a gw.nn.Module); got {type(model).__name__}"
        )
    return {id(p): name for name, p in model.named_parameters()}


def _module_names(model: Any) -> dict[int, str]:
    if model is None or not hasattr(model, "named_modules"):
        return {}
    return {id(m): name for name, m in model.named_modules()}


def _module_label(module: Any, names: dict[int, str]) -> str:
    kind = type(module).__name__
    name = names.get(id(module))
    return f"{name} ({kind})" if name else kind


def _parameter_type() -> type | None:
    try:
        from ..nn import Parameter  # type: ignore[attr-defined]
    except ImportError:  # nn not available: parameters are named through `model`
        return None
    return Parameter if isinstance(Parameter, type) else None
