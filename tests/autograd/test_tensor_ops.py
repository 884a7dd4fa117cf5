"""The everyday tensor ops built as composites: values against numpy (and PyTorch where
installed), gradients by central differences in float64."""

from __future__ import annotations

import numpy as np
import pytest

import gradwell as gw


def _x(shape, seed=0, positive=False):
    data = np.random.default_rng(seed).standard_normal(shape)
    return gw.tensor(np.abs(data) + 0.5 if positive else data, dtype="float64", requires_grad=True)


IDX = np.array([[0, 2, 2], [1, 0, 1]])

COMPOSITES = {
    "rsqrt": (gw.rsqrt, [(3, 4)], True, lambda a: 1 / np.sqrt(a)),
    "exp2": (gw.exp2, [(3, 4)], False, np.exp2),
    "log2": (gw.log2, [(3, 4)], True, np.log2),
    "log10": (gw.log10, [(3, 4)], True, np.log10),
    "index_select": (
        lambda a: gw.index_select(a, 1, [2, 0, 2]),
        [(2, 3)],
        False,
        lambda a: a[:, [2, 0, 2]],
    ),
    "gather": (
        lambda a: gw.gather(a, 1, IDX),
        [(2, 3)],
        False,
        lambda a: np.take_along_axis(a, IDX, 1),
    ),
    "masked_fill": (
        lambda a: gw.masked_fill(a, np.eye(3, dtype=bool), -1.0),
        [(3, 3)],
        False,
        lambda a: np.where(np.eye(3, dtype=bool), -1.0, a),
    ),
    "repeat": (lambda a: gw.repeat(a, 2, 1, 3), [(2, 3)], False, lambda a: np.tile(a, (2, 1, 3))),
    "repeat_interleave": (
        lambda a: gw.repeat_interleave(a, 2, dim=1),
        [(2, 3)],
        False,
        lambda a: np.repeat(a, 2, 1),
    ),
    "tril": (lambda a: gw.tril(a, -1), [(2, 3, 4)], False, lambda a: np.tril(a, -1)),
    "triu": (lambda a: gw.triu(a, 1), [(3, 4)], False, lambda a: np.triu(a, 1)),
    "diagonal": (lambda a: gw.diagonal(a, 1), [(3, 4)], False, lambda a: np.diagonal(a, 1)),
    "diagonal_batched": (
        lambda a: gw.diagonal(a, -1, 1, 2),
        [(2, 4, 3)],
        False,
        lambda a: np.diagonal(a, -1, 1, 2),
    ),
    "cumprod": (lambda a: gw.cumprod(a, 1), [(3, 5)], False, lambda a: np.cumprod(a, 1)),
    "prod": (lambda a: gw.prod(a, dim=0), [(4, 3)], False, lambda a: np.prod(a, 0)),
    "prod_all": (gw.prod, [(2, 3)], False, np.prod),
    "prod_keepdim": (
        lambda a: gw.prod(a, (0, 2), keepdims=True),
        [(2, 3, 2)],
        False,
        lambda a: np.prod(a, (0, 2), keepdims=True),
    ),
    "sort": (lambda a: gw.sort(a, dim=1)[0], [(3, 4)], False, lambda a: np.sort(a, 1)),
    "topk": (lambda a: gw.topk(a, 2)[0], [(3, 4)], False, lambda a: -np.sort(-a, -1)[:, :2]),
    "normalize": (
        lambda a: gw.normalize(a, dim=1),
        [(3, 4)],
        False,
        lambda a: a / np.linalg.norm(a, axis=1, keepdims=True),
    ),
    "cat": (
        lambda a: gw.cat([a, a * 2], dim=1),
        [(2, 3)],
        False,
        lambda a: np.concatenate([a, 2 * a], 1),
    ),
    "scatter_add": (lambda a, s: gw.scatter_add(a, 1, IDX, s), [(2, 3), (2, 3)], False, None),
    "scatter": (
        lambda a, s: gw.scatter(a, 0, np.array([[1, 0, 1]]), s),
        [(2, 3), (1, 3)],
        False,
        None,
    ),
}


