"""A recorded tape made replayable: the ops of one call over slots, with fused chains.

:func:`gradwell.autograd.record` gives the ops a call ran. :func:`plan` turns that
tape into a :class:`Plan`: each step's primitive, its attrs and where each input
comes from -- an argument, an earlier step, or a tensor from outside the call (a
parameter, a cached constant) -- with every chain of ops that a rewrite table names
replaced by one fused primitive. :meth:`Plan.run` applies the steps to new argument
arrays through :func:`~gradwell.autograd.ops.apply`, so its result is a graph of
ordinary nodes and ``backward()`` -- the one interpreter -- computes the gradients.
A replay skips the Python around the ops (modules, argument checks), never the engine.

State that ops keep in their attrs (batch-norm running statistics, the dropout
Generator) is updated by the replayed ops too. What a plan cannot see is Python
that runs between the ops: control flow on values, or state a module changes by
itself. Two recordings on different batches must agree (:meth:`Plan.same_as`)
before a caller trusts a plan.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .ops import Primitive, apply
from .recording import Step
from .tensor import Tensor

# A rewrite: (op names in a row, the fused primitive, a function of the chain's attrs
# giving the fused op's attrs, or None where the chain does not qualify). The fused op
# takes the first op's inputs, then each later op's other inputs, in order, and gives
# the last op's output and the gradients of all those inputs, bit for bit.
Fusion = tuple[tuple[str, ...], Primitive, Callable[[list[dict[str, Any]]], Any]]
PlanStep = tuple[Primitive, dict[str, Any], tuple[int, ...]]


class NotReplayable(Exception):
    """A recorded call that a plan could not reproduce; the message says which op and why."""


class Plan:
    """The steps of one recorded call, their inputs as slot numbers: the arguments
    first, then the tensors from outside, then one slot per step, in order."""

    __slots__ = ("n_args", "outside", "steps", "shapes", "outputs")

    def __init__(
        self,
        n_args: int,
        outside: list[Tensor],
        steps: list[PlanStep],
        shapes: list[tuple[int, ...]],
        outputs: list[int],
    ) -> None:
        self.n_args = n_args
        self.outside = outside
        self.steps = steps
        self.shapes = shapes  # of every slot's array when recorded
        self.outputs = outputs

    def run(self, args: Sequence[Any]) -> list[Tensor]:
        """Apply the steps to argument arrays; returns the output tensors (graph nodes)."""
        values = [Tensor(a) for a in args]
        values += self.outside
        for op, attrs, ins in self.steps:
            values.append(apply(op, tuple([values[k] for k in ins]), attrs))
        return [values[j] for j in self.outputs]

    def same_as(self, other: Plan) -> str | None:
        """None if ``other`` replays the same computation; else what differs, in words."""
        if self.n_args != other.n_args or len(self.steps) != len(other.steps):
            return f"the call ran {len(self.steps)} ops once and {len(other.steps)} the next time"
        if len(self.outside) != len(other.outside):
            return "the call used a different number of tensors from outside"
        for k, (a, b) in enumerate(zip(self.outside, other.outside)):
            if a is not b:
                slot = self.n_args + k
                user = next((op.name for op, _, ins in self.steps if slot in ins), "?")
                return (
                    f"an input of op '{user}' (shape {b.shape}) is a different tensor on every "
                    "call: a tensor built outside gradwell's ops, or a Python number that "
                    "changes (build it once, outside the step)"
                )
        for (op, attrs, ins), (op2, attrs2, ins2) in zip(self.steps, other.steps):
            if op is not op2 or ins != ins2:
                return f"op '{op2.name}' ran where op '{op.name}' ran on another call"
            if attrs.keys() != attrs2.keys():
                return f"op '{op.name}' took different arguments on another call"
            for name, v in attrs.items():
                if not _same_value(v, attrs2[name]):
                    return f"op '{op.name}' took a different '{name}' on another call"
        if self.outputs != other.outputs:
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


def plan(
    args: Sequence[Tensor],
    tape: Sequence[Step],
    outputs: Sequence[Tensor],
    fusions: Sequence[Fusion] = (),
) -> Plan:
    """The plan of a recorded call on ``args`` that returned ``outputs``, with the chains
    that ``fusions`` names fused (longer patterns first).

    Raises :class:`NotReplayable` when an op read a tensor whose graph reaches back
    before the call, or a tensor made in the call has a gradient hook.
    """
    made = {id(s.output) for s in tape}  # the tape keeps every output alive: ids stay unique
    slot: dict[int, int] = {id(a): i for i, a in enumerate(args)}
    outside: list[Tensor] = []
    for s in tape:
        for t in s.inputs:
            if id(t) in slot or id(t) in made:
                continue
            if t._op is not None:
                raise NotReplayable(
                    f"an input of shape {t.shape} comes from an op run before the call "
                    "(its graph reaches outside the call)"
                )
            slot[id(t)] = len(args) + len(outside)
            outside.append(t)
    base = len(args) + len(outside)
    steps: list[tuple[Primitive, dict[str, Any], tuple[int, ...], int]] = []
    for i, s in enumerate(tape):
        if s.output._hooks:
            raise NotReplayable(f"the output of op '{s.op.name}' has a gradient hook")
        steps.append((s.op, dict(s.attrs), tuple(slot[id(t)] for t in s.inputs), base + i))
        slot[id(s.output)] = base + i
    if any(id(t) not in slot for t in outputs):
        raise NotReplayable("an output is not a tensor the call's ops made or read")
    shapes = [np.shape(t.data) for t in (*args, *outside)] + [np.shape(s.output.data) for s in tape]
    fused = _fuse(steps, [slot[id(t)] for t in outputs], fusions)
    # Number the slots that remain in order, so that a replay appends each step's result.
    renumber = {k: k for k in range(base)}
    for j, (_, _, _, out) in enumerate(fused):
        renumber[out] = base + j
    return Plan(
        len(args),
        outside,
        [(op, attrs, tuple(renumber[k] for k in ins)) for op, attrs, ins, _ in fused],
        shapes[:base] + [shapes[out] for *_, out in fused],
        [renumber[slot[id(t)]] for t in outputs],
    )


def _fuse(
    steps: list[tuple[Primitive, dict[str, Any], tuple[int, ...], int]],
    outputs: list[int],
    fusions: Sequence[Fusion],
) -> list[tuple[Primitive, dict[str, Any], tuple[int, ...], int]]:
    """``steps`` with every chain that a fusion covers replaced by one step: ops in a row,
    each the only consumer of the one before, which it takes as its first input."""
    uses: dict[int, int] = dict.fromkeys(outputs, 1)
    for _, _, ins, _ in steps:
        for k in ins:
            uses[k] = uses.get(k, 0) + 1
    table = sorted(fusions, key=lambda f: -len(f[0]))
    result = []
    i = 0
    while i < len(steps):
        for names, fused, merge in table:
            chain = steps[i : i + len(names)]
            if (
                len(chain) == len(names)
                and all(c[0].name == n for c, n in zip(chain, names))
                and all(
                    nxt[2][:1] == (cur[3],) and uses.get(cur[3]) == 1
                    for cur, nxt in zip(chain, chain[1:])
                )
            ):
                attrs = merge([c[1] for c in chain])
                if attrs is not None:
                    ins = chain[0][2] + tuple(k for c in chain[1:] for k in c[2][1:])
                    result.append((fused, attrs, ins, chain[-1][3]))
                    i += len(chain)
                    break
        else:
            result.append(steps[i])
            i += 1
    return result
