"""``gw.viz.explain``: one self-contained HTML page that steps through backpropagation."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from html import escape
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_write
from ..autograd.ops import ArrayF
from ..autograd.tensor import Tensor
from .graph import Graph, Node, Trace, graph
from .render import SYMBOLS, Look, box_texts, caption, label, layout_graph, svg
from .summary import brief, number, shape_text, summarize

MAX_NODES = 5000  # a page beyond this is too slow to step through


def explain(
    loss: Tensor | Callable[[], Tensor],
    path: str | os.PathLike[str] = "backprop.html",
    *,
    model: Any = None,
    scalar: Tensor | None = None,
    title: str | None = None,
) -> Path:
    """Write a page that walks the forward and backward pass of ``loss``'s graph.

    ``loss`` is a one-element Tensor whose graph is still there (call this before
    ``loss.backward()``, or after ``backward(retain_graph=True)``), or a function
    that computes it: then the forward pass runs here, recording which module made
    each node. ``model`` names the parameters. ``scalar`` adds a neuron-by-neuron
    view: a one-element loss computed one number at a time (see
    :func:`gradwell.viz.scalar_mlp`). A graph of one-element tensors is already
    drawn number by number.

    The page needs no network: the drawing (laid out by gradwell), the data and
    the script are all inline. No ``.grad`` is changed. Returns the page's path.

    >>> import gradwell as gw, tempfile, os
    >>> x = gw.tensor(0.5, requires_grad=True)
    >>> page = gw.viz.explain(gw.tanh(x * x + x), os.path.join(tempfile.mkdtemp(), "p.html"))
    >>> page.name
    'p.html'
    """
    trace = None
    if callable(loss) and not isinstance(loss, Tensor):
        with Trace() as trace:
            loss = loss()
    _check_loss(loss, "loss")
    main = graph(loss, model=model, trace=trace, gradients=True)
    views = []
    if scalar is not None:
        _check_loss(scalar, "scalar")
        views.append(build_view("neurons", "Neurons", graph(scalar, gradients=True)))
        views.append(build_view("tensors", "Tensors", main))
    elif Look.of(main).scalar:
        views.append(build_view("scalars", "Scalars", main))
    else:
        views.append(build_view("tensors", "Tensors", main))
    html = page(views, title or "Backpropagation, step by step")
    return write_atomic(Path(path), html)


def _check_loss(t: Any, what: str) -> None:
    if not isinstance(t, Tensor):
        raise TypeError(f"explain(): {what} must be a gradwell Tensor; got {type(t).__name__}")
    if t.numel() != 1:
        raise ValueError(f"explain(): {what} must have one element (a loss); got shape {t.shape}")
    if not t.requires_grad:
        raise ValueError(
            f"explain(): {what} does not depend on anything that requires grad, so backward "
            "has nothing to do (was it computed under no_grad, or from data only?)"
        )


# ---------------------------------------------------------------------------
# One view: the drawing plus the steps of both passes.


def build_view(view_id: str, name: str, g: Graph) -> dict[str, Any]:
    """Everything the page needs about one graph: SVG markup and the step list."""
    if len(g.nodes) > MAX_NODES:
        raise ValueError(
            f"explain(): the graph has {len(g.nodes)} nodes; the page handles up to {MAX_NODES}. "
            "Explain a smaller model or a single layer"
        )
    look = Look.of(g)
    writer = _Steps(g, look)
    steps = writer.all()
    lay = layout_graph(g, look, writer.widest)
    return {
        "id": view_id,
        "name": name,
        "hint": (
            "every number is a node: each weight, product, sum and activation; "
            "data flows left to right"
            if look.scalar
            else "one node per operation, with the shape of its result; data flows left to right"
        ),
        "svg": svg(
            g, lay, look, prefix=f"{view_id}-", filled=False, captions=_captions(g, writer.names)
        ),
        "nodes": len(g.nodes),
        "edges": len(g.edges),
        "pos": [[round(b.cx, 1), round(b.cy, 1)] for b in lay.boxes],
        "steps": steps,
        "totals": {
            "products": g.gradient_products(),
            "sums": _sum_count(g),
            # exact integers as text: they may exceed what a JSON number holds
            "paths": str(g.count_paths()),
            "factors": str(g.count_path_factors()),
            "nodes": len(g.nodes),
            "ops": sum(1 for n in g.nodes if not n.is_leaf),
        },
    }


def _sum_count(g: Graph) -> int:
    """Additions backward does: a node with k gradient-carrying uses sums k contributions."""
    total = 0
    for n in g.nodes:
        k = sum(1 for e in g.consumers_of(n.id) if g.carries_gradient(e))
        total += max(k - 1, 0)
    return total


class _Steps:
    """Writes the forward steps (one per op, in topological order), then the backward ones.

    Backward replays the engine's own rule: at each op, in reverse topological
    order, the op's VJP sends a contribution to every input that needs one; a
    node's gradient is the sum of what its consumers sent. The totals are
    checked against the gradients the engine computed (``Graph.gradients``).
    """

    def __init__(self, g: Graph, look: Look) -> None:
        self.g, self.look = g, look
        self.names = _display_names(g)
        self.edge_pos = {e: i for i, e in enumerate(g.edges)}
        self.paths = g.paths_to_output()
        # per node, the longest value and gradient text it shows, to size its box
        self.widest = [box_texts(n) for n in g.nodes]
        self.partial: dict[int, np.ndarray] = {}
        self.arrived: dict[int, list[tuple[int, np.ndarray]]] = {}  # (consumer, contribution)
        self.pending = {
            n.id: sum(1 for e in g.consumers_of(n.id) if g.carries_gradient(e)) for n in g.nodes
        }
        self.done = 0  # gradient products computed so far

    def all(self) -> list[dict[str, Any]]:
        g = self.g
        leaves = [n for n in g.nodes if n.is_leaf]
        # Column by column: ordering by depth (longest path from a leaf) is a topological
        # order that walks a network layer by layer, as the drawing shows it.
        depth = [0] * len(g.nodes)
        for n in g.nodes:
            ins = g.inputs_of(n.id)
            if ins:
                depth[n.id] = 1 + max(depth[e.src] for e in ins)
        ops_order = sorted((n for n in g.nodes if not n.is_leaf), key=lambda n: (depth[n.id], n.id))
        steps: list[dict[str, Any]] = [
            {
                "phase": "forward",
                "node": None,
                "title": "The inputs and parameters are known",
                "rows": _leaf_rows(leaves, self.names)
                + [["next", "each step computes one operation from values already known"]],
                "edges": [],
                "labels": [],
                # a constant's box already shows its value as its label
                "set": [
                    [n.id, "v", "" if n.op == "constant" else box_texts(n)[0], "known"]
                    for n in leaves
                ],
                "done": 0,
            }
        ]
        steps += [self.forward(n) for n in ops_order]
        steps += [self.backward(n) for n in reversed(ops_order)]
        return steps

    def forward(self, n: Node) -> dict[str, Any]:
        g, names = self.g, self.names
        ins = g.inputs_of(n.id)
        symbolic = f"{names[n.id]} = {_formula(n, [names[e.src] for e in ins])}"
        rows = [["computes", symbolic]]
        if self.look.scalar:
            vals = [number(g.tensors[e.src].data) for e in ins]
            rows.append(["with numbers", f"{_formula(n, vals)} = {n.value}"])
        else:
            for e in ins:
                src = g.nodes[e.src]
                rows.append(
                    [f"input {e.arg}", f"{names[e.src]} {shape_text(src.shape)}: {src.value}"]
                )
            rows.append(["result", f"{shape_text(n.shape)} {n.dtype}: {n.value}"])
        if n.module:
            rows.append(["module", n.module])
        rows.append(["stored", "the result is kept: backward needs it for the local derivatives"])
        return {
            "phase": "forward",
            "node": n.id,
            "title": symbolic,
            "rows": rows,
            "edges": [self.edge_pos[e] for e in ins],
            "labels": [],
            "set": [[n.id, "v", box_texts(n)[0], "known"]],
            "done": self.done,
        }

    def backward(self, n: Node) -> dict[str, Any]:
        g, names, scalar = self.g, self.names, self.look.scalar
        grad = g.gradients[n.id]
        assert grad is not None, f"node {n.id} ({n.op}) got no gradient"
        text = _brief(grad)
        rows: list[list[str]] = []
        if n.id == g.output:
            rows.append(["start", f"d{names[n.id]}/d{names[n.id]} = {text}: backward starts here"])
            rows.append(
                [
                    "order",
                    "reverse topological: a node is visited once every operation that uses it "
                    "has sent its contribution, so its gradient is complete and computed once",
                ]
            )
        else:
            parts = self.arrived.get(n.id, [])
            if len(parts) == 1:
                rows.append(["gradient", f"{text}, from its one consumer {names[parts[0][0]]}"])
            else:
                terms = " + ".join(_brief(c) for _, c in parts)
                rows.append([f"sum of {len(parts)}", f"{terms} = {text}"])
                reuse = (
                    f"{names[n.id]} feeds {len(parts)} operations: their contributions are "
                    f"added once and the total is stored, shared by all {self.paths[n.id]} "
                    "paths from here to the output instead of being recomputed for each"
                )
                rows.append(["reused", reuse])
        sets: list[list[Any]] = [[n.id, "g", text, "grad-done"]]
        edges, labels = [], []
        local = local_derivatives(g.tensors[n.id]) if scalar else None
        for e in g.inputs_of(n.id):
            src = g.nodes[e.src]
            c = g.edge_gradients[self.edge_pos[e]]
            if c is None:
                rows.append(
                    [f"→ {names[e.src]}", "needs no gradient (data or a constant): skipped"]
                )
                continue
            self.done += 1
            edges.append(self.edge_pos[e])
            labels.append([self.edge_pos[e], _brief(c)])
            if local is not None:
                d = local[e.arg]
                assert d is not None
                rule = _local_rule(n, e.arg, len(g.inputs_of(n.id)))
                rows.append(
                    [
                        f"→ {names[e.src]}",
                        f"upstream {text} × local {_brief(d)} = {_brief(c)}"
                        + (f"   [local: {rule}]" if rule else ""),
                    ]
                )
            else:
                rows.append(
                    [
                        f"→ {names[e.src]} {shape_text(src.shape)}",
                        f"vector-Jacobian product of {n.op} with the upstream gradient "
                        f"{shape_text(n.shape)} gives {summarize(c)}",
                    ]
                )
            total = c if e.src not in self.partial else self.partial[e.src] + c
            self.partial[e.src] = total
            self.arrived.setdefault(e.src, []).append((n.id, c))
            self.pending[e.src] -= 1
            shown = _brief(total)
            complete = src.is_leaf and self.pending[e.src] == 0
            sets.append([e.src, "g", shown, "grad-done" if complete else "grad-partial"])
            parts = self.arrived[e.src]
            if complete and len(parts) > 1:  # a leaf has no step of its own: sum it here
                terms = " + ".join(_brief(p) for _, p in parts)
                rows.append([f"{names[e.src]} done", f"sum of {len(parts)}: {terms} = {shown}"])
            if len(shown) > len(self.widest[e.src][1]):
                self.widest[e.src] = (self.widest[e.src][0], shown)
        title = f"gradient at {names[n.id]}"
        return {
            "phase": "backward",
            "node": n.id,
            "title": title if n.op in names[n.id] else f"{title} ({n.op})",
            "rows": rows,
            "edges": edges,
            "labels": labels if scalar else [],
            "set": sets,
            "done": self.done,
        }


def local_derivatives(t: Tensor) -> list[np.ndarray | None]:
    """d t / d input for each input of a one-element ``t``: its op's VJP applied to 1.

    The same rule the engine runs, called the same way; None where an input needs
    no gradient.
    """
    ins, op = t._inputs, t._op
    assert ins is not None and op is not None and op.vjp is not None
    needs = tuple(i.requires_grad for i in ins)
    out = op.vjp(ArrayF, np.ones_like(t.data), t.data, [i.data for i in ins], needs, t._attrs)
    result: list[np.ndarray | None] = []
    for inp, need, d in zip(ins, needs, out):
        if not need or d is None:
            result.append(None)
            continue
        d = np.asarray(d)
        result.append(d if d.shape == inp.data.shape else ArrayF.sum_to(d, inp.data.shape))
    return result


def _brief(a: np.ndarray) -> str:
    return brief(summarize(a))


# d(out)/d(input) of the scalar ops, in terms of their inputs a, b and result out.
LOCAL_RULES: dict[str, tuple[str, ...]] = {
    "add": ("1", "1"),
    "sub": ("1", "-1"),
    "mul": ("b", "a"),
    "div": ("1/b", "-a/b²"),
    "pow": ("b·a^(b-1)", "out·ln(a)"),
    "neg": ("-1",),
    "exp": ("out",),
    "log": ("1/a",),
    "sqrt": ("1/(2·out)",),
    "abs": ("sign(a)",),
    "tanh": ("1 - out²",),
    "sigmoid": ("out·(1 - out)",),
    "relu": ("1 if a > 0 else 0",),
    "maximum": ("1 if a > b else 0", "1 if b > a else 0"),
    "minimum": ("1 if a < b else 0", "1 if b < a else 0"),
}


def _local_rule(n: Node, arg: int, n_args: int) -> str:
    """``∂(a × b)/∂a = b``: the rule behind a scalar op's local derivative, when known."""
    rules = LOCAL_RULES.get(n.op)
    if rules is None or len(rules) != n_args:
        return ""
    wrt = "ab"[arg]
    return f"∂{_wrap(_formula(n, list('ab'[:n_args])))}/∂{wrt} = {rules[arg]}"


