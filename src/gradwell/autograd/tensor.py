"""Tensor: an n-dimensional array that is also a node of the computation graph."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

from . import recording

Array = np.ndarray

# The functions behind Tensor's operators and methods, by name. The modules above this
# one register them (ops: the primitives; functional: composites; engine: backward),
# so that this module imports none of them: autograd is a straight stack.
METHODS: dict[str, Callable[..., Any]] = {}

# PyTorch's names for numpy's arguments.
_NUMPY_NAME = {
    "dim": "axis",
    "keepdim": "keepdims",
    "start_dim": "start_axis",
    "end_dim": "end_axis",
}
_TORCH_NAMES = frozenset(_NUMPY_NAME)
T = TypeVar("T")


def torch_spelling(fn: Callable[..., T]) -> Callable[..., T]:
    """``fn``, written with numpy's argument names (``axis=``, ``keepdims=``, ``start_axis=``,
    ``end_axis=``), called with those or PyTorch's (``dim=``, ``keepdim=``, ...)."""

    @functools.wraps(fn)
    def either_spelling(*args: Any, **kwargs: Any) -> T:
        if kwargs and not _TORCH_NAMES.isdisjoint(kwargs):
            for torch_name in _TORCH_NAMES.intersection(kwargs):
                numpy_name = _NUMPY_NAME[torch_name]
                if numpy_name in kwargs:
                    raise TypeError(
                        f"{fn.__qualname__}(): got both {numpy_name}= (numpy's spelling) and "
                        f"{torch_name}= (PyTorch's); pass one of them"
                    )
                kwargs[numpy_name] = kwargs.pop(torch_name)
        return fn(*args, **kwargs)

    return either_spelling


def _operator(name: str) -> Callable[[Tensor, Any], Tensor]:
    """``self <op> other``, through the primitive ``name``."""
    return lambda self, other: METHODS[name](self, other)


def _reflected(name: str) -> Callable[[Tensor, Any], Tensor]:
    """``other <op> self`` (numpy or Python on the left), through the primitive ``name``."""
    return lambda self, other: METHODS[name](other, self)


def _method(name: str) -> Callable[[Tensor], Tensor]:
    """``self.name()``, through the primitive ``name``."""
    return lambda self: METHODS[name](self)


