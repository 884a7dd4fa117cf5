"""gw.viz.graph: the nodes and edges of known expressions, values and gradients, path counts."""

from collections import Counter

import numpy as np
import pytest

import gradwell as gw
from gradwell.autograd.engine import GraphReleasedError
from gradwell.viz.summary import number


def scalar(v, name=None):
    t = gw.tensor(v, dtype=np.float64, requires_grad=True)
    t.name = name
    return t


def test_counts_for_known_expressions():
    x, y = scalar(2.0, "x"), scalar(3.0, "y")
    g = gw.viz.graph(x * y + x)
    # x, y, mul, add; mul has two inputs, add two: four edges
    assert [n.op for n in g.nodes] == ["input", "input", "mul", "add"]
    assert len(g.edges) == 4
    assert g.output == 3

    g = gw.viz.graph(x * x)  # one node for x, used twice: two edges into the product
    assert [n.op for n in g.nodes] == ["input", "mul"]
    assert sorted((e.src, e.dst, e.arg) for e in g.edges) == [(0, 1, 0), (0, 1, 1)]


def test_shared_sub_result_appears_once():
    x = scalar(0.5, "x")
    h = gw.tanh(x)
    out = h * h + h  # h is used three times
    g = gw.viz.graph(out)
    assert Counter(n.op for n in g.nodes) == {"input": 1, "tanh": 1, "mul": 1, "add": 1}
    h_id = next(n.id for n in g.nodes if n.op == "tanh")
    assert len(g.consumers_of(h_id)) == 3
    assert g.tensors[h_id] is h


def test_nodes_come_in_topological_order():
    x = scalar(0.3, "x")
    a = gw.sigmoid(x) * gw.exp(x)
    out = gw.tanh(a) + a * x
    g = gw.viz.graph(out)
    for e in g.edges:
        assert e.src < e.dst
    assert g.output == len(g.nodes) - 1


def test_constants_are_drawn_at_each_use():
    # The engine shares one tensor per Python number; it carries no gradient, so each
    # use gets its own box instead of one long edge across the drawing.
    x = scalar(1.0, "x")
    g = gw.viz.graph(x * 2.0 + (x + 1.0) * 2.0)
    assert [n.value for n in g.nodes if n.op == "constant"] == ["2", "1", "2"]
    assert all(len(g.consumers_of(n.id)) == 1 for n in g.nodes if n.op == "constant")


def test_values_and_gradients_equal_the_engines():
    rng = np.random.default_rng(0)
    w = gw.tensor(rng.normal(size=(3, 2)), dtype=np.float64, requires_grad=True)
    b = gw.tensor(rng.normal(size=2), dtype=np.float64, requires_grad=True)
    x = gw.tensor(rng.normal(size=(4, 3)), dtype=np.float64)
    h = gw.tanh(x @ w + b)
    loss = (h * h).mean() + gw.sigmoid(h).sum()
    g = gw.viz.graph(loss, gradients=True)

    assert w.grad is None and b.grad is None  # no .grad was touched
    requiring = [t for t in g.tensors if t.requires_grad]
    expected = gw.grad(loss, requiring, retain_graph=True)
    for t, e in zip(requiring, expected):
        i = next(i for i, u in enumerate(g.tensors) if u is t)
        np.testing.assert_allclose(g.gradients[i], e.numpy(), rtol=1e-12)
        assert g.nodes[i].grad == gw.viz.summary.summarize(e.numpy())
    for n, t in zip(g.nodes, g.tensors):
        assert n.value == gw.viz.summary.summarize(t.numpy())
        assert n.shape == t.shape and n.dtype == str(t.dtype)
    loss.backward()  # the graph is still there for the user
    w_index = next(i for i, t in enumerate(requiring) if t is w)
    np.testing.assert_allclose(w.grad.numpy(), expected[w_index].numpy())


def test_edge_gradients_sum_to_each_nodes_gradient():
    x, y = scalar(0.7, "x"), scalar(-1.2, "y")
    a = x * y
    out = gw.tanh(a) * a + a / y + x
    g = gw.viz.graph(out, gradients=True)
    for n in g.nodes:
        sent = [g.edge_gradients[g.edges.index(e)] for e in g.consumers_of(n.id)]
        sent = [s for s in sent if s is not None]
        if n.id == g.output:
            assert g.gradients[n.id] == pytest.approx(1.0)
        elif n.requires_grad:
            assert sum(sent) == pytest.approx(float(g.gradients[n.id]), rel=1e-12)


