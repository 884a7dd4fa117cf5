"""gw.viz.explain's page data, scalar_mlp, expressions and the `gradwell explain` command."""

import json
import math
import re
import warnings

import numpy as np
import pytest

import gradwell as gw
from gradwell.cli import main
from gradwell.viz.examples import DEFAULT_WEIGHTS, DEFAULT_X, DEFAULT_Y, expression
from gradwell.viz.summary import number


def page_data(path):
    html = path.read_text(encoding="utf-8")
    m = re.search(r'<script type="application/json" id="gw-data">(.*?)</script>', html, re.S)
    assert m, "no data block in the page"
    return html, json.loads(m.group(1))


def scalar(v, name):
    t = gw.tensor(v, dtype=np.float64, requires_grad=True)
    t.name = name
    return t


def test_page_is_self_contained(tmp_path):
    x = scalar(0.5, "x")
    path = gw.viz.explain(gw.tanh(x * x + x), tmp_path / "p.html")
    html, data = page_data(path)
    assert path == (tmp_path / "p.html").resolve()
    # nothing is fetched: no external scripts, styles, images or fonts
    assert not re.search(r"<script[^>]+src=|<link[^>]+stylesheet|<img|@import|url\(http", html)
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", html))
    assert urls <= {"http://www.w3.org/2000/svg"}  # the SVG namespace name, never fetched
    assert [v["id"] for v in data["views"]] == ["scalars"]
    assert "/*GW:" not in html and "<!--GW:" not in html  # every placeholder was filled


def test_steps_walk_forward_then_backward_with_the_engines_numbers(tmp_path):
    x, y = scalar(0.5, "x"), scalar(-1.5, "y")
    a = x * y
    f = gw.tanh(a) + a * x  # a feeds two ops
    f.name = "f"
    g = gw.viz.graph(f, gradients=True)
    _, data = page_data(gw.viz.explain(f, tmp_path / "p.html"))
    view = data["views"][0]
    steps = view["steps"]
    ops = [n for n in g.nodes if not n.is_leaf]
    assert len(steps) == 1 + 2 * len(ops)
    forward = [s for s in steps if s["phase"] == "forward"]
    backward = [s for s in steps if s["phase"] == "backward"]
    assert len(forward) == 1 + len(ops) and len(backward) == len(ops)

    # forward: every op after its inputs, showing the value the engine computed
    known = {n for n, field, _, _ in forward[0]["set"] if field == "v"}
    assert known == {n.id for n in g.nodes if n.is_leaf}
    for s in forward[1:]:
        node = s["node"]
        assert {e.src for e in g.inputs_of(node)} <= known
        known.add(node)
        assert [node, "v", number(g.tensors[node].item()), "known"] in s["set"]

    # backward: reverse order, each node's gradient once, equal to the engine's
    order = [s["node"] for s in backward]
    assert order[0] == g.output
    position = {n: i for i, n in enumerate(order)}
    for e in g.edges:
        if not g.nodes[e.src].is_leaf:
            assert position[e.dst] < position[e.src]  # consumers before producers
    grads = gw.grad(f, g.tensors, retain_graph=True)
    expected = {id(t): d.item() for t, d in zip(g.tensors, grads)}
    for s in backward:
        t = g.tensors[s["node"]]
        assert [s["node"], "g", number(expected[id(t)]), "grad-done"] == s["set"][0]

    # the node with two consumers shows the sum of their two contributions
    a_id = next(i for i, t in enumerate(g.tensors) if t is a)
    a_step = backward[position[a_id]]
    head, text = a_step["rows"][0]
    assert head == "sum of 2"
    terms, total = text.split(" = ")
    assert sum(float(v) for v in terms.split(" + ")) == pytest.approx(float(total), rel=1e-3)
    assert float(total) == pytest.approx(expected[id(a)], rel=1e-3)

    # the counter: products done grow to one per gradient-carrying edge
    assert [s["done"] for s in backward] == sorted(s["done"] for s in backward)
    assert backward[-1]["done"] == view["totals"]["products"] == len(g.edges)
    assert view["totals"]["paths"] == str(g.count_paths())


def test_scalar_backward_rows_show_upstream_times_local(tmp_path):
    x, w = scalar(0.8, "x"), scalar(-0.5, "w")
    h = gw.tanh(w * x)
    h.name = "h"
    _, data = page_data(gw.viz.explain(h, tmp_path / "p.html"))
    steps = data["views"][0]["steps"]
    mul_step = next(s for s in steps if s["phase"] == "backward" and "(mul)" in s["title"])
    rows = dict(mul_step["rows"])
    upstream = 1 - math.tanh(-0.4) ** 2  # dh/d(wx)
    m = re.match(r"upstream (\S+) × local (\S+) = (\S+)", rows["→ w"])
    assert m and [float(v) for v in m.groups()] == pytest.approx(
        [upstream, 0.8, upstream * 0.8], rel=1e-3
    )
    assert "∂(a × b)/∂a = b" in rows["→ w"]


