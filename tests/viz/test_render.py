"""Drawing graphs: DOT text, SVG markup, and the layered layout's geometry."""

import re
import xml.etree.ElementTree as ET
from collections import Counter

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import gradwell as gw
from gradwell.viz.layout import _crossings, _ordered_with_gaps

SVG = "{http://www.w3.org/2000/svg}"


def small_graph():
    x = gw.tensor(0.5, dtype=np.float64, requires_grad=True)
    x.name = 'x "in"'  # a quote, to check escaping
    w = gw.tensor(-2.0, dtype=np.float64, requires_grad=True)
    w.name = "w"
    h = gw.tanh(x * w)
    return gw.viz.graph(h * h + 1.0, gradients=True)


def parse_dot(text):
    """Nodes (id -> label) and edges (multiset of (src, dst)) of our DOT output."""
    string = r'"((?:[^"\\]|\\.)*)"'
    nodes = dict(re.findall(r"^\s*n(\d+) \[label=" + string, text, re.M))
    edges = Counter(re.findall(r"^\s*n(\d+) -> n(\d+)", text, re.M))
    return {int(k): v for k, v in nodes.items()}, {
        (int(a), int(b)): c for (a, b), c in edges.items()
    }


def test_dot_has_every_node_and_edge():
    g = small_graph()
    text = g.to_dot()
    assert text.startswith("digraph gradwell {") and text.rstrip().endswith("}")
    assert "rankdir=LR" in text
    nodes, edges = parse_dot(text)
    assert set(nodes) == {n.id for n in g.nodes}
    assert edges == dict(Counter((e.src, e.dst) for e in g.edges))
    # the product h * h is drawn as two edges from h
    h = next(n.id for n in g.nodes if n.op == "tanh")
    square = next(e.dst for e in g.edges if e.src == h)
    assert edges[(h, square)] == 2


def test_dot_labels_show_value_and_gradient_escaped():
    g = small_graph()
    nodes, _ = parse_dot(g.to_dot())
    x = next(n for n in g.nodes if n.name == 'x "in"')
    assert nodes[x.id].split("\\n") == ['x \\"in\\"', "= 0.5", f"grad {x.grad}"]
    tanh = next(n for n in g.nodes if n.op == "tanh")
    assert nodes[tanh.id].startswith("tanh\\n= ")


def test_dot_clusters_modules():
    model = gw.nn.Sequential(gw.nn.Linear(2, 2, rng=0), gw.nn.ReLU())
    with gw.viz.trace() as tr:
        out = model(gw.tensor([[1.0, 2.0]])).sum()
    text = gw.viz.graph(out, model=model, trace=tr).to_dot()
    assert re.search(r'subgraph cluster_\d+ \{\n\s+label="0 \(Linear\)"', text)
    assert re.search(r'label="1 \(ReLU\)"', text)


def test_svg_is_well_formed_with_one_shape_per_node_and_edge():
    g = small_graph()
    root = ET.fromstring(g.to_svg().split("\n", 1)[1])
    assert root.tag == SVG + "svg"
    groups = [el for el in root.iter(SVG + "g") if "node" in el.get("class", "").split()]
    paths = [el for el in root.iter(SVG + "path") if el.get("class") == "edge"]
    assert len(groups) == len(g.nodes) and len(paths) == len(g.edges)
    texts = " ".join(t.text or "" for t in root.iter(SVG + "text"))
    assert "tanh" in texts and "0.5" in texts and "∂ " in texts


def boxes_overlap(a, b, gap=0.0):
    return not (
        a.right + gap <= b.left
        or b.right + gap <= a.left
        or a.bottom + gap <= b.top
        or b.bottom + gap <= a.top
    )


