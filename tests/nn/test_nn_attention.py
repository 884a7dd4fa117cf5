"""scaled_dot_product_attention and MultiheadAttention against PyTorch (outputs, weights,
every gradient), their mask conventions, and a small transformer block that learns."""

import numpy as np
import pytest
from nn.token_tasks import train_and_score

import gradwell as gw

F = gw.nn.functional
RNG = np.random.default_rng(0)


def _tol(dtype):
    return {"rtol": 1e-4, "atol": 1e-5} if dtype == np.float32 else {"rtol": 1e-9, "atol": 1e-11}


def _torchify(torch, kwargs, dtype):
    """PyTorch's copy of the keyword arguments: masks as tensors (float ones in ``dtype``)."""
    return {
        k: torch.tensor(v.astype(dtype) if v.dtype.kind == "f" else v)
        if isinstance(v, np.ndarray)
        else v
        for k, v in kwargs.items()
    }


SDPA_CASES = {
    "plain": {},
    "causal": {"is_causal": True},
    "bool mask": {"attn_mask": RNG.random((4, 6)) > 0.3},
    "float mask": {"attn_mask": RNG.standard_normal((2, 1, 4, 6))},
    "scale": {"scale": 0.3},
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", SDPA_CASES)
def test_sdpa_matches_pytorch(case, dtype):
    torch = pytest.importorskip("torch")
    kwargs = SDPA_CASES[case]
    rng = np.random.default_rng(1)
    arrays = [
        rng.standard_normal(s).astype(dtype) for s in ((2, 3, 4, 5), (2, 3, 6, 5), (2, 3, 6, 7))
    ]
    ours = [gw.tensor(a, dtype=dtype, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = F.scaled_dot_product_attention(*ours, **kwargs)
    out_t = torch.nn.functional.scaled_dot_product_attention(
        *theirs, **_torchify(torch, kwargs, dtype)
    )
    np.testing.assert_allclose(out.numpy(), out_t.detach().numpy(), **_tol(dtype))
    w = rng.standard_normal(out.shape).astype(dtype)
    (out * gw.tensor(w, dtype=dtype)).sum().backward()
    (out_t * torch.tensor(w)).sum().backward()
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), **_tol(dtype))


def test_sdpa_bool_mask_true_means_attend():
    q = gw.randn(3, 4, rng=0)
    k = gw.randn(5, 4, rng=1)
    v = gw.randn(5, 2, rng=2)
    only_key_2 = np.zeros((3, 5), bool)
    only_key_2[:, 2] = True
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=only_key_2)
    np.testing.assert_allclose(out.numpy(), np.broadcast_to(v.numpy()[2], (3, 2)), rtol=1e-6)


def _one_row_masked(kind):
    """A (3, 5) mask letting query 1 attend to nothing: False (boolean) or -inf (float)."""
    rng = np.random.default_rng(4)
    if kind == "bool":
        mask = rng.random((3, 5)) > 0.4
        mask[1] = False
    else:
        mask = rng.standard_normal((3, 5))
        mask[1] = -np.inf
    return mask


