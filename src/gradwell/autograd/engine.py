"""The backward interpreter: the one algorithm that turns recorded ops into gradients.

Every differentiable result is a :class:`Tensor` that remembers the primitive
that made it (``_op``), its inputs (``_inputs``, the graph's edges) and the
primitive's non-tensor arguments (``_attrs``), and a creation number (``_seq``).
``backward`` visits each node exactly once, in decreasing creation number -- a
reverse topological order, found with a heap and no recursion, so depth is
unlimited. A node's gradient is the sum of its consumers' contributions,
complete before it is propagated: the dynamic programming that makes backward
linear in the number of nodes, however many paths the graph has. Eager backward
and the compiled replay (:mod:`gradwell.train.compiled`) share its per-step functions:
:func:`accumulate` (sum a contribution, undoing broadcasting) and :func:`hand_out`.

A leaf's gradient hooks fire as soon as its gradient is complete -- when the last
node of the graph that uses it has contributed -- not after the whole graph: a
data-parallel reducer can then start averaging a layer's gradients while backward
still runs through the layers below. Counting a leaf's remaining users costs one walk
of the graph, done only in a backward that reaches a leaf with hooks.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from .ops import ArrayF, TensorF
from .recording import enable_grad, is_grad_enabled, no_grad, observers, set_grad_mode, writes
from .tensor import METHODS, Tensor, _seed_gradient

__all__ = [
    "GraphReleasedError",
    "enable_grad",
    "grad",
    "is_grad_enabled",
    "no_grad",
    "run_backward",
]


class GraphReleasedError(RuntimeError):
    """Backward reached an op whose saved intermediates were already freed."""


def _released(node: Tensor) -> GraphReleasedError:
    return GraphReleasedError(
        f"backward reached op '{node._op.name}' whose graph was already freed by an earlier "
        "backward; pass retain_graph=True to the first backward() to go through it twice"
    )


def _check_versions(node: Tensor) -> None:
    """Raise if a tensor whose values ``node``'s VJP reads (its inputs, its output) was
    written in place (through the Tensor API) after the op ran."""
    seq, reads = node._seq, node._op.reads
    read: list[Tensor | None] = [node if "o" in reads else None]
    if "i" in reads:
        read.extend(node._inputs or ())
    for k, t in enumerate(read):
        if t is not None and t._version > seq:
            what = "its output" if k == 0 else f"its input {k - 1} (shape {t.shape})"
            raise RuntimeError(
                f"backward through op '{node._op.name}': {what} was modified in place after "
                "the op ran, so its gradient would come from the new values; make the change "
                "after backward(), or write to a copy"
            )


def _leaf_grad(g: Any, handed_out: set[int]) -> Any:
    """A gradient array that a leaf may own: never shared with another leaf, writable."""
    if isinstance(g, np.ndarray):
        # A view (base set) or a read-only array is copied; the cheap tests go first.
        if g.base is not None or id(g) in handed_out or not g.flags.writeable:
            g = g.copy()
        handed_out.add(id(g))
    return g


def accumulate(total: Any, g: Any, shape: tuple[int, ...], sum_to: Any) -> Any:
    """A node's gradient so far (None: none yet) plus one consumer's contribution, summed
    back to the node's ``shape`` first: broadcasting is undone here, once, for every op."""
    if g.shape != shape:
        g = sum_to(g, shape)
    return g if total is None else total + g


def _observed(t: Tensor, g: Any, create_graph: bool) -> Any:
    """``t``'s total gradient after its own hooks (which see Tensors) and the observers'.

    Any hook may return a replacement gradient.
    """
    for h in t._hooks or ():
        r = h(g if create_graph else Tensor(g))
        if r is not None:
            g = r if create_graph else (r.data if isinstance(r, Tensor) else r)
    for observe in observers.grad:
        r = observe(t, g)
        if r is not None:
            g = r
    return g


def hand_out(leaf: Tensor, g: Any, handed_out: set[int]) -> None:
    """Pass a leaf's complete first-order gradient array through its hooks (and the
    gradient observers), then add it to ``leaf.grad`` in the leaf's dtype (a float32
    leaf's gradient is float32, as in PyTorch)."""
    if leaf._hooks or observers.grad:
        g = _observed(leaf, g, False)
    dtype = leaf.data.dtype
    if g.dtype is not dtype and g.dtype != dtype:
        g = g.astype(dtype)
    if leaf.grad is None:
        leaf.grad = Tensor(_leaf_grad(g, handed_out))
    else:
        leaf.grad = Tensor(leaf.grad.data + g)


