"""Drawing a :class:`Graph`: Graphviz DOT text, and SVG laid out by gradwell itself."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING

from .layout import Layout, layered_layout
from .summary import brief, shape_text

if TYPE_CHECKING:  # rendering takes a graph value; it never builds one
    from .graph import Graph, Node

SYMBOLS = {"add": "+", "sub": "−", "mul": "×", "div": "÷", "pow": "^", "neg": "−x"}

# Fill and stroke per node kind; the explain page's stylesheet uses the same palette.
COLOURS = {
    "parameter": ("#fff3dc", "#d98a00"),
    "input": ("#e6f0ff", "#3b76c4"),
    "constant": ("#f1f1f1", "#9a9a9a"),
    "op": ("#ffffff", "#5a5a5a"),
}
GRAD_COLOUR = "#b02a6b"
EDGE_COLOUR = "#b8b8b8"

SANS = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
MONO = "ui-monospace, 'DejaVu Sans Mono', Menlo, Consolas, monospace"
LABEL_PX, MONO_PX = 11.0, 10.0
LABEL_CHAR, MONO_CHAR = 6.9, 6.1  # generous average advance widths at those sizes
LINE = 12.5


def kind(node: Node) -> str:
    return node.op if node.is_leaf else "op"


def label(node: Node) -> str:
    """The text inside a node's box: a leaf's name (or a constant's value), an op's symbol."""
    if node.op == "constant":
        return node.value
    if node.is_leaf:
        return node.name or node.op
    return SYMBOLS.get(node.op, node.op)


def caption(node: Node) -> str:
    """The small text above an op's box: its name, or the module that made it."""
    if node.is_leaf:
        return ""
    return node.name or node.module or ""


@dataclass(frozen=True)
class Look:
    """How a graph's nodes are drawn: compact for all-scalar graphs, with shapes otherwise."""

    scalar: bool

    @classmethod
    def of(cls, g: Graph) -> Look:
        return cls(scalar=all(n.shape == () or _size(n.shape) == 1 for n in g.nodes))

    def lines(self, node: Node) -> list[tuple[str, str]]:
        """(css class, text) per line inside the box; "v" and "g" are value and gradient."""
        rows = [("lab", label(node))]
        if not self.scalar:
            rows.append(("shp", shape_text(node.shape)))
        rows += [("v", ""), ("g", "")]
        return rows

    def size(self, node: Node, value: str, grad: str) -> tuple[float, float]:
        lab = len(label(node)) * LABEL_CHAR
        mono = max(len(value), len(grad) + 2, len(shape_text(node.shape))) * MONO_CHAR
        w = max(58.0 if self.scalar else 84.0, lab + 14, mono + 14)
        return w, LINE * len(self.lines(node)) + 8


def _size(shape: tuple[int, ...]) -> int:
    s = 1
    for d in shape:
        s *= d
    return s


def box_texts(node: Node) -> tuple[str, str]:
    """The value and gradient text shown in the box (short; the tooltip has the rest)."""
    return brief(node.value), "" if node.grad is None else brief(node.grad)


def layout_graph(g: Graph, look: Look, widest: list[tuple[str, str]] | None = None) -> Layout:
    """Lay out ``g``; ``widest`` gives per node the longest value/grad text it will show."""
    sizes = []
    for n in g.nodes:
        v, gr = widest[n.id] if widest is not None else box_texts(n)
        sizes.append(look.size(n, v, gr))
    gap = 24.0 if look.scalar else 28.0  # room for the caption above each box
    return layered_layout(sizes, [(e.src, e.dst, e.arg) for e in g.edges], node_gap=gap)


def tooltip(node: Node, paths: int | None = None) -> str:
    rows = [f"#{node.id} {node.op}" + (f" · {node.name}" if node.name else "")]
    if node.module:
        rows.append(f"module {node.module}")
    rows.append(f"shape {shape_text(node.shape)} {node.dtype}")
    rows.append(f"value {node.value}")
    if node.grad is not None:
        rows.append(f"grad {node.grad}")
    if paths is not None:
        rows.append(f"paths to output {paths}")
    return "\n".join(rows)


def svg(
    g: Graph,
    lay: Layout,
    look: Look,
    *,
    prefix: str = "",
    filled: bool = True,
    captions: list[str] | None = None,
) -> str:
    """SVG markup for ``g`` laid out as ``lay``.

    Element ids are ``{prefix}n{i}`` (nodes), ``{prefix}e{i}`` (edges) and
    ``{prefix}l{i}`` (edge labels), for the explain page's script. ``filled``
    writes values and gradients into the boxes; the page leaves them empty and
    fills them step by step. ``captions`` replaces the small text above each box.
    """
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="gw-graph" '
        f'viewBox="0 0 {lay.width:.0f} {lay.height:.0f}" width="{lay.width:.0f}" '
        f'height="{lay.height:.0f}" font-family="{escape(SANS)}">',
        '<g class="edges" fill="none">',
    ]
    for i, pts in enumerate(lay.routes):
        out.append(
            f'<path id="{prefix}e{i}" class="edge" d="{_curve(pts)}" '
            f'stroke="{EDGE_COLOUR}" stroke-width="1.2"/>'
        )
    out.append("</g>")
    paths = g.paths_to_output()
    out.append('<g class="nodes">')
    for n, b in zip(g.nodes, lay.boxes):
        k = kind(n)
        fill, stroke = COLOURS[k]
        out.append(
            f'<g id="{prefix}n{n.id}" class="node k-{k}" '
            f'transform="translate({b.cx:.1f},{b.cy:.1f})">'
        )
        out.append(f"<title>{escape(tooltip(n, paths[n.id]))}</title>")
        out.append(
            f'<rect x="{-b.w / 2:.1f}" y="{-b.h / 2:.1f}" width="{b.w:.1f}" '
            f'height="{b.h:.1f}" rx="6" fill="{fill}" stroke="{stroke}" stroke-width="1.2"/>'
        )
        cap = caption(n) if captions is None else captions[n.id]
        if cap:
            out.append(
                f'<text class="cap" y="{-b.h / 2 - 4:.1f}" text-anchor="middle" '
                f'font-size="9.5" fill="#666">{escape(cap)}</text>'
            )
        value, grad = box_texts(n) if filled else ("", "")
        lines = look.lines(n)
        y = -b.h / 2 + 4 + LINE * 0.8
        for cls, text in lines:
            if cls == "v":
                text = value
            elif cls == "g":
                text = f"∂ {grad}" if grad else ""
            out.append(_text_line(cls, y, text))
            y += LINE
        out.append("</g>")
    out.append("</g>")
    if not filled:
        out.append('<g class="elabels">')
        for i, pts in enumerate(lay.routes):
            x, y = _label_point(pts)
            out.append(
                f'<text id="{prefix}l{i}" class="el" x="{x:.1f}" y="{y:.1f}" '
                f'text-anchor="middle"></text>'
            )
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out)


