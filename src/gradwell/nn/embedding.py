"""Embedding: a lookup table of learned vectors, indexed by integer ids."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._jit import jit
from ..autograd import ops
from ..autograd.creation import _rng
from ..autograd.ops import primitive
from ..autograd.tensor import Tensor
from .module import Module
from .parameter import Parameter
from .validate import positive_int as _positive_int


@primitive("embedding", reads="o")  # (the reference reads the output)
def embedding_lookup(weight: Any, *, ids: np.ndarray, padding_idx: int | None = None) -> Any:
    """Rows ``weight[ids]``; the row ``padding_idx`` takes no gradient.

    The gradient is a dense (num_embeddings, dim) array, as PyTorch's default
    (``sparse=False``): one zero fill of the table, then one compiled pass that adds
    each looked-up row's gradient into its row, in time proportional to the rows
    looked up (no (ids, num_embeddings) one-hot, no dense scatter per row).
    """
    return weight[ids]


@jit
def _add_rows(out: Any, ids: Any, g: Any, skip: int) -> None:
    for r in range(ids.size):
        i = ids[r]
        if i != skip:
            for j in range(g.shape[1]):
                out[i, j] += g[r, j]


@embedding_lookup.defvjp
def _(F, g, out, ins, needs, attrs):
    ids, pad = attrs["ids"], attrs["padding_idx"]
    table = np.zeros(ins[0].shape, np.result_type(g, ins[0]))
    dim = table.shape[1]
    rows = np.ascontiguousarray(g, table.dtype).reshape(-1, dim)
    _add_rows(table, ids.reshape(-1), rows, -1 if pad is None else pad)
    return (table,)


@embedding_lookup.defreference
def _embedding_reference(out, weight, *, ids, padding_idx=None):
    rows = ops.getitem(weight, index=ids)
    if padding_idx is None:
        return rows
    # the same numbers, with the padding row's lookups held constant: no gradient there
    return ops.where((ids != padding_idx)[..., None], rows, Tensor(out))


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
    The weight's gradient is dense (PyTorch's ``sparse=False``), summed in time
    proportional to the rows looked up; ``sparse=True`` (a sparse gradient for
    SparseAdam-style optimizers) is not supported. ``Embedding.from_pretrained(table)``
    wraps an existing table.

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
        *,
        sparse: bool = False,
    ) -> None:
        super().__init__()
        if sparse:
            raise NotImplementedError(
                "Embedding: sparse=True is not supported (gradwell's optimizers take dense "
                "gradients); the dense gradient is summed in time proportional to the rows "
                "looked up"
            )
        self.sparse = False
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

    @classmethod
    def from_pretrained(
        cls, embeddings: Any, freeze: bool = True, padding_idx: int | None = None
    ) -> Embedding:
        """An Embedding holding a copy of the (num_embeddings, dim) table ``embeddings``,
        frozen (no gradient) unless ``freeze=False``, as PyTorch's. A Tensor keeps its
        dtype; other float data becomes float32, as everywhere in gradwell."""
        if isinstance(embeddings, Tensor):
            arr = embeddings.data
        else:
            arr = np.asarray(embeddings)
            arr = arr.astype(np.float32) if arr.dtype.kind == "f" else arr
        if arr.ndim != 2 or arr.dtype.kind != "f":
            raise ValueError(
                f"Embedding.from_pretrained: expected a 2-d float table (num_embeddings, "
                f"embedding_dim); got shape {arr.shape} of dtype {arr.dtype}"
            )
        emb = cls(arr.shape[0], arr.shape[1], padding_idx, rng=0, dtype=arr.dtype)
        emb.weight.data[...] = arr
        emb.weight.requires_grad = not freeze
        return emb

    def forward(self, ids: Any) -> Tensor:
        return embedding(ids, self.weight, self.padding_idx)

    def extra_repr(self) -> str:
        pad = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"{self.num_embeddings}, {self.embedding_dim}{pad}"