def test_explain_leaves_grads_alone_and_the_graph_usable(tmp_path):
    w = gw.tensor([[0.5, -0.2]], requires_grad=True)
    loss = ((w * 3.0).sum() - 1.0) ** 2
    gw.viz.explain(loss, tmp_path / "p.html")
    assert w.grad is None
    loss.backward()
    assert w.grad is not None


def test_explain_runs_a_forward_function_and_names_modules(tmp_path):
    model, x, y = gw.viz.examples.default_network("relu")
    loss_fn = gw.nn.MSELoss()
    page = gw.viz.explain(
        lambda: loss_fn(model(gw.tensor(x)), gw.tensor(y)), tmp_path / "p.html", model=model
    )
    html, data = page_data(page)
    assert [v["id"] for v in data["views"]] == ["tensors"]
    assert "0 (Linear)" in html and "0.weight" in html and "1 (ReLU)" in html


def test_explain_errors(tmp_path):
    x = scalar(1.0, "x")
    y = x * 2.0
    with pytest.raises(ValueError, match="one element"):
        gw.viz.explain(gw.tensor([1.0, 2.0], requires_grad=True) * 2, tmp_path / "p.html")
    with pytest.raises(ValueError, match="requires grad"):
        gw.viz.explain(gw.tensor(1.0) * 2, tmp_path / "p.html")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        gw.viz.explain(y, tmp_path / "missing" / "p.html")
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        gw.viz.explain(y, tmp_path / "p.html")
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_scalar_mlp_matches_the_tensor_model():
    model, x, y = gw.viz.examples.default_network("tanh")
    loss = gw.nn.MSELoss()(model(gw.tensor(x)), gw.tensor(y))
    loss.backward()
    s = gw.viz.scalar_mlp(model, x[0], y[0])
    assert s.item() == pytest.approx(loss.item(), rel=1e-5)
    g = gw.viz.graph(s, gradients=True)
    grads = {n.name: g.gradients[n.id] for n in g.nodes if n.op == "parameter"}
    for number_, index in ((1, 0), (2, 2), (3, 4)):
        layer = model[index]
        for (j, i), v in np.ndenumerate(layer.weight.grad.numpy()):
            assert float(grads[f"W{number_}[{j},{i}]"]) == pytest.approx(v, rel=1e-4, abs=1e-6)
        for j, v in enumerate(layer.bias.grad.numpy()):
            assert float(grads[f"b{number_}[{j}]"]) == pytest.approx(v, rel=1e-4, abs=1e-6)


def test_scalar_mlp_one_node_per_number():
    loss = gw.viz.scalar_mlp(DEFAULT_WEIGHTS, DEFAULT_X, DEFAULT_Y, activation="relu")
    g = gw.viz.graph(loss)
    ops = [n.op for n in g.nodes]
    weights = sum(np.size(w) for w, _ in DEFAULT_WEIGHTS)
    biases = sum(np.size(b) for _, b in DEFAULT_WEIGHTS)
    assert ops.count("parameter") == weights + biases
    assert ops.count("mul") == weights  # one product per weight
    assert ops.count("relu") == 3 + 2  # hidden neurons only; the output is linear
    # each neuron adds its products and its bias: (fan-in - 1) + 1 additions
    assert ops.count("add") == sum(np.size(w) for w, _ in DEFAULT_WEIGHTS)
    names = {n.name for n in g.nodes}
    assert {"x[0]", "W1[2,1]", "b2[1]", "z1[0]", "h2[1]", "out[0]", "y[0]", "loss"} <= names


def test_scalar_mlp_errors():
    with pytest.raises(ValueError, match=r"layer 1: expected W of shape \(out, 2\)"):
        gw.viz.scalar_mlp([([[1.0, 2.0, 3.0]], [0.0])], [1.0, 2.0], [0.0])
    with pytest.raises(ValueError, match="at most 200 weights"):
        gw.viz.scalar_mlp([(np.ones((20, 20)), np.zeros(20))], np.ones(20), np.zeros(20))
    with pytest.raises(ValueError, match="unknown activation 'cube'"):
        gw.viz.scalar_mlp(DEFAULT_WEIGHTS, DEFAULT_X, DEFAULT_Y, activation="cube")
    with pytest.raises(ValueError, match="expected 1 target"):
        gw.viz.scalar_mlp(DEFAULT_WEIGHTS, DEFAULT_X, [1.0, 2.0])
    bn = gw.nn.Sequential(gw.nn.Linear(2, 2), gw.nn.BatchNorm1d(2))
    with pytest.raises(ValueError, match=r"module 1 \(BatchNorm1d\) is not supported"):
        gw.viz.scalar_mlp(bn, [1.0, 2.0], [0.0, 0.0])


