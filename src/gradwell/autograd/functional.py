"""Composite ops built from primitives: their gradients come from the primitives'."""

from __future__ import annotations

import builtins
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from . import ops
from .tensor import METHODS, Tensor, _axes, torch_spelling


def _t(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else ops._lift((x,))[0]


@torch_spelling
def var(x: Any, axis: Any = None, keepdims: bool = False, correction: int = 1) -> Tensor:
    """Variance over ``axis``, dividing by N - correction (1: unbiased, as PyTorch).

    With N - correction <= 0 it is nan (or inf), as in PyTorch: there is no estimate.
    """
    x = _t(x)
    axis = _axes(axis)
    n = x.numel() if axis is None else int(np.prod([x.shape[a] for a in np.atleast_1d(axis)]))
    centred = x - ops.mean(x, axis=axis, keepdims=True)
    dof = n - correction
    scale = 1.0 / dof if dof > 0 else math.inf  # 0 * inf = nan, as 0 / 0; no warning
    return ops.sum(centred * centred, axis=axis, keepdims=keepdims) * scale


@torch_spelling
def std(x: Any, axis: Any = None, keepdims: bool = False, correction: int = 1) -> Tensor:
    """Standard deviation: sqrt(var(x, axis, keepdims, correction))."""
    return ops.sqrt(var(x, axis, keepdims, correction))


def reshape(x: Any, shape: Any) -> Tensor:
    """The same elements in a new shape (one axis may be -1)."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return ops.reshape(_t(x), shape=shape)


def transpose(x: Any, axes: Any = None) -> Tensor:
    """Permute the axes (reverse them when ``axes`` is None)."""
    return ops.transpose(_t(x), axes=None if axes is None else tuple(axes))


permute = transpose


@torch_spelling
def flatten(x: Any, start_axis: int = 0, end_axis: int = -1) -> Tensor:
    """Merge axes start_axis..end_axis into one."""
    x = _t(x)
    if x.ndim == 0:
        return reshape(x, (1,))
    s, e = start_axis % x.ndim, end_axis % x.ndim
    return reshape(x, x.shape[:s] + (-1,) + x.shape[e + 1 :])


@torch_spelling
def squeeze(x: Any, axis: Any = None) -> Tensor:
    """Drop axes of length 1 (all of them, or those in ``axis``)."""
    x = _t(x)
    return reshape(x, np.squeeze(np.empty(x.shape, dtype=np.bool_), axis=_axes(axis)).shape)


@torch_spelling
def unsqueeze(x: Any, axis: int) -> Tensor:
    """Insert an axis of length 1 at ``axis``."""
    x = _t(x)
    return reshape(x, np.expand_dims(np.empty(x.shape, dtype=np.bool_), axis).shape)


@torch_spelling
def concatenate(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    """Join tensors along an existing axis."""
    return ops.concatenate(*tensors, axis=axis)


@torch_spelling
def stack(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    """Join same-shape tensors along a new axis."""
    return ops.stack(*tensors, axis=axis)


def clip(x: Any, min: Any = None, max: Any = None) -> Tensor:
    """Limit values to [min, max]; the gradient is 1 inside (bounds included), 0 outside."""
    return ops.clip(_t(x), min=min, max=max)


@torch_spelling
def sum(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Sum over ``axis`` (all axes when None)."""
    return ops.sum(_t(x), axis=_axes(axis), keepdims=keepdims)


@torch_spelling
def mean(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Arithmetic mean over ``axis`` (all axes when None)."""
    return ops.mean(_t(x), axis=_axes(axis), keepdims=keepdims)


class ValuesIndices(NamedTuple):
    """(values, indices) of a reduction along a dim, as PyTorch's ``torch.return_types``."""

    values: Tensor
    indices: Tensor


def _extreme(
    x: Any, dim: Any, keepdim: Any, axis: Any, keepdims: Any, largest: bool
) -> Tensor | ValuesIndices:
    if isinstance(dim, Tensor):  # torch.max(a, b): the elementwise maximum
        return (ops.maximum if largest else ops.minimum)(_t(x), dim)
    x = _t(x)
    if keepdims is not None and keepdim is not None and bool(keepdims) != bool(keepdim):
        raise TypeError(f"got both keepdims={keepdims!r} and keepdim={keepdim!r}; pass one of them")
    keep = bool(keepdim if keepdim is not None else keepdims)
    if dim is None:  # numpy's spelling, or every axis: the values only
        return (ops.max if largest else ops.min)(x, axis=_axes(axis), keepdims=keep)
    if axis is not None:
        raise TypeError(f"got both dim={dim!r} and axis={axis!r}; pass one of them")
    if not isinstance(dim, (int, np.integer)):
        raise TypeError(f"dim must be one axis (an int) for (values, indices); got {dim!r}")
    indices = (ops.argmax if largest else ops.argmin)(x, axis=int(dim), keepdims=True)
    values = gather(x, int(dim), indices.data)  # the gradient goes to the index picked
    if not keep:
        values, indices = squeeze(values, int(dim)), squeeze(indices, int(dim))
    return ValuesIndices(values, indices)


def max(
    x: Any, dim: Any = None, keepdim: Any = None, *, axis: Any = None, keepdims: Any = None
) -> Any:
    """The largest element, as in PyTorch: over every axis (a tensor; ties share the
    gradient equally), or along ``dim`` as a named tuple ``(values, indices)`` whose
    values take the gradient at the index picked (the first of ties). numpy's spelling,
    ``axis=`` (one axis or several), gives the values only. ``max(a, b)`` with a tensor
    ``b`` is the elementwise maximum.

    >>> import gradwell as gw
    >>> x = gw.tensor([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]])
    >>> gw.max(x).item(), gw.max(x, dim=1).indices.tolist(), x.max(axis=0).tolist()
    (7.0, [1, 0], [7.0, 5.0, 3.0])
    """
    return _extreme(x, dim, keepdim, axis, keepdims, largest=True)


def min(
    x: Any, dim: Any = None, keepdim: Any = None, *, axis: Any = None, keepdims: Any = None
) -> Any:
    """The smallest element: as :func:`max`, for the minimum."""
    return _extreme(x, dim, keepdim, axis, keepdims, largest=False)


@torch_spelling
def logsumexp(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:
    """log(sum(exp(x))) over ``axis``, stable for large |x|."""
    return ops.logsumexp(_t(x), axis=_axes(axis), keepdims=keepdims)


@torch_spelling
def softmax(x: Any, axis: int = -1) -> Tensor:
    """exp(x) / sum(exp(x)) along ``axis``."""
    return ops.softmax(_t(x), axis=axis)


@torch_spelling
def log_softmax(x: Any, axis: int = -1) -> Tensor:
    """x - logsumexp(x) along ``axis``."""
    return ops.log_softmax(_t(x), axis=axis)


def leaky_relu(x: Any, negative_slope: float = 0.01) -> Tensor:
    """x for x > 0, else negative_slope * x."""
    return ops.leaky_relu(_t(x), negative_slope=negative_slope)


def elu(x: Any, alpha: float = 1.0) -> Tensor:
    """x for x > 0, else alpha * (exp(x) - 1)."""
    return ops.elu(_t(x), alpha=alpha)


def softplus(x: Any, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + exp(beta x)) / beta, linear above ``threshold``."""
    return ops.softplus(_t(x), beta=beta, threshold=threshold)


def broadcast_to(x: Any, shape: Sequence[int]) -> Tensor:
    """View ``x`` broadcast to ``shape``; its gradient is summed back."""
    return ops.broadcast_to(_t(x), shape=tuple(shape))


METHODS.update(
    var=var, std=std, reshape=reshape, transpose=transpose, flatten=flatten, squeeze=squeeze,
    unsqueeze=unsqueeze, tensor_max=max, tensor_min=min,
)  # fmt: skip


# ---------------------------------------------------------------------------
# Composites of issue 16: each is exact in its primitives, so its gradient is theirs.

_LN2, _LN10 = math.log(2.0), math.log(10.0)


def rsqrt(x: Any) -> Tensor:
    """1 / sqrt(x)."""
    return 1.0 / ops.sqrt(_t(x))


def exp2(x: Any) -> Tensor:
    """2 ** x."""
    return ops.exp(_t(x) * _LN2)


def log2(x: Any) -> Tensor:
    """Base-2 logarithm."""
    return ops.log(_t(x)) * (1 / _LN2)


def log10(x: Any) -> Tensor:
    """Base-10 logarithm."""
    return ops.log(_t(x)) * (1 / _LN10)


def _slice_at(ndim: int, axis: int, index: Any) -> tuple[Any, ...]:
    return (slice(None),) * (axis % ndim) + (index,)


@torch_spelling
def index_select(x: Any, axis: int, index: Any) -> Tensor:
    """The entries of ``x`` at the integer positions ``index`` along ``axis``."""
    x = _t(x)
    idx = np.asarray(index.data if isinstance(index, Tensor) else index, dtype=np.intp)
    return ops.getitem(x, index=_slice_at(x.ndim, axis, idx))


@torch_spelling
def gather(x: Any, axis: int, index: Any) -> Tensor:
    """out[i][j][k] = x[i][index[i][j][k]][k] for axis 1 (PyTorch's gather, numpy's
    take_along_axis): ``index`` has x's number of axes."""
    x = _t(x)
    return ops.getitem(x, index=_along(index, axis, x.ndim))


def _along(index: Any, axis: int, ndim: int) -> tuple[np.ndarray, ...]:
    """numpy's index for "entry index[i, j, ...] along ``axis``, position (i, j, ...) elsewhere"."""
    idx = np.asarray(index.data if isinstance(index, Tensor) else index, dtype=np.intp)
    if idx.ndim != ndim:
        raise ValueError(f"index must have {ndim} axes like the input; got {idx.ndim}")
    grid = list(np.ix_(*[np.arange(n) for n in idx.shape]))
    grid[axis % ndim] = idx
    return tuple(grid)


@torch_spelling
def scatter_add(x: Any, axis: int, index: Any, src: Any) -> Tensor:
    """A copy of ``x`` with ``src`` added at ``index`` along ``axis``; repeats accumulate."""
    x, src = _t(x), _t(src)
    at = _along(index, axis, x.ndim)
    src = ops.getitem(src, index=tuple(slice(0, n) for n in at[axis % x.ndim].shape))
    return x + ops.scatter_add(src, index=at, shape=x.shape)


@torch_spelling
def scatter(x: Any, axis: int, index: Any, src: Any) -> Tensor:
    """A copy of ``x`` with the entries at ``index`` along ``axis`` replaced by ``src``
    (a tensor or a number). Indices must not repeat along ``axis``."""
    x = _t(x)
    at = _along(index, axis, x.ndim)
    hit = np.zeros(x.shape, dtype=bool)
    hit[at] = True
    src = (
        ops.broadcast_to(_t(src), shape=at[axis % x.ndim].shape)
        if not isinstance(src, Tensor)
        else src
    )
    src = ops.getitem(src, index=tuple(slice(0, n) for n in at[axis % x.ndim].shape))
    return ops.where(hit, ops.scatter_add(src, index=at, shape=x.shape), x)


def where(cond: Any, a: Any, b: Any) -> Tensor:
    """a where cond is true, else b."""
    return ops.where(cond, a, b)


def masked_fill(x: Any, mask: Any, value: float) -> Tensor:
    """``x`` with ``value`` where ``mask`` is true; no gradient flows there."""
    x = _t(x)
    return ops.where(mask, ops._lift((value, x))[0], x)


@torch_spelling
def split(x: Any, split_size_or_sections: Any, axis: int = 0) -> list[Tensor]:
    """Pieces of ``split_size`` along ``axis`` (the last may be shorter), or of the given sizes."""
    x = _t(x)
    axis %= x.ndim
    n = x.shape[axis]
    if isinstance(split_size_or_sections, int):
        step = split_size_or_sections
        sizes = [builtins.min(step, n - s) for s in range(0, n, step)]
    else:
        sizes = list(split_size_or_sections)
        if builtins.sum(sizes) != n:
            raise ValueError(f"split: sizes {sizes} do not add up to the axis length {n}")
    out, start = [], 0
    for size in sizes:
        out.append(ops.getitem(x, index=_slice_at(x.ndim, axis, slice(start, start + size))))
        start += size
    return out


@torch_spelling
def chunk(x: Any, chunks: int, axis: int = 0) -> list[Tensor]:
    """``chunks`` pieces of equal length along ``axis`` (the last may be shorter)."""
    x = _t(x)
    return split(x, -(-x.shape[axis] // chunks), axis)


@torch_spelling
def unbind(x: Any, axis: int = 0) -> list[Tensor]:
    """The slices along ``axis``, that axis removed."""
    x = _t(x)
    return [ops.getitem(x, index=_slice_at(x.ndim, axis, i)) for i in range(x.shape[axis])]


def repeat(x: Any, *sizes: Any) -> Tensor:
    """``x`` tiled ``sizes[i]`` times along axis i (PyTorch's repeat, numpy's tile)."""
    x = _t(x)
    reps = tuple(sizes[0]) if len(sizes) == 1 and not isinstance(sizes[0], int) else sizes
    if len(reps) < x.ndim:
        raise ValueError(
            f"repeat: need at least {x.ndim} sizes for a {x.ndim}-d tensor; got {reps}"
        )
    shape = (1,) * (len(reps) - x.ndim) + x.shape
    spread = reshape(x, tuple(s for n in shape for s in (1, n)))
    tiled = ops.broadcast_to(spread, shape=tuple(s for r, n in zip(reps, shape) for s in (r, n)))
    return reshape(tiled, tuple(r * n for r, n in zip(reps, shape)))


@torch_spelling
def repeat_interleave(x: Any, repeats: Any, axis: int | None = None) -> Tensor:
    """Each element repeated ``repeats`` times along ``axis`` (the flattened tensor when None)."""
    x = _t(x)
    if axis is None:
        x, axis = reshape(x, (-1,)), 0
    reps = repeats.data if isinstance(repeats, Tensor) else repeats
    index = np.repeat(np.arange(x.shape[axis]), reps)
    return ops.getitem(x, index=_slice_at(x.ndim, axis, index))


def flip(x: Any, dims: Any) -> Tensor:
    """Reverse the order of the elements along ``dims`` (an int or a sequence)."""
    return ops.flip(_t(x), axis=dims if isinstance(dims, int) else tuple(dims))


def roll(x: Any, shifts: Any, dims: Any = None) -> Tensor:
    """Shift the elements cyclically along ``dims`` (the flattened tensor when None)."""
    return ops.roll(_t(x), shift=_int_or_tuple(shifts), axis=_int_or_tuple(dims))


def _int_or_tuple(v: Any) -> Any:
    return v if isinstance(v, int) or v is None else tuple(v)


def _triangle(x: Any, diagonal: int, lower: bool) -> Tensor:
    x = _t(x)
    rows, cols = x.shape[-2:]
    keep = np.tri(rows, cols, diagonal - (0 if lower else 1), dtype=bool)
    return ops.where(keep if lower else ~keep, x, ops._lift((0, x))[0])


def tril(x: Any, diagonal: int = 0) -> Tensor:
    """The lower triangle of the last two axes (from ``diagonal`` down); zeros above."""
    return _triangle(x, diagonal, True)


def triu(x: Any, diagonal: int = 0) -> Tensor:
    """The upper triangle of the last two axes (from ``diagonal`` up); zeros below."""
    return _triangle(x, diagonal, False)


def diagonal(x: Any, offset: int = 0, dim1: int = 0, dim2: int = 1) -> Tensor:
    """The diagonal of axes ``dim1`` and ``dim2``, as a last axis (as numpy and PyTorch)."""
    x = _t(x)
    d1, d2 = dim1 % x.ndim, dim2 % x.ndim
    rest = [i for i in range(x.ndim) if i not in (d1, d2)]
    moved = ops.transpose(x, axes=(*rest, d1, d2))
    n1, n2 = x.shape[d1], x.shape[d2]
    i = np.arange(
        builtins.max(0, builtins.min(n1 + builtins.min(offset, 0), n2 - builtins.max(offset, 0)))
    )
    rows, cols = i - builtins.min(offset, 0), i + builtins.max(offset, 0)
    return ops.getitem(moved, index=(Ellipsis, rows, cols))


@torch_spelling
def cumsum(x: Any, axis: int | None = None) -> Tensor:
    """Running sum along ``axis``."""
    return ops.cumsum(_t(x), axis=axis)


@torch_spelling
def prod(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Product over ``axis``: the last entry of the running product, so exact at zeros
    (each element's gradient is the product of the others)."""
    x = _t(x)
    axis = _axes(axis)
    if axis is None:
        axis = tuple(range(x.ndim))
    for a in sorted(
        (a % x.ndim for a in ((axis,) if isinstance(axis, int) else axis)), reverse=True
    ):
        x = ops.getitem(
            cumprod(x, a), index=_slice_at(x.ndim, a, slice(-1, None) if keepdims else -1)
        )
    return x


@torch_spelling
def cumprod(x: Any, axis: int | None = None) -> Tensor:
    """Running product along ``axis``, built as a product of shifted copies (exact at zeros)."""
    x = _t(x)
    if axis is None:
        x, axis = reshape(x, (-1,)), 0
    axis %= x.ndim
    n = x.shape[axis]
    # A log-depth scan: after step k each entry holds the product of its last 2**k inputs.
    out, span = x, 1
    while span < n:
        head = ops.getitem(out, index=_slice_at(x.ndim, axis, slice(0, span)))
        upper = ops.getitem(out, index=_slice_at(x.ndim, axis, slice(span, None)))
        lower = ops.getitem(out, index=_slice_at(x.ndim, axis, slice(0, n - span)))
        out = ops.concatenate(head, upper * lower, axis=axis)
        span *= 2
    return out


@torch_spelling
def sort(x: Any, axis: int = -1, descending: bool = False) -> tuple[Tensor, Tensor]:
    """(values, indices) sorted along ``axis``; the gradient follows the values."""
    x = _t(x)
    indices = ops.argsort(x, axis=axis, descending=descending)
    return ValuesIndices(gather(x, axis, indices.data), indices)


@torch_spelling
def argsort(x: Any, axis: int = -1, descending: bool = False) -> Tensor:
    """The indices that sort ``x`` along ``axis`` (stable)."""
    return ops.argsort(_t(x), axis=axis, descending=descending)


@torch_spelling
def topk(x: Any, k: int, axis: int = -1, largest: bool = True) -> tuple[Tensor, Tensor]:
    """(values, indices) of the ``k`` largest (or smallest) entries along ``axis``, sorted."""
    x = _t(x)
    axis %= x.ndim
    order = ops.argsort(x, axis=axis, descending=largest).data
    indices = np.take(order, np.arange(k), axis=axis)
    return ValuesIndices(gather(x, axis, indices), Tensor(indices))


@torch_spelling
def argmax(x: Any, axis: int | None = None, keepdims: bool = False) -> Tensor:
    """Index of the largest element along ``axis`` (of the flattened tensor when None)."""
    return ops.argmax(_t(x), axis=axis, keepdims=keepdims)


@torch_spelling
def argmin(x: Any, axis: int | None = None, keepdims: bool = False) -> Tensor:
    """Index of the smallest element along ``axis`` (of the flattened tensor when None)."""
    return ops.argmin(_t(x), axis=axis, keepdims=keepdims)


@torch_spelling
def all(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:
    """True where every element along ``axis`` is nonzero."""
    return ops.all(_t(x), axis=_axes(axis), keepdims=keepdims)


@torch_spelling
def any(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:
    """True where some element along ``axis`` is nonzero."""
    return ops.any(_t(x), axis=_axes(axis), keepdims=keepdims)


def isclose(
    a: Any, b: Any, rtol: float = 1e-5, atol: float = 1e-8, equal_nan: bool = False
) -> Tensor:
    """|a - b| <= atol + rtol * |b| elementwise."""
    return ops.isclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan)


def einsum(equation: str, *operands: Any) -> Tensor:
    """Einstein summation, e.g. ``einsum("bij,bjk->bik", a, b)``; the output must be explicit."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    if "->" not in equation or "..." in equation:
        raise ValueError(f"einsum: give the output explicitly and no '...'; got {equation!r}")
    terms = equation.replace(" ", "").split("->")[0].split(",")
    for term in terms:
        if len(set(term)) != len(term):
            raise ValueError(
                f"einsum: a subscript repeated within one operand ({term!r}) is not supported"
            )
    return ops.einsum(*[_t(o) for o in operands], equation=equation)


@torch_spelling
def normalize(x: Any, p: float = 2.0, axis: int = 1, eps: float = 1e-12) -> Tensor:
    """x / max(||x||_p, eps) along ``axis`` (PyTorch's F.normalize)."""
    x = _t(x)
    norm = ops.sum(ops.abs(x) ** p, axis=axis, keepdims=True) ** (1.0 / p)
    return x / ops.maximum(norm, ops._lift((eps, x))[0])


@torch_spelling
def cat(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    """Join tensors along an existing axis (PyTorch's name for concatenate)."""
    return ops.concatenate(*tensors, axis=axis)