def _formula(n: Node, args: list[str]) -> str:
    sym = SYMBOLS.get(n.op)
    if sym and len(args) == 2:
        return f"{_wrap(args[0])} {sym} {_wrap(args[1])}"
    if n.op == "neg" and len(args) == 1:
        return f"-{_wrap(args[0])}"
    return f"{n.op}({', '.join(args)})"


def _wrap(s: str) -> str:
    return f"({s})" if " " in s else s


def _display_names(g: Graph, limit: int = 32) -> list[str]:
    """How steps refer to each node: its name, a constant's value, a short formula, or #id."""
    names: list[str] = []
    for n in g.nodes:
        if n.name:
            names.append(n.name)
        elif n.op == "constant":
            names.append(n.value)
        elif n.is_leaf:
            names.append(f"{n.op} #{n.id}")
        else:
            formula = _formula(n, [names[e.src] for e in g.inputs_of(n.id)])
            in_module = f"{n.op} in {n.module}" if n.module else ""
            if len(formula) <= limit:
                names.append(formula)
            elif in_module and len(in_module) <= limit:
                names.append(in_module)
            else:
                names.append(f"{label(n)} #{n.id}")
    return names


def _captions(g: Graph, names: list[str]) -> list[str]:
    """Above each op: its name or module, or its number when the steps refer to it by number."""
    return [caption(n) or (f"#{n.id}" if names[n.id].endswith(f"#{n.id}") else "") for n in g.nodes]


