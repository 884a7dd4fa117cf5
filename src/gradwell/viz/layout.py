"""A layered (Sugiyama-style) drawing of a DAG, left to right, in plain Python.

1. Layers: an op sits one layer right of its latest input (longest path); a
   source (leaf) sits just left of its first consumer, so weights stand next to
   the product that uses them.
2. Edges that span several layers get a dummy point in each layer between, so
   they are ordered and routed like short edges.
3. Order within layers: barycentre sweeps, down and up, keeping the order with
   the fewest crossings.
4. Vertical positions: each node is pulled towards the mean of its neighbours,
   subject to keeping the order and a minimum gap, solved exactly per layer by
   isotonic regression (pool adjacent violators).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Box:
    """A node's rectangle: centre (cx, cy), width w, height h."""

    cx: float
    cy: float
    w: float
    h: float

    @property
    def top(self) -> float:
        return self.cy - self.h / 2

    @property
    def bottom(self) -> float:
        return self.cy + self.h / 2

    @property
    def left(self) -> float:
        return self.cx - self.w / 2

    @property
    def right(self) -> float:
        return self.cx + self.w / 2


@dataclass(frozen=True)
class Layout:
    """Boxes per node, a route per edge (points from source to target) and the extent."""

    boxes: list[Box]
    routes: list[list[tuple[float, float]]]
    layers: list[list[int]]  # real nodes per layer, top to bottom
    width: float
    height: float


def layered_layout(
    sizes: Sequence[tuple[float, float]],
    edges: Sequence[tuple[int, int, int]],
    *,
    layer_gap: float = 40.0,
    node_gap: float = 16.0,
    port_gap: float = 12.0,
    margin: float = 16.0,
    sweeps: int = 12,
) -> Layout:
    """Lay out nodes ``0..n-1`` (sizes ``(w, h)``) joined by ``(src, dst, arg)`` edges.

    Every edge must point from a lower to a higher node number (a topological
    numbering). Argument ``arg`` of a node enters at its own port on the left
    side, ``port_gap`` apart, so ``x * x`` shows two separate edges.
    """
    n = len(sizes)
    for s, d, _ in edges:
        if not 0 <= s < d < n:
            raise ValueError(f"edge ({s} -> {d}) does not go from a lower to a higher node number")
    layer = _layers(n, edges)
    n_layers = max(layer, default=-1) + 1

    # Chains of vertices per edge: real nodes 0..n-1, dummies n.. in between.
    vlayer = list(layer)
    chains: list[list[int]] = []
    for s, d, _ in edges:
        chain = [s]
        for lay in range(layer[s] + 1, layer[d]):
            vlayer.append(lay)
            chain.append(len(vlayer) - 1)
        chain.append(d)
        chains.append(chain)
    nv = len(vlayer)
    preds: list[list[int]] = [[] for _ in range(nv)]
    succs: list[list[int]] = [[] for _ in range(nv)]
    for chain in chains:
        for a, b in zip(chain, chain[1:]):
            succs[a].append(b)
            preds[b].append(a)

    order = [[] for _ in range(n_layers)]  # type: list[list[int]]
    for v in range(nv):
        order[vlayer[v]].append(v)
    order = _reduce_crossings(order, preds, succs, sweeps)

    heights = [sizes[v][1] if v < n else 0.0 for v in range(nv)]
    ys = _vertical_positions(order, preds, succs, heights, node_gap)

    widths = [max((sizes[v][0] for v in lay if v < n), default=0.0) for lay in order]
    xs_layer = []
    x = margin
    for w in widths:
        xs_layer.append(x + w / 2)
        x += w + layer_gap
    width = x - layer_gap + margin

    top = min((ys[v] - heights[v] / 2 for v in range(nv)), default=0.0)
    shift = margin - top
    boxes = [Box(xs_layer[layer[v]], ys[v] + shift, sizes[v][0], sizes[v][1]) for v in range(n)]
    height = max((b.bottom for b in boxes), default=0.0) + margin
    for v in range(n, nv):
        height = max(height, ys[v] + shift + margin)

    n_args = [0] * n
    for _, d, k in edges:
        n_args[d] = max(n_args[d], k + 1)
    routes = []
    for (s, d, k), chain in zip(edges, chains):
        src, dst = boxes[s], boxes[d]
        port = (k - (n_args[d] - 1) / 2) * min(port_gap, dst.h / max(n_args[d], 1))
        points = [(src.right, src.cy)]
        points += [(xs_layer[vlayer[v]], ys[v] + shift) for v in chain[1:-1]]
        points.append((dst.left, dst.cy + port))
        routes.append(points)
    layers_real = [[v for v in lay if v < n] for lay in order]
    return Layout(boxes, routes, layers_real, width, height)


