"""Record the ops of one call, then replay them -- forward and backward -- on arrays.

In eager mode every module call, op dispatch and Tensor costs Python time; on a
small model that is most of a training step. :func:`record` runs a function once,
eagerly, keeping every primitive it applied (the forward hooks see them all);
:func:`plan` turns that into a flat :class:`Plan`: the primitive, its attrs, and
where each input comes from -- an argument, an earlier op, or a tensor from
outside the call (a parameter, a cached constant). :meth:`Plan.run` replays the
forwards on new argument arrays, then the VJPs of the recorded nodes in reverse
creation order, and adds the gradients to the outside tensors that require them:
what ``backward()`` does, in the same order, so the numbers are the same bit for
bit. Chains of ops registered with :func:`fusion` run as one fused primitive.

State that ops keep in their attrs (batch-norm running statistics, the dropout
Generator) is updated by the replayed ops too. What a plan cannot see is Python
that runs between the ops: control flow on values, or state a module changes by
itself. Two recordings on different batches must agree (:meth:`Plan.same_as`)
before :mod:`gradwell.train.compiled` trusts a plan.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import engine
from .engine import _leaf_grad
from .ops import ArrayF, Primitive
from .tensor import Tensor


class NotReplayable(Exception):
    """A captured call that a plan could not reproduce; the message says which op and why."""


class Plan:
    """The primitives of one captured call, with their inputs as slot numbers.

    Slots: the arguments first, then the outside tensors, then one per op, in the
    order the ops ran.
    """

    __slots__ = (
        "n_args", "outside", "ops", "shapes", "outputs", "loss", "_requires", "_grad_leaves",
        "_replay",
    )  # fmt: skip

    def __init__(
        self,
        n_args: int,
        outside: list[Tensor],
        ops: list[tuple[Primitive, dict[str, Any], tuple[int, ...], tuple[bool, ...] | None]],
        shapes: list[tuple[int, ...]],
        outputs: list[int],
        loss: int,
    ) -> None:
        self.n_args = n_args
        self.outside = outside
        # (primitive, attrs without what it saved, input slots, needs or None if unrecorded)
        self.ops = ops
        self.shapes = shapes  # of every slot's array when captured
        self.outputs = outputs
        self.loss = loss
        self._requires = [t.requires_grad for t in outside]
        self._grad_leaves = [t for t in outside if t.requires_grad]
        self._replay: Callable[..., Any] | None = None

    def requires_grad_unchanged(self) -> bool:
        """Whether every outside tensor still requires grad exactly as when captured."""
        return [t.requires_grad for t in self.outside] == self._requires

    def run(self, args: Sequence[Any]) -> tuple[Any, ...]:
        """Replay on argument arrays; gradients of the loss go to the outside tensors'
        ``.grad`` (summed into any gradient already there). Returns the output arrays."""
        if self._replay is None:
            self._replay = _generate(self)
        outputs, grads = self._replay(*args, *[t.data for t in self.outside])
        handed_out: set[int] = set()
        for leaf, g in zip(self._grad_leaves, grads):
            if g is not None:
                previous = leaf.grad
                if previous is None:
                    leaf.grad = Tensor(_leaf_grad(g, handed_out))
                else:
                    leaf.grad = Tensor(previous.data + g)
        return outputs

    def same_as(self, other: Plan) -> str | None:
        """None if ``other`` replays the same computation; else what differs, in words."""
        if self.n_args != other.n_args or len(self.ops) != len(other.ops):
            return f"the call ran {len(self.ops)} ops once and {len(other.ops)} the next time"
        if len(self.outside) != len(other.outside):
            return "the call used a different number of tensors from outside"
        for k, (a, b) in enumerate(zip(self.outside, other.outside)):
            if a is not b:
                slot = self.n_args + k
                user = next((op.name for op, _, ins, _ in self.ops if slot in ins), "?")
                return (
                    f"an input of op '{user}' (shape {b.shape}) is a different tensor on every "
                    "call: a tensor built outside gradwell's ops, or a Python number that "
                    "changes (build it once, outside the step)"
                )
        for (op, attrs, ins, needs), (op2, attrs2, ins2, needs2) in zip(self.ops, other.ops):
            if op is not op2 or ins != ins2 or needs != needs2:
                return f"op '{op2.name}' ran where op '{op.name}' ran on another call"
            for name, v in attrs.items():
                if name not in attrs2 or not _same_value(v, attrs2[name]):
                    return f"op '{op.name}' took a different '{name}' on another call"
            if len(attrs) != len(attrs2):
                return f"op '{op.name}' took different arguments on another call"
        if self.outputs != other.outputs or self.loss != other.loss:
            return "the outputs came from different ops on another call"
        if self.shapes != other.shapes:
            return "an op's result had another shape on another call (a shape set by values)"
        return None


def _same_value(a: Any, b: Any) -> bool:
    """Attrs equal for replay: arrays and objects by identity, plain values by value."""
    if a is b:
        return True
    if type(a) is not type(b) or isinstance(a, np.ndarray):
        return False
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float, complex, str, bytes, slice, np.generic, np.dtype)):
        try:
            return bool(a == b)
        except (TypeError, ValueError):
            return False
    return False


Recording = list[tuple[Primitive, tuple[Tensor, ...], Tensor, dict[str, Any]]]


def record(fn: Callable[..., Any], args: Sequence[Tensor]) -> tuple[Any, Recording]:
    """Call ``fn(*args)`` eagerly; return its result and every op it applied, in order:
    (primitive, input tensors, output tensor, attrs)."""
    ran: Recording = []

    def remember(op: Primitive, inputs: tuple[Tensor, ...], out: Tensor, attrs: Any) -> None:
        ran.append((op, inputs, out, attrs))

    engine.forward_hooks.append(remember)
    try:
        result = fn(*args)
    finally:
        engine.forward_hooks.remove(remember)
    return result, ran


def plan(args: Sequence[Tensor], ran: Recording, outputs: Sequence[Tensor], loss: int) -> Plan:
    """The plan of a recorded call that returned ``outputs``; ``outputs[loss]`` is what
    :meth:`Plan.run` differentiates.

    Raises :class:`NotReplayable` when an op read a tensor whose graph reaches back
    before the call, or a tensor of the call has a gradient hook.
    """
    made = {id(r[2]) for r in ran}  # `ran` keeps every output alive: ids stay unique
    slot: dict[int, int] = {id(a): i for i, a in enumerate(args)}
    outside: list[Tensor] = []
    for _, inputs, _, _ in ran:
        for t in inputs:
            if id(t) in slot or id(t) in made:
                continue
            if t._op is not None:
                raise NotReplayable(
                    f"an input of shape {t.shape} comes from an op run before the call "
                    "(its graph reaches outside the call)"
                )
            if t._hooks:
                raise NotReplayable(f"a tensor of shape {t.shape} has a gradient hook")
            slot[id(t)] = len(args) + len(outside)
            outside.append(t)
    base = len(args) + len(outside)
    ops: list[Any] = []
    for i, (op, inputs, out, attrs) in enumerate(ran):
        if out._hooks:
            raise NotReplayable(f"the output of op '{op.name}' has a gradient hook")
        ins = tuple(slot[id(t)] for t in inputs)
        needs = out._needs if out._op is not None else None
        ops.append((op, dict(attrs), ins, needs))
        slot[id(out)] = base + i
    for t in outputs:
        if id(t) not in slot:
            raise NotReplayable("an output is not a tensor the call's ops made or read")
    slots = [slot[id(t)] for t in outputs]
    shapes = [np.shape(t.data) for t in (*args, *outside)] + [np.shape(r[2].data) for r in ran]
    return Plan(len(args), outside, ops, shapes, slots, slots[loss])


# Chains of ops that a replay runs as one fused primitive: (op names, the fused
# primitive, a function of the chain's attrs giving the fused op's attrs, or None
# where the chain does not qualify). Registered with :func:`fusion`.
FUSIONS: list[tuple[tuple[str, ...], Primitive, Callable[[list[dict[str, Any]]], Any]]] = []


def fusion(
    names: tuple[str, ...], fused: Primitive
) -> Callable[[Callable[[list[dict[str, Any]]], Any]], Callable[[list[dict[str, Any]]], Any]]:
    """Register ``fused`` to replace the ops ``names`` when they run in a row, each the
    only consumer of the one before, which it takes as its first input. ``fused``
    takes the first op's inputs, then each later op's other inputs, in order, and
    must give the last op's output and the gradients of all those inputs, bit for
    bit. Longer chains are tried first."""

    def register(merge: Callable[[list[dict[str, Any]]], Any]) -> Callable[..., Any]:
        FUSIONS.append((names, fused, merge))
        FUSIONS.sort(key=lambda f: -len(f[0]))
        return merge

    return register


Step = tuple[Primitive, dict[str, Any], tuple[int, ...], "tuple[bool, ...] | None", int]


def _fuse(steps: list[Step], outputs: list[int]) -> list[Step]:
    """``steps`` with every chain that a registered fusion covers replaced by one step."""
    uses: dict[int, int] = {j: 1 for j in outputs}
    for _, _, ins, _, _ in steps:
        for k in ins:
            uses[k] = uses.get(k, 0) + 1
    fused_steps: list[Step] = []
    i = 0
    while i < len(steps):
        for names, fused, merge in FUSIONS:
            chain = steps[i : i + len(names)]
            if (
                len(chain) == len(names)
                and all(c[0].name == n and c[3] is not None for c, n in zip(chain, names))
                and all(
                    nxt[2][:1] == (cur[4],) and uses.get(cur[4]) == 1
                    for cur, nxt in zip(chain, chain[1:])
                )
            ):
                attrs = merge([c[1] for c in chain])
                if attrs is not None:
                    head, tail = chain[0], chain[1:]
                    ins = head[2] + tuple(k for c in tail for k in c[2][1:])
                    needs = (head[3] or ()) + tuple(n for c in tail for n in (c[3] or ())[1:])
                    fused_steps.append((fused, attrs, ins, needs, chain[-1][4]))
                    i += len(chain)
                    break
        else:
            fused_steps.append(steps[i])
            i += 1
    return fused_steps


def _generate(p: Plan) -> Callable[..., Any]:
    """The plan as one straight-line Python function (as torch.fx emits code), with
    registered chains of ops fused.

    ``replay(*arg_arrays, *outside_arrays)`` runs every forward, then every VJP in
    reverse order, and returns (output arrays, gradients of the outside tensors that
    require grad). Unrolled, a replay pays no loop, list or dict of its own.
    Variable ``s<j>`` holds slot j's array, ``g<j>`` its gradient; the namespace
    holds the ops and their attrs.
    """
    n_in = p.n_args + len(p.outside)
    steps = _fuse(
        [(op, attrs, ins, needs, n_in + i) for i, (op, attrs, ins, needs) in enumerate(p.ops)],
        p.outputs,
    )
    ns: dict[str, Any] = {"F": ArrayF, "ones": np.ones, "sum_to": ArrayF.sum_to}
    lines = [f"def replay({', '.join(f's{j}' for j in range(n_in))}):"]
    for i, (op, attrs, ins, _, j) in enumerate(steps):
        ns[f"f{i}"], ns[f"k{i}"] = op.forward, attrs
        call = ", ".join([f"s{k}" for k in ins] + ([f"**k{i}"] if attrs else []))
        out = f"s{j}, saved{i}" if op.saves else f"s{j}"
        lines.append(f"    {out} = f{i}({call})")

    # Which slots can receive a gradient: the loss, and inputs a recorded op needs.
    reached = {p.loss}
    for _, _, ins, needs, j in reversed(steps):
        if needs is not None and j in reached:
            reached.update(k for k, need in zip(ins, needs) if need)
    lines.append("    " + " = ".join(f"g{j}" for j in sorted(reached)) + " = None")
    ns["loss_shape"] = p.shapes[p.loss]
    lines.append(f"    g{p.loss} = ones(loss_shape, s{p.loss}.dtype)")
    for i in range(len(steps) - 1, -1, -1):
        op, attrs, ins, needs, j = steps[i]
        if needs is None or j not in reached:
            continue
        ns[f"b{i}"], ns[f"n{i}"] = op.vjp, needs
        lines.append(f"    if g{j} is not None:")
        kw = f"{{**k{i}, 'saved': saved{i}}}" if op.saves else f"k{i}"
        datas = "".join(f"s{k}, " for k in ins)
        lines.append(f"        r = b{i}(F, g{j}, s{j}, ({datas}), n{i}, {kw})")
        for pos, (k, need) in enumerate(zip(ins, needs)):
            if not need:
                continue
            ns[f"shape{k}"] = p.shapes[k]
            lines += [
                f"        t = r[{pos}]",
                "        if t is not None:",
                f"            if t.shape != shape{k}:",
                f"                t = sum_to(t, shape{k})",
                f"            g{k} = t if g{k} is None else g{k} + t",
            ]
    leaves = [p.n_args + i for i, t in enumerate(p.outside) if t.requires_grad]
    grads = "".join(f"g{j}, " if j in reached else "None, " for j in leaves)
    outputs = "".join(f"s{j}, " for j in p.outputs)
    lines.append(f"    return ({outputs}), ({grads})")
    exec(compile("\n".join(lines), "<gradwell replay>", "exec"), ns)
    return ns["replay"]  # type: ignore[no-any-return]