@pytest.mark.parametrize("name", sorted(COMPOSITES))
def test_composite_values_and_gradients(name):
    fn, shapes, positive, reference = COMPOSITES[name]
    inputs = [_x(s, i, positive) for i, s in enumerate(shapes)]
    if reference is not None:
        np.testing.assert_allclose(
            fn(*inputs).data, reference(*[t.data for t in inputs]), rtol=1e-12
        )
    assert gw.gradcheck(fn, inputs)


def test_split_chunk_unbind():
    x = gw.arange(10.0).reshape(2, 5)
    assert [t.shape for t in gw.split(x, 2, dim=1)] == [(2, 2), (2, 2), (2, 1)]
    assert [t.shape for t in gw.split(x, [1, 4], 1)] == [(2, 1), (2, 4)]
    assert [t.shape for t in gw.chunk(x, 2, 1)] == [(2, 3), (2, 2)]
    rows = gw.unbind(x)
    np.testing.assert_array_equal(rows[1].data, [5, 6, 7, 8, 9])
    with pytest.raises(ValueError, match="add up"):
        gw.split(x, [1, 1], 1)
    y = _x((2, 5))
    assert gw.gradcheck(lambda a: gw.stack(gw.split(a, 2, 1)[:2]) * 1.0, [y])


def test_scatter_values():
    x = gw.zeros(2, 3)
    out = gw.scatter_add(x, 1, IDX, gw.ones(2, 3))
    np.testing.assert_array_equal(out.data, [[1, 0, 2], [1, 2, 0]])
    out = gw.scatter(gw.zeros(2, 3), 0, np.array([[1, 0, 1]]), gw.tensor([[5.0, 6.0, 7.0]]))
    np.testing.assert_array_equal(out.data, [[0, 6, 0], [5, 0, 7]])