def _leaf_rows(leaves: list[Node], names: list[str], limit: int = 6) -> list[list[str]]:
    rows = []
    for kind, title in (("input", "inputs"), ("parameter", "parameters")):
        group = [n for n in leaves if n.op == kind]
        if not group:
            continue
        shown = ", ".join(f"{names[n.id]} = {n.value}" for n in group[:limit])
        more = len(group) - limit
        rows.append([f"{len(group)} {title}", shown + (f", … and {more} more" if more > 0 else "")])
    return rows


# ---------------------------------------------------------------------------
# The page.


def _asset(name: str) -> str:
    return (resources.files("gradwell.viz") / "assets" / name).read_text(encoding="utf-8")


def page(views: list[dict[str, Any]], title: str) -> str:
    """The whole HTML page: template, stylesheet, script, drawings and data inline."""
    tabs = "".join(
        f'<button class="tab" role="tab" data-view="{v["id"]}">{escape(v["name"])}</button>'
        for v in views
    )
    drawings = "".join(
        f'<div class="view" data-view="{v["id"]}" hidden>{v["svg"]}</div>' for v in views
    )
    data = {"views": [{k: val for k, val in v.items() if k != "svg"} for v in views]}
    # "<" is escaped so no string in the data can close the script element.
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")
    html = _asset("explain.html")
    for marker, text in (
        ("/*GW:CSS*/", _asset("explain.css")),
        ("/*GW:JS*/", _asset("explain.js")),
        ("<!--GW:TITLE-->", escape(title)),
        ("<!--GW:TABS-->", tabs),
        ("<!--GW:VIEWS-->", drawings),
        ("<!--GW:DATA-->", payload),
    ):
        html = html.replace(marker, text)
    return html


def write_atomic(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file, so no half-written page is left."""
    path = path.expanduser()
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise FileNotFoundError(
            f"explain(): the folder {str(parent)!r} for {str(path)!r} does not exist"
        )
    atomic_write(path, text)
    return path.resolve()