@pytest.mark.parametrize("kind", ["bool", "float"])
def test_sdpa_a_query_that_attends_to_nothing_gives_zeros_as_pytorch(kind):
    """PyTorch's scaled_dot_product_attention gives zeros there, and no gradient back."""
    torch = pytest.importorskip("torch")
    mask = _one_row_masked(kind)
    rng = np.random.default_rng(5)
    arrays = [rng.standard_normal(s) for s in ((3, 4), (5, 4), (5, 2))]
    ours = [gw.tensor(a, "float64", requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = F.scaled_dot_product_attention(*ours, attn_mask=mask)
    out_t = torch.nn.functional.scaled_dot_product_attention(*theirs, attn_mask=torch.tensor(mask))
    np.testing.assert_array_equal(out.numpy()[1], 0.0)
    np.testing.assert_allclose(out.numpy(), out_t.detach().numpy(), rtol=1e-12)
    out.sum().backward()
    out_t.sum().backward()
    np.testing.assert_array_equal(ours[0].grad.numpy()[1], 0.0)
    for a, b in zip(ours, theirs):
        assert np.isfinite(a.grad.numpy()).all()
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_sdpa_errors():
    q = gw.zeros(2, 3, 4)
    with pytest.raises(ValueError, match=r"query \(2, 3, 4\), key \(2, 3, 5\)"):
        F.scaled_dot_product_attention(q, gw.zeros(2, 3, 5), gw.zeros(2, 3, 5))
    with pytest.raises(ValueError, match="not both"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=np.ones((3, 3), bool), is_causal=True)


# --------------------------------------------------------------------------- MultiheadAttention


def _mha_pair(dtype, **kwargs):
    torch = pytest.importorskip("torch")
    ours = gw.nn.MultiheadAttention(8, 2, rng=0, dtype=dtype, **kwargs)
    theirs = torch.nn.MultiheadAttention(8, 2, **kwargs).to(getattr(torch, np.dtype(dtype).name))
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    return torch, ours, theirs


MHA_CASES = {
    "plain": ({}, {}, {}),
    "batch first, key padding": (
        {"batch_first": True},
        {"key_padding_mask": np.array([[False] * 4 + [True] * 2, [False] * 6])},
        {},
    ),
    "bool attn_mask, weights per head": (
        {},
        {"attn_mask": RNG.random((4, 6)) > 0.7, "average_attn_weights": False},
        {},
    ),
    "float masks": (
        {},
        {"attn_mask": RNG.standard_normal((4, 6)), "key_padding_mask": RNG.standard_normal((2, 6))},
        {},
    ),
    "per-head mask": ({}, {"attn_mask": RNG.random((4, 4, 6)) > 0.8}, {}),
    "kdim and vdim": ({"kdim": 5, "vdim": 3}, {"attn_mask": RNG.random((4, 6)) > 0.8}, {}),
    "no bias": ({"bias": False}, {}, {}),
    "causal self-attention": ({}, {"is_causal": True}, {"self": True}),
    "add_bias_kv, masks": (
        {"add_bias_kv": True},
        {"attn_mask": RNG.random((4, 6)) > 0.7, "key_padding_mask": RNG.random((2, 6)) > 0.8},
        {},
    ),
    "add_zero_attn, per-head mask": (
        {"add_zero_attn": True},
        {"attn_mask": RNG.random((4, 4, 6)) > 0.8},
        {},
    ),
    "both, kdim and vdim, key padding": (
        {"add_bias_kv": True, "add_zero_attn": True, "kdim": 5, "vdim": 3, "batch_first": True},
        {"key_padding_mask": np.array([[False] * 4 + [True] * 2, [False] * 6])},
        {},
    ),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", MHA_CASES)
def test_multihead_attention_matches_pytorch(case, dtype):
    layer_kwargs, call_kwargs, how = MHA_CASES[case]
    torch, ours, theirs = _mha_pair(dtype, **layer_kwargs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    rng = np.random.default_rng(3)
    n, length, s = 2, 4, 4 if how.get("self") else 6
    layout = (
        (lambda l, d: (n, l, d)) if layer_kwargs.get("batch_first") else (lambda l, d: (l, n, d))
    )
    q = rng.standard_normal(layout(length, 8)).astype(dtype)
    k = rng.standard_normal(layout(s, layer_kwargs.get("kdim", 8))).astype(dtype)
    v = rng.standard_normal(layout(s, layer_kwargs.get("vdim", 8))).astype(dtype)
    if how.get("self"):
        k = v = q
        call_kwargs = {"attn_mask": ~np.tril(np.ones((4, 4), bool)), **call_kwargs}
    mine = [gw.tensor(a, dtype=dtype, requires_grad=True) for a in (q, k, v)]
    yours = [torch.tensor(a, requires_grad=True) for a in (q, k, v)]
    out, weights = ours(*mine, **call_kwargs)
    out_t, weights_t = theirs(*yours, **_torchify(torch, call_kwargs, dtype))
    np.testing.assert_allclose(out.numpy(), out_t.detach().numpy(), **_tol(dtype))
    np.testing.assert_allclose(weights.numpy(), weights_t.detach().numpy(), **_tol(dtype))
    w = rng.standard_normal(out.shape).astype(dtype)
    (out * gw.tensor(w, dtype=dtype)).sum().backward()
    (out_t * torch.tensor(w)).sum().backward()
    for a, b in zip(mine, yours):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), **_tol(dtype))
    theirs_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), theirs_params[name].grad.numpy(), **_tol(dtype))


@pytest.mark.parametrize("need_weights", [True, False])
@pytest.mark.parametrize("how", ["key padding", "attn_mask of one head"])
def test_multihead_a_query_that_attends_to_nothing_is_pytorchs(how, need_weights):
    """PyTorch's MultiheadAttention gives NaN for such a query when it returns the weights
    (a plain softmax), and attends with zeros when it does not."""
    torch, ours, theirs = _mha_pair(np.float64)
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 2, 8))  # (L, N, E), self-attention
    masks = {}
    if how == "key padding":
        masks["key_padding_mask"] = np.array([[True] * 3, [False, True, False]])
    else:
        per_head = np.zeros((2 * 2, 3, 3), bool)  # (N * heads, L, S): True is forbidden
        per_head[1, 2] = True  # batch 0, head 1, query 2
        masks["attn_mask"] = per_head
    mine = gw.tensor(x, "float64", requires_grad=True)
    yours = torch.tensor(x, requires_grad=True)
    out, weights = ours(mine, mine, mine, need_weights=need_weights, **masks)
    out_t, weights_t = theirs(
        yours, yours, yours, need_weights=need_weights, **_torchify(torch, masks, np.float64)
    )
    assert np.isnan(out.numpy()).any() == need_weights
    np.testing.assert_allclose(out.numpy(), out_t.detach().numpy(), rtol=1e-10, atol=1e-12)
    if need_weights:
        np.testing.assert_allclose(weights.numpy(), weights_t.detach().numpy(), rtol=1e-10)
    out.sum().backward()
    out_t.sum().backward()
    np.testing.assert_allclose(mine.grad.numpy(), yours.grad.numpy(), rtol=1e-9, atol=1e-11)


