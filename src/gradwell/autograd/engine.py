"""The reverse-mode engine: recording ops on the forward pass, and backward.

Every differentiable result is a :class:`Tensor` that remembers the primitive
that made it (``_op``), its inputs (``_inputs``, the graph's edges) and the
primitive's non-tensor arguments (``_attrs``), and a creation number (``_seq``).
``backward`` visits each node exactly once, in decreasing creation number -- a
reverse topological order, found with a heap and no recursion, so depth is
unlimited. A node's gradient is the sum of its consumers' contributions,
complete before it is propagated: the dynamic programming that makes backward
linear in the number of nodes, however many paths the graph has.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .ops import Primitive
    from .tensor import Tensor


class _GradMode:
    """Whether new ops are recorded. A plain attribute: read on every op."""

    enabled = True


_mode = _GradMode()

# Creation numbers of recorded nodes: an op's output is numbered after its inputs.
node_counter = itertools.count()

# Observers, empty unless diagnostics are on; the hot paths test only their truthiness.
#   forward_hooks: fn(op, inputs, output, attrs) after every recorded or unrecorded op
#                  (``attrs``: the op's keyword arguments, without what it saved).
#   grad_hooks:    fn(node, grad) when a node's (or leaf's) total gradient is known in
#                  backward; it may return a replacement gradient.
#   vjp_hooks:     fn(node, grad, input_grads) after each VJP ran.
forward_hooks: list[Callable[[Primitive, tuple[Tensor, ...], Tensor, dict[str, Any]], None]] = []
grad_hooks: list[Callable[[Tensor, Any], Any]] = []
vjp_hooks: list[Callable[[Tensor, Any, Sequence[Any]], None]] = []


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


class GraphReleasedError(RuntimeError):
    """Backward reached an op whose saved intermediates were already freed."""


def _released(node: Tensor) -> GraphReleasedError:
    return GraphReleasedError(
        f"backward reached op '{node._op.name}' whose graph was already freed by an earlier "
        "backward; pass retain_graph=True to the first backward() to go through it twice"
    )


def _leaf_grad(g: Any, handed_out: set[int]) -> Any:
    """A gradient array that a leaf may own: never shared with another leaf, writable."""
    if isinstance(g, np.ndarray):
        # A view (base set) or a read-only array is copied; the cheap tests go first.
        if g.base is not None or id(g) in handed_out or not g.flags.writeable:
            g = g.copy()
        handed_out.add(id(g))
    return g


def _observed(t: Tensor, g: Any, create_graph: bool) -> Any:
    """``t``'s total gradient after its own hooks (which see Tensors) and the global ones.

    Any hook may return a replacement gradient.
    """
    Tensor = (_late_imports or _bind_late_imports())[0]
    for h in t._hooks or ():
        r = h(g if create_graph else Tensor(g))
        if r is not None:
            g = r if create_graph else (r.data if isinstance(r, Tensor) else r)
    for gh in grad_hooks:
        r = gh(t, g)
        if r is not None:
            g = r
    return g


# (Tensor, ArrayF, TensorF): bound on first use, since those modules import this one.
_late_imports: tuple[Any, Any, Any] | None = None


def _bind_late_imports() -> tuple[Any, Any, Any]:
    global _late_imports
    from .ops import ArrayF, TensorF
    from .tensor import Tensor

    _late_imports = (Tensor, ArrayF, TensorF)
    return _late_imports


def run_backward(
    outputs: Sequence[Tensor],
    grad_outputs: Sequence[Any],
    *,
    retain_graph: bool,
    create_graph: bool,
    inputs: Sequence[Tensor] | None = None,
) -> list[Any] | None:
    """Propagate ``grad_outputs`` from ``outputs`` to the leaves.

    With ``inputs=None`` gradients accumulate into the leaves' ``.grad`` (backward);
    otherwise the gradients of ``inputs`` are returned and no ``.grad`` is touched
    (``gw.grad``). Gradients are numpy arrays, or Tensors with ``create_graph``.

    Every recorded node carries a creation number, larger than its inputs'. Visiting
    nodes from a max-heap of creation numbers is therefore a reverse topological
    order discovered on the fly: when a node comes off the heap, every consumer of
    it has already added its contribution, so its gradient is complete.
    """
    new_tensor, ArrayF, TensorF = _late_imports or _bind_late_imports()
    F = TensorF if create_graph else ArrayF
    grads: dict[int, Any] = {}
    heap: list[tuple[int, int, Tensor]] = []
    leaves: dict[int, Tensor] = {}
    for out, g in zip(outputs, grad_outputs):
        key = id(out)
        if key in grads:
            grads[key] = grads[key] + g
            continue
        grads[key] = g
        if out._op is None:
            leaves[key] = out
        else:
            heapq.heappush(heap, (-out._seq, key, out))

    wanted = {id(t): i for i, t in enumerate(inputs)} if inputs is not None else None
    found: list[Any] = [None] * len(inputs) if inputs is not None else []

    previous_mode = _mode.enabled
    _mode.enabled = create_graph
    try:
        while heap:
            _, key, node = heapq.heappop(heap)
            g = grads.pop(key)
            if node._hooks or grad_hooks:
                g = _observed(node, g, create_graph)
            if wanted is not None and key in wanted:
                found[wanted[key]] = g
            node_inputs = node._inputs
            if node_inputs is None:
                raise _released(node)
            needs = node._needs
            if create_graph:
                in_grads = node._op.vjp(F, g, node, node_inputs, needs, node._attrs)
            else:
                datas = (
                    (node_inputs[0].data,)
                    if len(node_inputs) == 1
                    else [t.data for t in node_inputs]
                )
                in_grads = node._op.vjp(F, g, node.data, datas, needs, node._attrs)
            if vjp_hooks:
                for vh in vjp_hooks:
                    vh(node, g, in_grads)
            if not retain_graph:
                node._inputs = None
                node._attrs = None
            for inp, need, ig in zip(node_inputs, needs, in_grads):
                if not need or ig is None:
                    continue
                if ig.shape != inp.data.shape:
                    ig = F.sum_to(ig, inp.data.shape)
                k = id(inp)
                prev = grads.get(k)
                if prev is not None:
                    grads[k] = prev + ig
                    continue
                grads[k] = ig
                if inp._op is None:
                    leaves[k] = inp
                else:
                    heapq.heappush(heap, (-inp._seq, k, inp))

        # Leaves last, each once, with the sum of all its contributions.
        handed_out: set[int] = set()
        for k, leaf in leaves.items():
            g = grads.pop(k)
            if leaf._hooks or grad_hooks:
                g = _observed(leaf, g, create_graph)
            if wanted is not None:
                if k in wanted:
                    found[wanted[k]] = g
            elif create_graph:
                leaf.grad = g if leaf.grad is None else leaf.grad + g
            elif leaf.grad is None:
                leaf.grad = new_tensor(_leaf_grad(g, handed_out))
            else:
                leaf.grad = new_tensor(leaf.grad.data + g)
    finally:
        _mode.enabled = previous_mode
    return found if inputs is not None else None


def grad(
    outputs: Any,
    inputs: Any,
    grad_outputs: Any = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
    allow_unused: bool = False,
) -> tuple[Any, ...]:
    """Gradients of ``outputs`` with respect to ``inputs``, as a tuple of Tensors.

    Unlike ``backward`` it leaves every ``.grad`` untouched. With ``create_graph``
    the results are themselves differentiable (Hessian-vector products, ...).

    >>> import gradwell as gw
    >>> x = gw.tensor(2.0, requires_grad=True)
    >>> (dx,) = gw.grad(x ** 3, x, create_graph=True)
    >>> (d2x,) = gw.grad(dx, x)
    >>> dx.item(), d2x.item()
    (12.0, 12.0)
    """
    from .tensor import Tensor, _seed_gradient

    outs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    ins = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    if grad_outputs is None or isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs] * len(outs)
    for i, t in enumerate(ins):
        if not t.requires_grad:
            raise RuntimeError(f"grad(): input {i} (shape {t.shape}) does not require grad")
    seeds = []
    for i, (o, g) in enumerate(zip(outs, grad_outputs)):
        if not o.requires_grad:
            raise RuntimeError(f"grad(): output {i} does not require grad (no path to any input)")
        seed = _seed_gradient(o, g, f"grad() output {i}")
        seeds.append(Tensor(seed) if create_graph else seed)
    found = run_backward(
        outs,
        seeds,
        retain_graph=create_graph if retain_graph is None else retain_graph,
        create_graph=create_graph,
        inputs=ins,
    )
    assert found is not None
    result = []
    for i, (t, g) in enumerate(zip(ins, found)):
        if g is None and not allow_unused:
            raise RuntimeError(
                f"grad(): input {i} (shape {t.shape}) was not used to compute the outputs; "
                "pass allow_unused=True to get None for it"
            )
        result.append(g if g is None or create_graph else Tensor(g))
    return tuple(result)


# Modules being called, innermost last; diagnostics read it to name where an op ran.
module_stack: list[Any] = []