class Tensor:
    """A numpy array plus what backpropagation needs.

    ``data`` is the numpy array; ``grad`` the accumulated gradient (a Tensor or
    None); ``requires_grad`` whether gradients flow to it. A tensor made by an op
    on tensors that require grad remembers that op (it is not a leaf); tensors
    made by the user are leaves. Create tensors with :func:`gradwell.tensor`.
    """

    __slots__ = (
        "data",
        "grad",
        "requires_grad",
        "_op",
        "_inputs",
        "_attrs",
        "_needs",
        "_seq",
        "_hooks",
        "_version",
        "name",
        "__weakref__",
    )
    # numpy must hand `array <op> tensor` over to the tensor's reflected operator.
    __array_ufunc__ = None

    def __init__(
        self,
        data: Array,
        requires_grad: bool = False,
        _op: Any = None,
        _inputs: tuple[Tensor, ...] | None = (),
        _attrs: dict[str, Any] | None = None,
        _needs: tuple[bool, ...] = (),
        _seq: int = 0,
    ) -> None:
        self.data = data
        self.grad: Tensor | None = None
        self.requires_grad = requires_grad
        self._op = _op
        self._inputs = _inputs
        self._attrs = _attrs
        self._needs = _needs  # which inputs require grad, fixed when the op ran
        self._seq = _seq  # creation number: larger than every input's
        self._hooks: list[Callable[[Tensor], Tensor | None]] | None = None
        self._version = 0  # the stamp of its last in-place write (recording.stamp_write)
        self.name: str | None = None

    # --- array facts -------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def is_leaf(self) -> bool:
        """True for tensors the user made; False for results of recorded ops."""
        return self._op is None

    @property
    def op(self) -> str | None:
        """Name of the primitive that produced this tensor (None for leaves)."""
        return None if self._op is None else self._op.name

    def __len__(self) -> int:
        return len(self.data)

    def numpy(self) -> Array:
        """The underlying numpy array (shared, not copied)."""
        return self.data

    def item(self) -> Any:
        """The value of a one-element tensor as a Python number."""
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element; got shape {self.shape}")
        return self.data.item()

    def tolist(self) -> Any:
        return self.data.tolist()

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __bool__(self) -> bool:
        return bool(self.data)

    def __array__(self, dtype: Any = None, copy: Any = None) -> Array:
        return self.data if dtype is None else self.data.astype(dtype)

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        body = np.array2string(self.data, separator=", ", prefix="tensor(", precision=4)
        extra = ""
        if self.data.dtype != np.float32:
            extra += f", dtype={self.data.dtype}"
        if self._op is not None:
            extra += f", op={self._op.name}"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    # --- graph ---------------------------------------------------------------
    def detach(self) -> Tensor:
        """The same data, cut from the graph (shares memory)."""
        return Tensor(self.data)

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(
                f"only floating-point tensors can require gradients; got dtype {self.data.dtype}"
            )
        if not self.is_leaf:
            raise RuntimeError("requires_grad can only be changed on leaf tensors")
        self.requires_grad = requires_grad
        return self

    def register_hook(self, fn: Callable[[Tensor], Tensor | None]) -> Callable[[], None]:
        """Call ``fn(grad)`` when this tensor's gradient is computed in backward.

        ``fn`` may return a replacement gradient. Returns a function that removes the hook.
        """
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that does not require grad")
        if self._hooks is None:
            self._hooks = []
        self._hooks.append(fn)
        hooks = self._hooks
        return lambda: hooks.remove(fn)

    def backward(
        self,
        grad: Any = None,
        retain_graph: bool | None = None,
        create_graph: bool = False,
    ) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad``.

        ``grad`` is the gradient of some scalar with respect to ``self`` and is
        needed unless ``self`` has one element. The graph's saved intermediates are
        freed afterwards unless ``retain_graph`` (default: ``create_graph``).
        ``create_graph=True`` records the backward pass, so gradients of gradients work.

        >>> import gradwell as gw
        >>> x = gw.tensor(3.0, requires_grad=True)
        >>> (x * x).backward()
        >>> x.grad.item()
        6.0
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward() called on a tensor that does not require grad: nothing it depends "
                "on has requires_grad=True (was it computed under no_grad, or from detached data?)"
            )
        seed = _seed_gradient(self, grad, "backward()")
        METHODS["run_backward"](
            [self],
            [Tensor(seed) if create_graph else seed],
            retain_graph=create_graph if retain_graph is None else retain_graph,
            create_graph=create_graph,
        )

    # --- in-place writes -------------------------------------------------------
    # Each gives the tensor a new version: backward refuses to use a tensor written
    # after the op that read it ran. Writing into ``.data``'s array directly, or
    # assigning ``.data``, bypasses this and is the caller's responsibility.
    def __setitem__(self, index: Any, value: Any) -> None:
        self.data[_plain_index(index)] = value.data if isinstance(value, Tensor) else value
        self.bump_version()

    def fill_(self, value: Any) -> Tensor:
        """Set every element to ``value``, in place."""
        self.data.fill(value)
        self.bump_version()
        return self

    def zero_(self) -> Tensor:
        """Set every element to zero, in place."""
        return self.fill_(0)

    def copy_(self, src: Any) -> Tensor:
        """Copy ``src`` (broadcast to this shape) into this tensor, in place."""
        self[...] = src
        return self

    def bump_version(self) -> None:
        """Count an in-place write made to ``.data`` by other means (optimizers, loading)."""
        self._version = recording.stamp_write()

    # --- operators: each calls its primitive by name ---------------------------
    __add__, __radd__ = _operator("add"), _reflected("add")
    __sub__, __rsub__ = _operator("sub"), _reflected("sub")
    __mul__, __rmul__ = _operator("mul"), _reflected("mul")
    __truediv__, __rtruediv__ = _operator("div"), _reflected("div")
    __pow__, __rpow__ = _operator("pow"), _reflected("pow")
    __mod__, __rmod__ = _operator("remainder"), _reflected("remainder")
    __floordiv__, __rfloordiv__ = _operator("floor_divide"), _reflected("floor_divide")
    __matmul__, __rmatmul__ = _operator("matmul"), _reflected("matmul")
    __neg__, __abs__ = _method("neg"), _method("abs")
    __eq__ = _operator("eq")  # type: ignore[assignment]
    __ne__ = _operator("ne")  # type: ignore[assignment]
    __lt__, __le__ = _operator("lt"), _operator("le")
    __gt__, __ge__ = _operator("gt"), _operator("ge")
    # Bitwise on integers, logical on booleans, as in PyTorch (numpy refuses floats).
    __and__, __rand__ = _operator("bitwise_and"), _reflected("bitwise_and")
    __or__, __ror__ = _operator("bitwise_or"), _reflected("bitwise_or")
    __xor__, __invert__ = _operator("bitwise_xor"), _method("bitwise_not")

    def __pos__(self) -> Tensor:
        return self

    def __getitem__(self, index: Any) -> Tensor:
        return METHODS["getitem"](self, index=_plain_index(index))

    # --- methods mirroring the gw.* functions -------------------------------
    exp, log, log1p, sqrt = _method("exp"), _method("log"), _method("log1p"), _method("sqrt")
    abs, tanh, sigmoid, relu = _method("abs"), _method("tanh"), _method("sigmoid"), _method("relu")

    def clip(self, min: Any = None, max: Any = None) -> Tensor:
        return METHODS["clip"](self, min=min, max=max)

    clamp = clip

    def pow(self, exponent: Any) -> Tensor:
        return METHODS["pow"](self, exponent)

    # Methods with an axis take numpy's names (axis=, keepdims=) and PyTorch's (dim=, ...).
    @torch_spelling
    def softmax(self, axis: int = -1) -> Tensor:
        return METHODS["softmax"](self, axis=axis)

    @torch_spelling
    def log_softmax(self, axis: int = -1) -> Tensor:
        return METHODS["log_softmax"](self, axis=axis)

    @torch_spelling
    def sum(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return METHODS["sum"](self, axis=_axes(axis), keepdims=keepdims)

    @torch_spelling
    def mean(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return METHODS["mean"](self, axis=_axes(axis), keepdims=keepdims)

    @torch_spelling
    def var(self, axis: Any = None, keepdims: bool = False, correction: int = 1) -> Tensor:
        return METHODS["var"](self, axis, keepdims, correction)

    @torch_spelling
    def std(self, axis: Any = None, keepdims: bool = False, correction: int = 1) -> Tensor:
        return METHODS["std"](self, axis, keepdims, correction)

    def max(
        self, dim: Any = None, keepdim: Any = None, *, axis: Any = None, keepdims: Any = None
    ) -> Any:
        """As PyTorch's: the largest element (a tensor), or along ``dim`` the named tuple
        ``(values, indices)``; ``axis=`` (numpy's spelling) gives the values only."""
        return METHODS["tensor_max"](self, dim, keepdim, axis=axis, keepdims=keepdims)

    def min(
        self, dim: Any = None, keepdim: Any = None, *, axis: Any = None, keepdims: Any = None
    ) -> Any:
        """As :meth:`max`, for the smallest element."""
        return METHODS["tensor_min"](self, dim, keepdim, axis=axis, keepdims=keepdims)

    @torch_spelling
    def logsumexp(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return METHODS["logsumexp"](self, axis=_axes(axis), keepdims=keepdims)

    @torch_spelling
    def argmax(self, axis: int | None = None, keepdims: bool = False) -> Tensor:
        """Index of the largest element (of the flattened tensor when no axis is given)."""
        return METHODS["argmax"](self, axis=axis, keepdims=keepdims)

    @torch_spelling
    def argmin(self, axis: int | None = None, keepdims: bool = False) -> Tensor:
        """Index of the smallest element (of the flattened tensor when no axis is given)."""
        return METHODS["argmin"](self, axis=axis, keepdims=keepdims)

    def reshape(self, *shape: Any) -> Tensor:
        return METHODS["reshape"](self, shape[0] if len(shape) == 1 else shape)

    view = reshape  # gradwell never aliases: a view is a reshape

    def transpose(self, *axes: Any) -> Tensor:
        return METHODS["transpose"](self, axes[0] if len(axes) == 1 else (axes or None))

    permute = transpose

    # --- PyTorch's housekeeping spellings ------------------------------------
    def size(self, dim: int | None = None) -> Any:
        """PyTorch's ``x.size()``: the shape (a tuple); ``x.size(d)``: the length of axis
        ``d``. (Not numpy's element count: that is ``x.numel()``.)

        >>> import gradwell as gw
        >>> x = gw.zeros(2, 3)
        >>> x.size(), x.size(-1), x.numel()
        ((2, 3), 3, 6)
        """
        shape = self.data.shape
        return shape if dim is None else shape[dim]

    def numel(self) -> int:
        """The number of elements."""
        return int(self.data.size)

    def cpu(self) -> Tensor:
        """This tensor: gradwell runs on the CPU only."""
        return self

    def to(self, target: Any = None, dtype: Any = None) -> Tensor:
        """This tensor on ``target`` (only "cpu" exists) or cast to a dtype."""
        if target is not None and not _is_cpu(target):
            try:
                dtype, target = np.dtype(target), None
            except TypeError:
                raise ValueError(_no_device(target)) from None
        return self if dtype is None or np.dtype(dtype) == self.dtype else self.astype(dtype)

    @property
    def T(self) -> Tensor:
        return METHODS["transpose"](self, axes=None)

    @torch_spelling
    def flatten(self, start_axis: int = 0, end_axis: int = -1) -> Tensor:
        return METHODS["flatten"](self, start_axis, end_axis)

    @torch_spelling
    def squeeze(self, axis: Any = None) -> Tensor:
        return METHODS["squeeze"](self, axis)

    @torch_spelling
    def unsqueeze(self, axis: int) -> Tensor:
        return METHODS["unsqueeze"](self, axis)

    def broadcast_to(self, shape: Sequence[int]) -> Tensor:
        return METHODS["broadcast_to"](self, shape=tuple(shape))

    def astype(self, dtype: Any) -> Tensor:
        return METHODS["astype"](self, dtype=np.dtype(dtype))

    def float(self) -> Tensor:
        return self.astype(np.float32)

    def double(self) -> Tensor:
        return self.astype(np.float64)


def _is_cpu(device: Any) -> bool:
    return str(getattr(device, "type", device)).split(":")[0] == "cpu"


def _no_device(device: Any) -> str:
    return f"gradwell runs on the CPU only (numpy); cannot move to device {device!r}: use 'cpu'"


def _axes(axis: Any) -> Any:
    """Axis arguments in one canonical form (None, an int, or a tuple)."""
    return tuple(axis) if isinstance(axis, list) else axis


def _plain_index(index: Any) -> Any:
    """An index with tensors replaced by their arrays (indices carry no gradient)."""
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    if isinstance(index, list):
        return np.asarray(index)
    return index


def _seed_gradient(out: Tensor, grad: Any, where: str) -> Array:
    if grad is None:
        if out.data.size != 1:
            raise RuntimeError(
                f"{where} without a gradient needs a one-element output; got shape "
                f"{out.shape}. Reduce it first (e.g. .sum() or .mean()) or pass a gradient "
                "of the same shape"
            )
        return np.ones_like(out.data)
    g = grad.data if isinstance(grad, Tensor) else np.asarray(grad, dtype=out.data.dtype)
    if g.shape != out.shape:
        raise ValueError(
            f"{where}: the gradient must have the output's shape {out.shape}; got {g.shape}"
        )
    return g
