"""The one recording seam: grad mode, creation numbers, and the observers of ops and gradients.

Every op runs through :func:`gradwell.autograd.ops.apply` and every gradient through
the backward interpreter (:mod:`gradwell.autograd.engine`); both report to the
observers registered here and to nothing else. With none registered, each costs
one truthiness test. Clients (the compiled replay, ``detect_anomaly``, ``viz.graph``,
the doctor's replay) register with :func:`observe`, or take a :class:`Tape` of the
ops of a block with :func:`record`::

    with gw.autograd.record() as tape:
        loss = loss_fn(model(x), y)
    [step.op.name for step in tape]

The registry is thread-safe (observers are tuples replaced under a lock); grad mode
and the creation counter are process-wide.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Callable, Iterator
from typing import Any


class _GradMode:
    """Whether new ops are recorded. A plain attribute: read on every op."""

    enabled = True


_mode = _GradMode()

# Creation numbers of recorded nodes (an op's output is numbered after its inputs), and
# the version stamps of in-place writes: a tensor written after node n was made has a
# version above n's number.
node_counter = itertools.count(1)


class _Writes:
    """The stamp of the latest in-place write through the public API (0: none yet)."""

    last = 0


writes = _Writes()


def stamp_write() -> int:
    """A fresh version stamp for a tensor written in place now."""
    writes.last = version = next(node_counter)
    return version


class Step:
    """One op as an observer sees it: the primitive, its input and output tensors, its
    keyword arguments (without what it saved) and the scope it ran in (see :func:`scope`)."""

    __slots__ = ("op", "inputs", "output", "attrs", "scope")

    def __init__(self, op: Any, inputs: tuple[Any, ...], output: Any, attrs: dict[str, Any]):
        self.op, self.inputs, self.output, self.attrs = op, inputs, output, attrs
        self.scope = _scope()

    def __repr__(self) -> str:
        return f"Step({self.op.name}, scope={self.scope!r})"


class Observers:
    """What is registered: tuples, replaced (never changed) on registration."""

    __slots__ = ("op", "grad", "vjp")

    def __init__(self) -> None:
        self.op: tuple[Callable[[Step], None], ...] = ()
        self.grad: tuple[Callable[[Any, Any], Any], ...] = ()
        self.vjp: tuple[Callable[[Any, Any, Any], None], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.op or self.grad or self.vjp)


observers = Observers()
_lock = threading.Lock()


@contextlib.contextmanager
def observe(
    *,
    op: Callable[[Step], None] | None = None,
    grad: Callable[[Any, Any], Any] | None = None,
    vjp: Callable[[Any, Any, Any], None] | None = None,
) -> Iterator[None]:
    """Register observers for the duration of the block.

    ``op(step)`` after every op, recorded in the graph or not; ``grad(node, g)`` when
    backward knows a node's (or leaf's) total gradient, and may return a replacement;
    ``vjp(node, g, input_grads)`` after each VJP. Gradients are arrays, or Tensors with
    ``create_graph``.
    """
    added = [(kind, fn) for kind, fn in (("op", op), ("grad", grad), ("vjp", vjp)) if fn]
    with _lock:
        for kind, fn in added:
            setattr(observers, kind, (*getattr(observers, kind), fn))
    try:
        yield
    finally:
        with _lock:
            for kind, fn in added:
                left = list(getattr(observers, kind))
                left.remove(fn)
                setattr(observers, kind, tuple(left))


class Tape(list):  # type: ignore[type-arg]
    """The :class:`Step` of every op of a block, in the order they ran."""


@contextlib.contextmanager
def record() -> Iterator[Tape]:
    """Record every op run inside the block onto a :class:`Tape`.

    >>> import gradwell as gw
    >>> x = gw.tensor([1.0, 2.0], requires_grad=True)
    >>> with gw.autograd.record() as tape:
    ...     y = (x * x).sum()
    >>> [step.op.name for step in tape]
    ['mul', 'sum']
    """
    tape = Tape()
    with observe(op=tape.append):
        yield tape


def _no_scope() -> Any:
    return None


_scope: Callable[[], Any] = _no_scope


def set_scope(provider: Callable[[], Any]) -> None:
    """Name what says where an op runs: ``gradwell.nn`` installs its current module."""
    global _scope
    _scope = provider


def scope() -> Any:
    """Where the running op is (the innermost module being called), or None."""
    return _scope()


class no_grad(contextlib.ContextDecorator):
    """Record nothing inside the block (inference, optimizer updates).

    >>> import gradwell as gw
    >>> x = gw.tensor([1.0], requires_grad=True)
    >>> with gw.no_grad():
    ...     y = x * 2
    >>> y.requires_grad
    False
    """

    def __enter__(self) -> None:
        self._prev = _mode.enabled
        _mode.enabled = False

    def __exit__(self, *exc: object) -> None:
        _mode.enabled = self._prev


class enable_grad(contextlib.ContextDecorator):
    """Record ops again inside a ``no_grad`` block."""

    def __enter__(self) -> None:
        self._prev = _mode.enabled
        _mode.enabled = True

    def __exit__(self, *exc: object) -> None:
        _mode.enabled = self._prev


def is_grad_enabled() -> bool:
    return _mode.enabled