def test_expression_evaluates_with_gradwell_ops():
    f = expression("tanh(x * y) + x ** 2 - exp(-y) / 2", 0.5, 1.5)
    assert f.item() == pytest.approx(math.tanh(0.75) + 0.25 - math.exp(-1.5) / 2)
    assert f.dtype == np.float64


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('true')",
        "x.data",
        "(lambda: x)()",
        "x[0]",
        "open('f')",
        "tanh(x, out=y)",
        "[x, y]",
        "x if y else 1",
        "True + x",
    ],
)
def test_expression_rejects_anything_but_arithmetic(text):
    with pytest.raises(ValueError, match="is not allowed"):
        expression(text, 1.0, 2.0)


def test_expression_errors():
    with pytest.raises(ValueError, match="not a valid expression"):
        expression("x +", 1.0, 2.0)
    with pytest.raises(ValueError, match="does not depend on x or y"):
        expression("2 + 3", 1.0, 2.0)


def test_cli_default_page(tmp_path, capsys):
    out = tmp_path / "bp.html"
    assert main(["explain", "-o", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out.resolve())
    html, data = page_data(out)
    assert [v["id"] for v in data["views"]] == ["neurons", "tensors"]
    neurons = data["views"][0]
    assert (
        neurons["totals"]["products"]
        == gw.viz.graph(
            gw.viz.scalar_mlp(DEFAULT_WEIGHTS, DEFAULT_X, DEFAULT_Y)
        ).gradient_products()
    )


def test_cli_expression(tmp_path, capsys):
    out = tmp_path / "e.html"
    assert (
        main(["explain", "--expr", "x * y + tanh(x)", "--x", "1", "--y", "2", "-o", str(out)]) == 0
    )
    _, data = page_data(out)
    steps = data["views"][0]["steps"]
    final = [s for s in steps if s["phase"] == "forward"][-1]
    assert final["set"][0][2] == number(2 + math.tanh(1))
    assert main(["explain", "--expr", "x.__class__", "-o", str(out)]) == 2
    assert "is not allowed" in capsys.readouterr().err


def test_cli_expression_at_a_point_where_it_is_not_finite(tmp_path, capsys):
    out = tmp_path / "e.html"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's warnings must not escape the command
        assert main(["explain", "--expr", "log(x) + y", "--x", "-1", "-o", str(out)]) == 0
    _, data = page_data(out)
    final = [s for s in data["views"][0]["steps"] if s["phase"] == "forward"][-1]
    assert final["set"][0][2] == number(math.nan)  # shown on the page as it is
    captured = capsys.readouterr()
    assert captured.out.strip() == str(out)
    assert captured.err.count("\n") == 1  # one note, no source lines
    assert "note: not every value is finite (invalid value encountered in log)" in captured.err


def test_cli_saved_model(tmp_path, capsys):
    model, x, y = gw.viz.examples.default_network("tanh")
    ckpt = gw.save(tmp_path / "m.safetensors", model)
    out = tmp_path / "m.html"
    args = ["explain", "--model", str(ckpt), "--example", "0.5,-1", "--target", "1", "-o", str(out)]
    assert main(args) == 0
    _, data = page_data(out)
    expected = gw.nn.MSELoss()(model(gw.tensor(x)), gw.tensor(y)).item()
    forward = [s for s in data["views"][0]["steps"] if s["phase"] == "forward"]
    assert float(forward[-1]["set"][0][2]) == pytest.approx(expected, rel=1e-3)
    bad = ["explain", "--model", str(ckpt), "--example", "0.5", "--target", "1", "-o", str(out)]
    assert main(bad) == 2
    assert "takes 2 inputs" in capsys.readouterr().err


def test_a_leaf_used_twice_shows_its_sum_when_complete(tmp_path):
    x, y = scalar(2.0, "x"), scalar(3.0, "y")
    f = x * y + x  # df/dx = y + 1 = 4, from two contributions: 3 and 1
    _, data = page_data(gw.viz.explain(f, tmp_path / "p.html"))
    rows = [r for s in data["views"][0]["steps"] for r in s["rows"] if r[0] == "x done"]
    assert len(rows) == 1
    terms, total = rows[0][1].removeprefix("sum of 2: ").split(" = ")
    assert sorted(float(t) for t in terms.split(" + ")) == [1.0, 3.0]
    assert float(total) == 4.0