def test_multihead_attention_unbatched_and_without_weights():
    mha = gw.nn.MultiheadAttention(6, 3, rng=0)
    x = gw.randn(5, 6, rng=0)
    out, weights = mha(x, x, x)
    assert out.shape == (5, 6) and weights.shape == (5, 5)
    np.testing.assert_allclose(weights.numpy().sum(-1), 1.0, rtol=1e-5)
    batched, _ = mha(x[:, None], x[:, None], x[:, None])
    np.testing.assert_allclose(batched.numpy()[:, 0], out.numpy(), rtol=1e-5, atol=1e-6)
    assert mha(x, x, x, need_weights=False)[1] is None


def test_multihead_attention_dropout_in_training_only():
    mha = gw.nn.MultiheadAttention(8, 2, dropout=0.5, rng=0)
    x = gw.randn(4, 2, 8, rng=1)
    assert not np.allclose(mha(x, x, x)[0].numpy(), mha(x, x, x)[0].numpy())
    mha.eval()
    np.testing.assert_array_equal(mha(x, x, x)[0].numpy(), mha(x, x, x)[0].numpy())


def test_multihead_attention_errors():
    with pytest.raises(ValueError, match=r"embed_dim \(10\) must be divisible by num_heads \(3\)"):
        gw.nn.MultiheadAttention(10, 3)
    mha = gw.nn.MultiheadAttention(8, 2)
    with pytest.raises(
        ValueError, match=r"expected key of shape \(L, N, E\).*E=8; got \(4, 2, 5\)"
    ):
        mha(gw.zeros(4, 2, 8), gw.zeros(4, 2, 5), gw.zeros(4, 2, 8))
    with pytest.raises(ValueError, match=r"key_padding_mask of shape \(2, 6\); got \(6, 2\)"):
        x, kv = gw.zeros(4, 2, 8), gw.zeros(6, 2, 8)
        mha(x, kv, kv, key_padding_mask=np.zeros((6, 2), bool))


# --------------------------------------------------------------------------- a transformer

VOCAB, LENGTH, WIDTH = 8, 8, 32


class EncoderBlock(gw.nn.Module):
    """Post-norm: x + attention, LayerNorm, x + feed-forward, LayerNorm."""

    def __init__(self, rng):
        super().__init__()
        self.attn = gw.nn.MultiheadAttention(WIDTH, 4, batch_first=True, rng=rng)
        self.norm1, self.norm2 = gw.nn.LayerNorm(WIDTH), gw.nn.LayerNorm(WIDTH)
        self.ff1, self.ff2 = gw.nn.Linear(WIDTH, 64, rng=rng), gw.nn.Linear(64, WIDTH, rng=rng)

    def forward(self, x):
        a, _ = self.attn(x, x, x, need_weights=False)
        x = self.norm1(x + a)
        return self.norm2(x + self.ff2(gw.relu(self.ff1(x))))


class Transformer(gw.nn.Module):
    def __init__(self, rng):
        super().__init__()
        self.tokens = gw.nn.Embedding(VOCAB, WIDTH, rng=rng)
        self.places = gw.nn.Embedding(LENGTH, WIDTH, rng=rng)
        self.block = EncoderBlock(rng)
        self.head = gw.nn.Linear(WIDTH, 2, rng=rng)

    def forward(self, ids):
        x = self.tokens(ids) + self.places(np.arange(ids.shape[1]))
        return self.head(self.block(x)[:, 0])


def repeats(n, rng):
    """Does the first token come again later? (Balanced; the answer needs attention from
    the first place to the others.)"""
    ids = np.empty((n, LENGTH), np.int64)
    ids[:, 0] = rng.integers(0, VOCAB, n)
    others = rng.integers(1, VOCAB, (n, LENGTH - 1))
    ids[:, 1:] = (ids[:, :1] + others) % VOCAB  # never the first token
    again = rng.random(n) < 0.5
    ids[again, rng.integers(1, LENGTH, n)[again]] = ids[again, 0]
    return ids, again.astype(np.int64)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_transformer_block_learns_whether_the_first_token_repeats(seed):
    rng = np.random.default_rng(seed)
    train, test = repeats(1000, rng), repeats(500, rng)
    accuracy = train_and_score(
        Transformer(rng), train, test, rng, epochs=10, batch_size=50, lr=5e-3
    )
    assert accuracy >= 0.95, f"seed {seed}: test accuracy {accuracy:.3f}"