def check_layout(lay, edges, node_gap):
    for layer in lay.layers:
        ys = sorted((lay.boxes[v] for v in layer), key=lambda b: b.cy)
        for a, b in zip(ys, ys[1:]):
            assert b.top - a.bottom >= node_gap - 1e-6, "nodes in a layer overlap"
    for i, a in enumerate(lay.boxes):
        for b in lay.boxes[i + 1 :]:
            assert not boxes_overlap(a, b)
    for (s, d, _), route in zip(edges, lay.routes):
        assert lay.boxes[s].right < lay.boxes[d].left  # inputs to the left of their ops
        xs = [p[0] for p in route]
        assert xs == sorted(xs)  # an edge never turns back
        assert route[0] == (lay.boxes[s].right, lay.boxes[s].cy)
    for b in lay.boxes:
        assert 0 <= b.left and b.right <= lay.width and 0 <= b.top and b.bottom <= lay.height


def test_layout_of_the_scalar_mlp_has_no_overlaps():
    from gradwell.viz.examples import DEFAULT_WEIGHTS, DEFAULT_X, DEFAULT_Y

    loss = gw.viz.scalar_mlp(DEFAULT_WEIGHTS, DEFAULT_X, DEFAULT_Y)
    g = gw.viz.graph(loss)
    sizes = [(60.0, 40.0)] * len(g.nodes)
    edges = [(e.src, e.dst, e.arg) for e in g.edges]
    lay = gw.viz.layered_layout(sizes, edges, node_gap=16.0)
    check_layout(lay, edges, 16.0)
    # weights sit in the layer just before the product that uses them
    layer_of = {v: i for i, layer in enumerate(lay.layers) for v in layer}
    for e in g.edges:
        if g.nodes[e.src].op == "parameter":
            assert layer_of[e.dst] == layer_of[e.src] + 1


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_layout_of_random_dags_has_no_overlaps(data):
    n = data.draw(st.integers(1, 25))
    edges = []
    for d in range(1, n):
        k = data.draw(st.integers(0, min(3, d)))
        for arg in range(k):
            edges.append((data.draw(st.integers(0, d - 1)), d, arg))
    sizes = [(data.draw(st.floats(10, 120)), data.draw(st.floats(10, 60))) for _ in range(n)]
    lay = gw.viz.layered_layout(sizes, edges, node_gap=12.0)
    check_layout(lay, edges, 12.0)
    assert sorted(v for layer in lay.layers for v in layer) == list(range(n))


def test_crossings_are_removed_when_possible():
    # Two chains a0->a1->a2 and b0->b1->b2, listed so that the middle layer starts crossed.
    sizes = [(20.0, 20.0)] * 6
    edges = [(0, 3, 0), (1, 2, 0), (2, 4, 0), (3, 5, 0)]
    lay = gw.viz.layered_layout(sizes, edges)
    succs = [[] for _ in range(6)]
    for s, d, _ in edges:
        succs[s].append(d)
    assert _crossings(lay.layers, succs) == 0


def test_crossing_count():
    # upper [0, 1], lower [2, 3]: 0->3 and 1->2 cross once; 0->2 and 1->3 do not
    succs = [[3], [2], [], []]
    assert _crossings([[0, 1], [2, 3]], succs) == 1
    succs = [[2], [3], [], []]
    assert _crossings([[0, 1], [2, 3]], succs) == 0


def test_positions_keep_order_and_gaps_as_close_as_possible():
    heights = [10.0, 10.0, 10.0]
    # wanted positions all equal: least squares with gaps 10 + 5 spreads them evenly
    ys = _ordered_with_gaps([0, 1, 2], [0.0, 0.0, 0.0], heights, 5.0)
    assert ys == [-15.0, 0.0, 15.0]
    # wanted positions already far apart are kept
    assert _ordered_with_gaps([0, 1, 2], [0.0, 40.0, 100.0], heights, 5.0) == [0.0, 40.0, 100.0]


def test_edges_must_follow_node_order():
    import pytest

    with pytest.raises(ValueError, match="lower to a higher"):
        gw.viz.layered_layout([(1.0, 1.0)] * 2, [(1, 0, 0)])
