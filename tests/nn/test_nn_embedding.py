"""nn.Embedding's gradient: dense like PyTorch's default, summed per looked-up row."""

import numpy as np
import pytest

import gradwell as gw
from gradwell.nn.embedding import embedding_lookup


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("padding_idx", [None, 3])
def test_matches_pytorch_with_repeated_ids_and_padding(padding_idx, dtype):
    torch = pytest.importorskip("torch")
    ours = gw.nn.Embedding(7, 4, padding_idx=padding_idx, rng=0, dtype=dtype)
    theirs = torch.nn.Embedding(7, 4, padding_idx=padding_idx).to(
        getattr(torch, np.dtype(dtype).name)
    )
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    ids = np.array([[1, 3, 3, 6], [3, 1, 0, 1]])
    w = np.random.default_rng(1).standard_normal((2, 4, 4)).astype(dtype)
    out, out_t = ours(ids), theirs(torch.tensor(ids))
    np.testing.assert_array_equal(out.numpy(), out_t.detach().numpy())
    (out * gw.tensor(w, dtype=dtype)).sum().backward()
    (out_t * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(ours.weight.grad.numpy(), theirs.weight.grad.numpy(), rtol=1e-6)
    assert ours.weight.grad.dtype == dtype


def test_second_order_through_the_reference_keeps_padding_constant():
    """create_graph differentiates the reference: the padding row's lookups stay constant."""
    table = gw.tensor(np.random.default_rng(0).standard_normal((5, 2)), "float64", True)
    ids = np.array([0, 2, 2, 4])
    out = embedding_lookup(table, ids=ids, padding_idx=2)
    ref = out._op.reference(out.data, table, ids=ids, padding_idx=2)
    np.testing.assert_array_equal(ref.numpy(), out.numpy())
    (g,) = gw.grad((out**3).sum(), [table], create_graph=True)
    (h,) = gw.grad(g.sum(), [table])
    expected = np.zeros((5, 2))
    for i in (0, 4):
        expected[i] = 6 * table.numpy()[i]  # d/dw of 3 w^2
    np.testing.assert_allclose(h.numpy(), expected, rtol=1e-12)


def test_sparse_gradients_are_refused_clearly():
    with pytest.raises(NotImplementedError, match=r"sparse=True.*shrink the table.*freeze"):
        gw.nn.Embedding(10, 3, sparse=True)


def test_from_pretrained_copies_and_freezes():
    table = np.arange(6.0).reshape(3, 2)
    emb = gw.nn.Embedding.from_pretrained(table)
    assert not emb.weight.requires_grad and emb.weight.dtype == np.float32
    np.testing.assert_array_equal(emb([2, 0]).numpy(), [[4, 5], [0, 1]])
    table[0] = -1
    assert emb.weight.numpy()[0, 0] == 0
    assert gw.nn.Embedding.from_pretrained(table, freeze=False).weight.requires_grad
    with pytest.raises(ValueError, match="2-d float table"):
        gw.nn.Embedding.from_pretrained(np.zeros(3))