def test_edge_gradient_of_a_product_is_the_other_factor_times_upstream():
    a, b = scalar(3.0, "a"), scalar(-2.0, "b")
    out = a * b * 5.0  # d out / d(a*b) = 5
    g = gw.viz.graph(out, gradients=True)
    into = {g.nodes[e.src].name: g.edge_gradients[i] for i, e in enumerate(g.edges)}
    assert float(into["a"]) == pytest.approx(5.0 * -2.0)
    assert float(into["b"]) == pytest.approx(5.0 * 3.0)


def test_gradient_summaries_of_leaves_after_the_users_backward():
    x = scalar(2.0, "x")
    y = x * x * x
    y.backward(retain_graph=True)
    g = gw.viz.graph(y)  # leaves show the .grad the user computed; ops none
    assert g.nodes[0].grad == number(12.0)
    assert g.nodes[-1].grad is None


def test_diamond_stack_has_two_to_the_k_paths():
    for k in (1, 2, 5, 10):
        x = scalar(0.1, "x")
        h = x
        for _ in range(k):
            h = gw.tanh(h) + gw.sigmoid(h)  # two ways from one level to the next
        g = gw.viz.graph(h)
        assert g.count_paths() == 2**k
        assert g.gradient_products() == 4 * k  # backprop: one product per edge
        # each path is tanh-then-add or sigmoid-then-add per level: 2k factors
        assert g.count_path_factors() == 2**k * 2 * k


def test_path_count_is_exact_beyond_floating_point():
    x = scalar(0.5, "x")
    h = x
    for _ in range(120):
        h = h * h  # two edges per level: 2**120 paths
    g = gw.viz.graph(h)
    assert g.count_paths() == 2**120
    assert isinstance(g.count_paths(), int)


def test_paths_to_output_per_node():
    x, y = scalar(1.0, "x"), scalar(2.0, "y")
    a = x * y
    out = a + a * x
    g = gw.viz.graph(out)
    paths = dict(zip([n.name or n.op for n in g.nodes], g.paths_to_output()))
    # from a: a -> add, a -> mul -> add; from x: via a (2 each) plus x -> mul -> add
    assert paths["add"] == 1
    assert paths["x"] == 3 and paths["y"] == 2
    assert g.count_paths() == 5


def test_deep_chain_needs_no_recursion():
    x = scalar(0.5, "x")
    h = x
    for _ in range(3000):
        h = gw.tanh(h)
    g = gw.viz.graph(h, gradients=True)
    assert len(g.nodes) == 3001 and g.count_paths() == 1
    assert g.gradients[0] is not None


def test_freed_graph_is_a_clear_error():
    x = scalar(2.0, "x")
    y = gw.tanh(x) * x
    y.backward()
    with pytest.raises(GraphReleasedError, match="retain_graph=True"):
        gw.viz.graph(y)


def test_bad_arguments():
    with pytest.raises(TypeError, match="gradwell Tensor"):
        gw.viz.graph(np.ones(3))
    x = gw.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(ValueError, match="one-element output"):
        gw.viz.graph(x * 2, gradients=True)
    with pytest.raises(ValueError, match="requires grad"):
        gw.viz.graph(gw.tensor(1.0) * 2, gradients=True)
    with pytest.raises(TypeError, match="named_parameters"):
        gw.viz.graph(x * 2, model=object())


def test_a_leaf_is_a_graph_of_one_node():
    x = scalar(4.0, "x")
    g = gw.viz.graph(x, gradients=True)
    assert len(g.nodes) == 1 and g.edges == [] and g.count_paths() == 1
    assert g.nodes[0].grad == "1"


def test_parameter_names_and_modules_from_a_model():
    model = gw.nn.Sequential(gw.nn.Linear(2, 3, rng=0), gw.nn.Tanh(), gw.nn.Linear(3, 1, rng=1))
    x = gw.tensor([[0.5, -1.0]])
    with gw.viz.trace() as tr:
        loss = model(x).sum()
    g = gw.viz.graph(loss, model=model, trace=tr)
    params = {n.name: n for n in g.nodes if n.op == "parameter"}
    assert set(params) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    assert params["0.weight"].shape == (3, 2)
    by_op = {n.op: n.module for n in g.nodes if not n.is_leaf}
    assert by_op["tanh"] == "1 (Tanh)"
    assert by_op["sum"] is None  # made outside the model
    linear_modules = sorted(n.module for n in g.nodes if n.op == "linear")
    assert linear_modules == ["0 (Linear)", "2 (Linear)"]
    x_node = next(n for n in g.nodes if n.op == "input")
    assert x_node.shape == (1, 2) and not x_node.requires_grad


def test_trace_stops_recording_when_closed():
    observers = gw.autograd.recording.observers
    before = observers.op
    with gw.viz.trace():
        assert len(observers.op) == len(before) + 1
    assert observers.op == before
