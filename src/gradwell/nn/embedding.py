"""Embedding: a lookup table of learned vectors, indexed by integer ids."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..autograd.creation import _rng
from ..autograd.ops import primitive
from ..autograd.tensor import Tensor
from .module import Module
from .parameter import Parameter
from .validate import positive_int as _positive_int


@primitive("embedding", reads="")
def embedding_lookup(weight: Any, *, ids: np.ndarray, padding_idx: int | None = None) -> Any:
    """Rows ``weight[ids]``; the row ``padding_idx`` takes no gradient."""
    return weight[ids]


@embedding_lookup.defvjp
def _(F, g, out, ins, needs, attrs):
    ids, pad = attrs["ids"], attrs["padding_idx"]
    if pad is not None:
        g = g * (ids != pad)[..., None].astype(g.dtype)
    return (F.scatter_add(g, index=ids, shape=ins[0].shape),)


def embedding(ids: Any, weight: Tensor, padding_idx: int | None = None) -> Tensor:
    """Look up the rows of ``weight`` (num_embeddings, dim) at integer ``ids`` of any shape."""
    arr = np.asarray(ids.data if isinstance(ids, Tensor) else ids)
    n = weight.shape[0]
    if arr.dtype.kind not in "iu":
        raise TypeError(f"embedding: expected integer ids; got dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() >= n):
        bad = arr[(arr < 0) | (arr >= n)].ravel()[0]
        raise IndexError(f"embedding: id {bad} is out of range for {n} embeddings (0..{n - 1})")
    return embedding_lookup(weight, ids=arr, padding_idx=padding_idx)


class Embedding(Module):
    """A (num_embeddings, embedding_dim) table, N(0, 1) at the start, as PyTorch's.

    ``padding_idx``: that row starts at zero and is never updated by a gradient.

    >>> import gradwell as gw
    >>> emb = gw.nn.Embedding(10, 3, padding_idx=0, rng=0)
    >>> emb([[1, 2, 0]]).shape
    (1, 3, 3)
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: int | None = None,
        rng: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self.num_embeddings = _positive_int(num_embeddings, "num_embeddings", "Embedding")
        self.embedding_dim = _positive_int(embedding_dim, "embedding_dim", "Embedding")
        if padding_idx is not None:
            if not -self.num_embeddings <= padding_idx < self.num_embeddings:
                raise ValueError(
                    f"Embedding: padding_idx must be within num_embeddings "
                    f"({self.num_embeddings}); got {padding_idx}"
                )
            padding_idx %= self.num_embeddings
        self.padding_idx = padding_idx
        dtype = np.dtype(np.float32 if dtype is None else dtype)
        table = _rng(rng).standard_normal((self.num_embeddings, self.embedding_dim)).astype(dtype)
        if padding_idx is not None:
            table[padding_idx] = 0
        self.weight = Parameter(Tensor(table))

    def forward(self, ids: Any) -> Tensor:
        return embedding(ids, self.weight, self.padding_idx)

    def extra_repr(self) -> str:
        pad = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"{self.num_embeddings}, {self.embedding_dim}{pad}"