def _text_line(cls: str, y: float, text: str) -> str:
    if cls == "lab":
        style = f'font-size="{LABEL_PX}" font-weight="600" fill="#222"'
    elif cls == "g":
        style = f'font-size="{MONO_PX}" font-family="{escape(MONO)}" fill="{GRAD_COLOUR}"'
    else:
        style = f'font-size="{MONO_PX}" font-family="{escape(MONO)}" fill="#333"'
    return f'<text class="{cls}" y="{y:.1f}" text-anchor="middle" {style}>{escape(text)}</text>'


def _curve(pts: list[tuple[float, float]]) -> str:
    """A smooth path through ``pts``: horizontal-tangent cubic Béziers between them."""
    x0, y0 = pts[0]
    d = [f"M{x0:.1f},{y0:.1f}"]
    for x1, y1 in pts[1:]:
        mx = (x0 + x1) / 2
        d.append(f"C{mx:.1f},{y0:.1f} {mx:.1f},{y1:.1f} {x1:.1f},{y1:.1f}")
        x0, y0 = x1, y1
    return " ".join(d)


def _label_point(pts: list[tuple[float, float]]) -> tuple[float, float]:
    """The midpoint of the route's middle segment (where a cubic of ours crosses half-way)."""
    i = (len(pts) - 2) // 2
    (x0, y0), (x1, y1) = pts[i], pts[i + 1]
    return (x0 + x1) / 2, (y0 + y1) / 2 - 3


def to_svg(g: Graph) -> str:
    """A standalone SVG of ``g`` with values (and gradients, when known) in the boxes."""
    look = Look.of(g)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + svg(g, layout_graph(g, look), look)


def to_dot(g: Graph) -> str:
    """Graphviz DOT for ``g``: one box per node, one edge per input use, modules as clusters."""
    look = Look.of(g)
    lines = [
        "digraph gradwell {",
        "  rankdir=LR;",
        '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10];',
        '  edge [color="#888888", arrowsize=0.6];',
    ]
    clusters: dict[str, list[int]] = {}
    for n in g.nodes:
        if n.module:
            clusters.setdefault(n.module, []).append(n.id)
    for n in g.nodes:
        rows = [label(n)]
        if caption(n) and caption(n) != n.module:
            rows.append(caption(n))
        if not look.scalar:
            rows.append(shape_text(n.shape))
        if n.op != "constant":
            rows.append(f"= {n.value}")
        if n.grad is not None:
            rows.append(f"grad {n.grad}")
        fill, stroke = COLOURS[kind(n)]
        lines.append(
            f'  n{n.id} [label="{_dot_escape(rows)}", fillcolor="{fill}", color="{stroke}"];'
        )
    for c, (module, ids) in enumerate(clusters.items()):
        lines.append(f"  subgraph cluster_{c} {{")
        lines.append(f'    label="{_dot_escape([module])}"; style=dashed; color="#aaaaaa";')
        lines.append("    " + " ".join(f"n{i};" for i in ids))
        lines.append("  }")
    for e in g.edges:
        attrs = "" if g.carries_gradient(e) else " [style=dashed]"
        lines.append(f"  n{e.src} -> n{e.dst}{attrs};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_escape(rows: list[str]) -> str:
    escaped = (r.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") for r in rows)
    return "\\n".join(escaped)
