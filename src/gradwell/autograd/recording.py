"""The one recording seam: grad mode, creation numbers, and the observers of ops and gradients.

Every op runs through :func:`gradwell.autograd.ops.apply` and every gradient through
the backward interpreter (:mod:`gradwell.autograd.engine`); both report to the
observers registered here and to nothing else. Clients (the compiled replay,
``detect_anomaly``, ``viz.graph``, the doctor's replay) register with :func:`observe`,
or take a :class:`Tape` of the ops of a block with :func:`record`::

    with gw.autograd.record() as tape:
        loss = loss_fn(model(x), y)
    [step.op.name for step in tape]

Grad mode and the observers belong to a thread, as PyTorch's grad mode does: a block
under ``no_grad`` in one thread leaves another thread recording, and a tape holds the
ops of its own thread only. Creation numbers and version stamps are process-wide (a
tensor may be written in one thread and differentiated in another).
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Callable, Iterator
from threading import get_ident
from typing import Any


class _GradMode(threading.local):
    """Whether this thread records new ops."""

    def __init__(self) -> None:
        self.enabled = True


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


class Observers(threading.local):
    """What this thread has registered: tuples, replaced (never changed) on registration."""

    def __init__(self) -> None:
        self.op: tuple[Callable[[Step], None], ...] = ()
        self.grad: tuple[Callable[[Any, Any], Any], ...] = ()
        self.vjp: tuple[Callable[[Any, Any, Any], None], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.op or self.grad or self.vjp)


observers = Observers()

# The hot path's checks. Reading a thread's own state costs several times a global read,
# so an op first tests these sets of threads, empty nearly always, and reads its own
# thread's state only when one is not. (A thread that ends while in one leaves only a
# slower path behind, never a wrong one.)
no_grad_threads: set[int] = set()  # the threads whose grad mode is off
observing_threads: set[int] = set()  # the threads with observers registered


def set_grad_mode(enabled: bool) -> bool:
    """Turn recording on or off in this thread; returns what it was."""
    previous, _mode.enabled = _mode.enabled, enabled
    if enabled:
        no_grad_threads.discard(get_ident())
    else:
        no_grad_threads.add(get_ident())
    return previous


def observing() -> bool:
    """Whether this thread has observers registered."""
    return bool(observing_threads) and bool(observers)


@contextlib.contextmanager
def observe(
    *,
    op: Callable[[Step], None] | None = None,
    grad: Callable[[Any, Any], Any] | None = None,
    vjp: Callable[[Any, Any, Any], None] | None = None,
) -> Iterator[None]:
    """Register observers, in this thread, for the duration of the block.

    ``op(step)`` after every op, recorded in the graph or not; ``grad(node, g)`` when
    backward knows a node's (or leaf's) total gradient, and may return a replacement;
    ``vjp(node, g, input_grads)`` after each VJP. Gradients are arrays, or Tensors with
    ``create_graph``.
    """
    added = [(kind, fn) for kind, fn in (("op", op), ("grad", grad), ("vjp", vjp)) if fn]
    for kind, fn in added:
        setattr(observers, kind, (*getattr(observers, kind), fn))
    observing_threads.add(get_ident())
    try:
        yield
    finally:
        for kind, fn in added:
            left = list(getattr(observers, kind))
            left.remove(fn)
            setattr(observers, kind, tuple(left))
        if not observers:
            observing_threads.discard(get_ident())


class Tape(list):  # type: ignore[type-arg]
    """The :class:`Step` of every op of a block, in the order they ran."""


@contextlib.contextmanager
def record() -> Iterator[Tape]:
    """Record every op this thread runs inside the block onto a :class:`Tape`.

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


class _GradModeBlock(contextlib.ContextDecorator):
    mode: bool

    def __enter__(self) -> None:
        self._prev = set_grad_mode(self.mode)

    def __exit__(self, *exc: object) -> None:
        set_grad_mode(self._prev)

    def _recreate_cm(self) -> _GradModeBlock:
        # A fresh block for each call of a decorated function: it may run in two threads.
        return type(self)()


class no_grad(_GradModeBlock):
    """Record nothing inside the block (inference, optimizer updates), in this thread.

    >>> import gradwell as gw
    >>> x = gw.tensor([1.0], requires_grad=True)
    >>> with gw.no_grad():
    ...     y = x * 2
    >>> y.requires_grad
    False
    """

    mode = False


class enable_grad(_GradModeBlock):
    """Record ops again inside a ``no_grad`` block."""

    mode = True


class set_grad_enabled:
    """Turn recording on or off in this thread: at once, and back as it was on leaving a
    ``with`` block (as ``torch.set_grad_enabled``).

    >>> import gradwell as gw
    >>> x = gw.tensor([1.0], requires_grad=True)
    >>> with gw.set_grad_enabled(False):
    ...     (x * 2).requires_grad
    False
    >>> (x * 2).requires_grad
    True
    """

    def __init__(self, mode: bool) -> None:
        self._prev = set_grad_mode(bool(mode))

    def __enter__(self) -> None:
        pass

    def __exit__(self, *exc: object) -> None:
        set_grad_mode(self._prev)


def is_grad_enabled() -> bool:
    """Whether this thread records new ops."""
    return _mode.enabled