def _layers(n: int, edges: Sequence[tuple[int, int, int]]) -> list[int]:
    inputs: list[list[int]] = [[] for _ in range(n)]
    consumers: list[list[int]] = [[] for _ in range(n)]
    for s, d, _ in edges:
        inputs[d].append(s)
        consumers[s].append(d)
    layer = [0] * n
    for v in range(n):  # node numbers are topological
        if inputs[v]:
            layer[v] = 1 + max(layer[u] for u in inputs[v])
    for v in range(n):
        if not inputs[v] and consumers[v]:
            layer[v] = min(layer[c] for c in consumers[v]) - 1
    return layer


def _reduce_crossings(
    order: list[list[int]], preds: list[list[int]], succs: list[list[int]], sweeps: int
) -> list[list[int]]:
    best = [list(lay) for lay in order]
    best_crossings = _crossings(order, succs)
    for sweep in range(sweeps):
        if best_crossings == 0:
            break
        down = sweep % 2 == 0
        rng = range(1, len(order)) if down else range(len(order) - 2, -1, -1)
        for i in rng:
            fixed = order[i - 1] if down else order[i + 1]
            pos = {v: p for p, v in enumerate(fixed)}
            nbrs = preds if down else succs
            keyed = []
            for p, v in enumerate(order[i]):
                ps = [pos[u] for u in nbrs[v]]
                # nodes without neighbours on that side keep their place
                keyed.append((sum(ps) / len(ps) if ps else float(p), p, v))
            keyed.sort()
            order[i] = [v for _, _, v in keyed]
        c = _crossings(order, succs)
        if c < best_crossings:
            best_crossings = c
            best = [list(lay) for lay in order]
    return best


def _crossings(order: list[list[int]], succs: list[list[int]]) -> int:
    """Edge crossings between adjacent layers (inversions, counted with a Fenwick tree)."""
    total = 0
    for upper, lower in zip(order, order[1:]):
        pos = {v: p for p, v in enumerate(lower)}
        ends = [pos[w] for v in upper for w in sorted(succs[v], key=pos.__getitem__)]
        tree = [0] * (len(lower) + 1)
        seen = 0
        for e in ends:
            # count earlier edges that end strictly after e
            i, not_after = e + 1, 0
            while i > 0:
                not_after += tree[i]
                i -= i & -i
            total += seen - not_after
            i = e + 1
            while i <= len(lower):
                tree[i] += 1
                i += i & -i
            seen += 1
    return total


def _vertical_positions(
    order: list[list[int]],
    preds: list[list[int]],
    succs: list[list[int]],
    heights: list[float],
    gap: float,
) -> list[float]:
    ys = [0.0] * len(heights)
    for lay in order:  # start stacked and centred on 0
        y = 0.0
        for i, v in enumerate(lay):
            if i:
                y += _separation(heights, lay[i - 1], v, gap)
            ys[v] = y
        for v in lay:
            ys[v] -= y / 2
    for sweep in range(8):
        down = sweep % 2 == 0
        layers = order[1:] if down else order[-2::-1]
        for lay in layers:
            wanted = []
            for v in lay:
                nbrs = preds[v] if down else succs[v]
                wanted.append(sum(ys[u] for u in nbrs) / len(nbrs) if nbrs else ys[v])
            for v, y in zip(lay, _ordered_with_gaps(lay, wanted, heights, gap)):
                ys[v] = y
    return ys


def _separation(heights: list[float], a: int, b: int, gap: float) -> float:
    g = gap if heights[a] and heights[b] else gap / 2  # dummies may pass closer
    return (heights[a] + heights[b]) / 2 + g


def _ordered_with_gaps(
    lay: list[int], wanted: list[float], heights: list[float], gap: float
) -> list[float]:
    """Positions closest (least squares) to ``wanted`` that keep the order and the gaps.

    With offsets o_i (the summed minimum separations above node i) the constraints
    y_i >= y_{i-1} + sep become q_i >= q_{i-1} for q_i = y_i - o_i: an isotonic
    regression, solved by pooling adjacent violators.
    """
    offsets = [0.0]
    for a, b in zip(lay, lay[1:]):
        offsets.append(offsets[-1] + _separation(heights, a, b, gap))
    blocks: list[list[float]] = []  # [mean, count]
    for w, o in zip(wanted, offsets):
        blocks.append([w - o, 1.0])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, c2 = blocks.pop()
            m1, c1 = blocks[-1]
            blocks[-1] = [(m1 * c1 + m2 * c2) / (c1 + c2), c1 + c2]
    q = [m for m, c in blocks for _ in range(int(c))]
    return [qi + o for qi, o in zip(q, offsets)]