def _uses_left(heap: list[tuple[int, int, Tensor]]) -> dict[int, int]:
    """For each leaf with hooks: how many uses of it by the nodes still to visit (those
    on the heap and every node they reach) have still to contribute to its gradient.
    Every node reached from the heap comes later than every node visited so far."""
    uses: dict[int, int] = {}
    stack = [node for _, _, node in heap]
    seen = {id(node) for node in stack}
    while stack:
        node = stack.pop()
        node_inputs = node._inputs
        if node_inputs is None:  # freed: backward will say so when it gets there
            continue
        for inp, need in zip(node_inputs, node._needs):
            if not need:
                continue
            k = id(inp)
            if inp._op is None:
                if inp._hooks:
                    uses[k] = uses.get(k, 0) + 1
            elif k not in seen:
                seen.add(k)
                stack.append(inp)
    return uses


def _reference_vjp(node: Tensor, g: Tensor, inputs: Sequence[Tensor]) -> list[Any]:
    """The VJP of a fused op for ``create_graph``: its reference definition, recorded
    on the inputs and differentiated by this interpreter, so every order is exact."""
    with enable_grad():
        out = node._op.reference(node.data, *inputs, **(node._attrs or {}))
        wanted = list({id(t): t for t, need in zip(inputs, node._needs) if need}.values())
        found = run_backward(
            [out], [g], retain_graph=True, create_graph=True, inputs=wanted, stop_at_inputs=True
        )
    by_id = {id(t): f for t, f in zip(wanted, found or ())}
    return [by_id[id(t)] if need else None for t, need in zip(inputs, node._needs)]


def run_backward(
    outputs: Sequence[Tensor],
    grad_outputs: Sequence[Any],
    *,
    retain_graph: bool,
    create_graph: bool,
    inputs: Sequence[Tensor] | None = None,
    stop_at_inputs: bool = False,
) -> list[Any] | None:
    """Propagate ``grad_outputs`` from ``outputs`` to the leaves.

    With ``inputs=None`` gradients accumulate into the leaves' ``.grad`` (backward);
    otherwise the gradients of ``inputs`` are returned and no ``.grad`` is touched
    (``gw.grad``); ``stop_at_inputs`` goes no further up than ``inputs``. Gradients are
    numpy arrays, or Tensors with ``create_graph``.

    Every recorded node carries a creation number, larger than its inputs'. Visiting
    nodes from a max-heap of creation numbers is therefore a reverse topological
    order discovered on the fly: when a node comes off the heap, every consumer of
    it has already added its contribution, so its gradient is complete.
    """
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

    # Hot loop: the observers (registered before backward starts) and the heap's
    # functions are read once, as locals.
    grad_observers, vjp_observers = observers.grad, observers.vjp
    push, pop, sum_to = heapq.heappush, heapq.heappop, F.sum_to
    handed_out: set[int] = set()

    def deliver(k: int, leaf: Tensor) -> None:
        """A leaf's complete gradient: through its hooks, into ``.grad`` or ``found``."""
        g = grads.pop(k)
        if wanted is None and not create_graph:
            hand_out(leaf, g, handed_out)
            return
        if leaf._hooks or grad_observers:
            g = _observed(leaf, g, create_graph)
        dtype = leaf.data.dtype
        if g.dtype is not dtype and g.dtype != dtype:  # a float32 leaf gets float32, as torch
            g = F.cast(g, dtype)
        if wanted is not None:
            if k in wanted:
                found[wanted[k]] = g
        else:
            leaf.grad = g if leaf.grad is None else leaf.grad + g

    # Leaves with hooks are delivered as soon as complete: ``uses`` counts their uses
    # still to come, from the first time backward reaches one (None until then).
    uses: dict[int, int] | None = None
    hooked = False
    previous_mode = set_grad_mode(create_graph)
    try:
        while heap:
            _, key, node = pop(heap)
            g = grads.pop(key)
            if node._hooks or grad_observers:
                g = _observed(node, g, create_graph)
            if wanted is not None and key in wanted:
                found[wanted[key]] = g
                if stop_at_inputs:
                    continue
            node_inputs = node._inputs
            if node_inputs is None:
                raise _released(node)
            needs, op = node._needs, node._op
            if writes.last > node._seq:  # something was written in place since the op ran
                _check_versions(node)
            if not create_graph:
                datas = (
                    (node_inputs[0].data,)
                    if len(node_inputs) == 1
                    else [t.data for t in node_inputs]
                )
                in_grads = op.vjp(F, g, node.data, datas, needs, node._attrs)
            elif op.reference is not None:
                in_grads = _reference_vjp(node, g, node_inputs)
            else:
                in_grads = op.vjp(F, g, node, node_inputs, needs, node._attrs)
            if vjp_observers:
                for observe in vjp_observers:
                    observe(node, g, in_grads)
            if not retain_graph:
                node._inputs = None
                node._attrs = None
            for inp, need, ig in zip(node_inputs, needs, in_grads):
                if not need or ig is None:
                    continue
                k = id(inp)
                total = grads.get(k)
                grads[k] = accumulate(total, ig, inp.data.shape, sum_to)
                if total is None:  # its first contribution: visit it once all are in
                    if inp._op is None:
                        leaves[k] = inp
                        hooked = hooked or bool(inp._hooks)
                    else:
                        push(heap, (-inp._seq, k, inp))
            if uses is not None:
                for inp, need in zip(node_inputs, needs):
                    k = id(inp)
                    if need and k in uses:
                        uses[k] -= 1
                        if not uses[k] and k in leaves:
                            deliver(k, leaves.pop(k))
            elif hooked:  # the first leaf with hooks: count the uses still to come
                uses = _uses_left(heap)
                for k in [k for k, leaf in leaves.items() if leaf._hooks and k not in uses]:
                    deliver(k, leaves.pop(k))

        # The other leaves last, each once, with the sum of all its contributions.
        for k, leaf in leaves.items():
            deliver(k, leaf)
    finally:
        set_grad_mode(previous_mode)
    return found if inputs is not None else None