def test_comparisons_indices_and_rounding():
    x = gw.tensor([[1.0, -2.5, 3.5], [np.nan, np.inf, 0.5]])
    np.testing.assert_array_equal(gw.isnan(x).data, np.isnan(x.data))
    np.testing.assert_array_equal(gw.isinf(x).data, np.isinf(x.data))
    assert gw.argmax(gw.tensor([1.0, 5.0, 2.0])).item() == 1
    np.testing.assert_array_equal(x[:1].argmax(dim=1).data, [2])
    np.testing.assert_array_equal(x[:1].argmin(1, keepdim=True).data, [[1]])
    np.testing.assert_array_equal(gw.argsort(x[:1], descending=True).data, [[2, 0, 1]])
    assert gw.all(gw.tensor([1, 2])).item() and not gw.any(gw.tensor([0, 0])).item()
    np.testing.assert_array_equal(gw.isclose(gw.tensor([1.0, 1.1]), 1.0).data, [True, False])
    y = gw.tensor([-2.5, -0.5, 0.5, 1.5, 2.7])
    for ours, theirs in [
        (gw.floor, np.floor),
        (gw.ceil, np.ceil),
        (gw.round, np.round),
        (gw.trunc, np.trunc),
    ]:
        np.testing.assert_array_equal(ours(y).data, theirs(y.data))
    np.testing.assert_allclose((y % 1.0).data, np.remainder(y.data, 1.0))
    np.testing.assert_allclose(gw.fmod(y, 1.0).data, np.fmod(y.data, 1.0))
    np.testing.assert_array_equal((y // 1.0).data, np.floor_divide(y.data, 1.0))
    values, indices = gw.topk(gw.tensor([3.0, 1.0, 4.0, 1.5]), 2, largest=False)
    np.testing.assert_array_equal(values.data, [1.0, 1.5])
    np.testing.assert_array_equal(indices.data, [1, 3])


def test_creation_ops():
    assert gw.linspace(0, 1, 5).data.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert gw.linspace(0, 1, 5).dtype == np.float32
    f = gw.full_like(gw.zeros(2, 3, dtype="float64"), 7.0)
    assert f.shape == (2, 3) and f.dtype == np.float64 and (f.data == 7).all()
    r = gw.randint(3, 9, (100,), rng=0)
    assert r.dtype == np.int64 and r.data.min() >= 3 and r.data.max() < 9
    a = np.arange(3.0)
    t = gw.from_numpy(a)
    a[0] = 5.0
    assert t.dtype == np.float64 and t.data[0] == 5.0
    assert gw.tensor([1.0], dtype=gw.float64).dtype == np.float64


def test_einsum_refuses_what_it_does_not_support():
    with pytest.raises(ValueError, match="output"):
        gw.einsum("ij,jk", gw.ones(2, 2), gw.ones(2, 2))
    with pytest.raises(ValueError, match="repeated"):
        gw.einsum("ii->i", gw.ones(2, 2))


def test_against_pytorch():
    torch = pytest.importorskip("torch")
    a = np.random.default_rng(0).standard_normal((3, 4))
    ta = torch.tensor(a, requires_grad=True)
    cases = [
        (lambda x: gw.cumprod(x, 1), lambda x: torch.cumprod(x, 1)),
        (lambda x: gw.gather(x, 1, IDX), lambda x: torch.gather(x, 1, torch.tensor(IDX))),
        (lambda x: gw.normalize(x), lambda x: torch.nn.functional.normalize(x)),
        (lambda x: gw.prod(x, 1), lambda x: torch.prod(x, 1)),
        (lambda x: gw.diagonal(x, 1), lambda x: torch.diagonal(x, 1)),
        (lambda x: gw.repeat(x, 2, 2), lambda x: x.repeat(2, 2)),
        (lambda x: gw.arctan(x) + gw.sinh(x), lambda x: torch.atan(x) + torch.sinh(x)),
        (lambda x: x % 0.7, lambda x: x % 0.7),
    ]
    for ours, theirs in cases:
        x = gw.tensor(a, dtype="float64", requires_grad=True)
        ta.grad = None
        out, ref = ours(x), theirs(ta)
        np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=1e-10)
        out.sum().backward()
        ref.sum().backward()
        np.testing.assert_allclose(x.grad.data, ta.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_pytorch_spellings():
    x = gw.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    assert x.size() == (2, 3) and x.size(1) == 3 and x.numel() == 6
    np.testing.assert_array_equal(x.sum(dim=1, keepdim=True).data, [[3.0], [12.0]])
    np.testing.assert_array_equal(x.mean(dim=0).data, [1.5, 2.5, 3.5])
    np.testing.assert_array_equal(x.max(dim=1).values.data, [2.0, 5.0])
    assert x.view(3, 2).shape == (3, 2) and x.view(-1).shape == (6,)
    np.testing.assert_array_equal(x.clamp(1, 4).data, np.clip(x.data, 1, 4))
    np.testing.assert_array_equal(x.pow(2).data, x.data**2)
    assert x.cpu() is x and x.to("cpu") is x and x.to(gw.float64).dtype == np.float64
    with pytest.raises(ValueError, match="CPU only"):
        x.to("cuda")
    with pytest.raises(TypeError, match="both"):
        x.sum(axis=0, dim=1)
    assert x.softmax(dim=0).shape == (2, 3) and x.unsqueeze(dim=0).shape == (1, 2, 3)
    x.sum().backward()
    x.grad.zero_()
    assert (x.grad.data == 0).all()
    layer = gw.nn.Linear(3, 2)
    assert sum(p.numel() for p in layer.parameters()) == 8
    assert layer.to("cpu") is layer
    with pytest.raises(ValueError, match="CPU only"):
        layer.to("cuda:0")
    drop = gw.nn.Dropout(p=0.2)
    assert drop.rate == drop.p == 0.2 and gw.nn.Dropout().rate == 0.5


def test_size_is_the_shape_not_a_count():
    x = gw.zeros(2, 3, 4)
    assert x.size() == (2, 3, 4) and x.size(1) == 3 and x.size(-1) == 4 and x.numel() == 24
    assert callable(x.size) and not isinstance(x.size, int)  # numpy's count is numel()
    with pytest.raises(IndexError):
        x.size(3)


def test_max_and_min_along_a_dim_give_values_and_indices():
    data = np.array([[1.0, 5.0, 5.0], [7.0, 0.0, 3.0]])
    x = gw.tensor(data, dtype="float64", requires_grad=True)
    full = x.max()
    assert isinstance(full, gw.Tensor) and full.item() == 7.0 and gw.min(x).item() == 0.0
    values, indices = x.max(dim=1)
    assert x.max(1).indices.tolist() == indices.tolist() == [1, 0]  # the first of ties
    assert values.tolist() == [5.0, 7.0] and indices.dtype == np.int64
    low = gw.min(x, dim=0, keepdim=True)
    assert low.values.shape == low.indices.shape == (1, 3) and low.indices.tolist() == [[0, 1, 1]]
    # numpy's spelling keeps numpy's meaning: the values alone, over one axis or several
    assert x.max(axis=1).tolist() == [5.0, 7.0] and x.min(axis=(0, 1)).item() == 0.0
    # as in PyTorch, the gradient of the values goes to the index picked
    values.sum().backward()
    np.testing.assert_array_equal(x.grad.data, [[0, 1, 0], [1, 0, 0]])
    torch = pytest.importorskip("torch")
    t = torch.tensor(data, requires_grad=True)
    t.max(dim=1).values.sum().backward()
    np.testing.assert_array_equal(x.grad.data, t.grad.numpy())
    assert gw.max(x, gw.tensor(4.0, dtype="float64")).tolist() == [[4, 5, 5], [7, 4, 4]]
    with pytest.raises(TypeError, match="both dim=1 and axis=0"):
        x.max(1, axis=0)


def test_fit_with_a_seed_repeats_a_run_with_dropout():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(96, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    model = gw.nn.Sequential(gw.nn.Linear(4, 16), gw.nn.ReLU(), gw.nn.Dropout(0.5),
                             gw.nn.Linear(16, 2))  # fmt: skip
    start = model.state_dict()
    weights = []
    for _ in range(2):  # the same model, from the same weights, twice
        model.load_state_dict(start)
        gw.fit(model, (X, y), loss="cross_entropy", optimizer="adam", epochs=2, seed=0,
               verbose=0, doctor=False)  # fmt: skip
        weights.append([p.numpy().copy() for p in model.parameters()])
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)
    # and the masks did change from epoch to epoch and with the seed
    drop = model[2]
    drop.reseed([0, 0, 0])
    first = drop(gw.ones(1, 64)).numpy()
    drop.reseed([0, 1, 0])
    assert not np.array_equal(first, drop(gw.ones(1, 64)).numpy())


def test_manual_seed_reseeds_a_dropout_made_before_it_but_not_one_with_its_own_rng():
    try:
        free, own = gw.nn.Dropout(0.5), gw.nn.Dropout(0.5, rng=7)
        masks = []
        for _ in range(2):
            gw.manual_seed(5)
            masks.append((free(gw.ones(1, 64)).numpy(), own(gw.ones(1, 64)).numpy()))
        np.testing.assert_array_equal(masks[0][0], masks[1][0])  # the stream restarted
        assert not np.array_equal(masks[0][1], masks[1][1])  # its own stream went on
    finally:
        gw.autograd.creation._global_seed[0] = None


def test_manual_seed_repeats_init_dropout_and_shuffling():
    def run():
        gw.manual_seed(123)
        model = gw.nn.Sequential(
            gw.nn.Linear(4, 8), gw.nn.ReLU(), gw.nn.Dropout(0.5), gw.nn.Linear(8, 1)
        )
        loader = gw.data.DataLoader((np.arange(10.0).reshape(10, 1),), batch_size=4, shuffle=True)
        order = next(iter(loader))[0].data.ravel().tolist()
        return (
            model[0].weight.data.copy(),
            model(gw.ones(3, 4)).data.copy(),
            order,
            gw.randn(2).data,
        )

    try:
        first, second = run(), run()
        for a, b in zip(first, second):
            np.testing.assert_array_equal(a, b)
        gw.manual_seed(124)
        assert not np.array_equal(gw.nn.Linear(4, 8).weight.data, first[0])
    finally:  # back to fresh entropy for the other tests
        gw.autograd.creation._global_seed[0] = None