def compile_replay(p: Any) -> Any:
    """A compiled step's plan (:class:`gradwell.train.compiled.Plan`) as one straight-line
    function of the argument arrays that returns the output arrays: the forwards, then this
    interpreter's work for each step on a path from the loss, in its order, each
    contribution summed by :func:`accumulate` (so the numbers are backward()'s bit for bit)
    and each outside tensor's gradient handed out (:func:`hand_out`) right after the last
    step that adds to it. ``s<j>`` holds slot j's array, ``g<j>`` its gradient; each name is
    deleted after its last use, as backward() frees the graph behind it."""
    n_in, loss = p.n_args + len(p.outside), p.outputs[-1]
    ns: dict[str, Any] = {"F": ArrayF, "acc": accumulate, "sum_to": ArrayF.sum_to, "hand": hand_out,
                          "outside": p.outside, "ones": np.ones}  # fmt: skip
    body = [f"s{k} = outside[{k - p.n_args}].data" for k in range(p.n_args, n_in)]
    for i, (op, attrs, ins, j, _) in enumerate(p.steps):
        ns[f"f{i}"], ns[f"k{i}"] = op.forward, attrs
        call = ", ".join([f"s{k}" for k in ins] + ([f"**k{i}"] if attrs else []))
        body.append(f"s{j}{f', saved{i}' if op.saves else ''} = f{i}({call})")
    body.append(f"g{loss} = ones({p.shapes[loss]}, s{loss}.dtype)")
    reached = {loss}
    for i, (op, _, ins, j, needs) in reversed(list(enumerate(p.steps))):
        if needs is None or j not in reached:
            continue
        ns[f"b{i}"], ns[f"n{i}"] = op.vjp, needs
        kw = f"{{**k{i}, 'saved': saved{i}}}" if op.saves else f"k{i}"
        datas = "".join(f"s{k}, " for k in ins)
        lines = [f"if g{j} is not None:", f"    r = b{i}(F, g{j}, s{j}, ({datas}), n{i}, {kw})"]
        lines += [f"    if r[{pos}] is not None: g{k} = acc(g{k}, r[{pos}], {p.shapes[k]}, sum_to)"
                  for pos, k in enumerate(ins) if needs[pos]]  # fmt: skip
        reached.update(k for k, need in zip(ins, needs) if need)
        body.append("\n".join(lines))
    # Each name's last use, read off the code: a leaf's gradient is complete there.
    names = [set(re.findall(r"\b(?:s|g|saved)\d+\b", text)) for text in body]
    last = {name: t for t, used in enumerate(names) for name in used}
    returned = {f"s{k}" for k in p.outputs}
    code = [f"def replay({', '.join(f's{k}' for k in range(p.n_args))}):", "    handed_out = set()",
            f"    {' = '.join(f'g{k}' for k in sorted(reached))} = None"]  # fmt: skip
    for t, text in enumerate(body):
        code.append("    " + text.replace("\n", "\n    "))
        code += [f"    if g{k} is not None: hand(outside[{k - p.n_args}], g{k}, handed_out)"
                 for k in range(p.n_args, n_in) if last.get(f"g{k}") == t]  # fmt: skip
        dead = sorted(name for name in names[t] if last[name] == t and name not in returned)
        if dead:
            code.append(f"    del {', '.join(dead)}")
    code.append(f"    return ({''.join(f's{k}, ' for k in p.outputs)})")
    exec(compile("\n".join(code), "<gradwell replay>", "exec"), ns)
    return ns["replay"]


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


METHODS["run_backward"] = run_backward
