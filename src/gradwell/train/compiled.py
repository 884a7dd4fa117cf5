"""compile_step: a model's forward, loss and backward, recorded once and then replayed.

A call's tape (:func:`gradwell.autograd.record`) becomes a :class:`Plan`, rewritten by
:func:`gradwell.nn.fused.fuse`; once two recordings agree, it replays as the code that the
engine emits for it (:func:`gradwell.autograd.engine.compile_replay`), bit for bit the
eager numbers. What a plan cannot reproduce runs eagerly (``fallback_reason``); a module
whose version moved is recorded again. Python that branches on values in ``forward`` is
invisible to a plan, as to ``torch.jit.trace``.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..autograd.engine import compile_replay
from ..autograd.recording import Step, is_grad_enabled, observing, record
from ..autograd.tensor import Tensor
from ..nn.fused import fuse
from ..nn.module import Module


class NotReplayable(Exception):
    """A recorded call that a plan could not reproduce; the message says which op and why."""


class Plan:
    """The ops of one recorded call over slots: the arguments, then the tensors from
    outside, then one per op in the order they ran. A step is ``(op, attrs, input slots,
    output slot, needs)``: which inputs need a gradient (None: the op was not recorded)."""

    def __init__(self, args: Sequence[Tensor], tape: Sequence[Step], outputs: Sequence[Tensor]):
        made = {id(s.output) for s in tape}  # the tape keeps them alive: ids stay unique
        slot = {id(a): i for i, a in enumerate(args)}
        self.n_args, self.outside = len(args), []
        for t in (t for s in tape for t in s.inputs if id(t) not in slot and id(t) not in made):
            if t._op is not None:
                raise NotReplayable(f"an input of shape {t.shape} comes from an op run before")
            slot[id(t)] = len(slot)
            self.outside.append(t)
        shapes = [t.shape for t in (*args, *self.outside)]
        steps: list[tuple[Any, ...]] = []
        for s in tape:
            if s.output._hooks:
                raise NotReplayable(f"the output of op '{s.op.name}' has a gradient hook")
            ins, needs = tuple(slot[id(t)] for t in s.inputs), s.output._needs or None
            steps.append((s.op, dict(s.attrs), ins, len(slot), needs))
            slot[id(s.output)] = len(slot)
            shapes.append(s.output.shape)
        if any(id(t) not in slot for t in outputs):
            raise NotReplayable("an output is not a tensor the call's ops made or read")
        self.outputs = [slot[id(t)] for t in outputs]
        self.steps, self.shapes = fuse(steps, self.outputs), shapes
        self.requires = [t.requires_grad for t in self.outside]  # what the replay assumes
        self.replay: Any = None  # compiled once two recordings agree

    def same_as(self, other: Plan) -> str | None:
        """None if ``other`` replays the same computation; else what differs, in words."""
        if len(self.steps) != len(other.steps) or len(self.outside) != len(other.outside):
            return f"the call ran {len(self.steps)} ops once and {len(other.steps)} the next time"
        for k, (a, b) in enumerate(zip(self.outside, other.outside)):
            if a is not b:
                user = next(step[0].name for step in self.steps if self.n_args + k in step[2])
                return (
                    f"an input of op '{user}' (shape {b.shape}) is a different tensor on every "
                    "call: a tensor built outside gradwell's ops, or a Python number that "
                    "changes (build it once, outside the step)"
                )
        for (op, attrs, *slots), (op2, attrs2, *slots2) in zip(self.steps, other.steps):
            if op is not op2 or slots != slots2 or attrs.keys() != attrs2.keys():
                return f"op '{op2.name}' ran where op '{op.name}' ran on another call"
            changed = [name for name, v in attrs.items() if not _same_value(v, attrs2[name])]
            if changed:
                return f"op '{op.name}' took a different '{changed[0]}' on another call"
        if self.outputs != other.outputs or self.shapes != other.shapes:
            return "an op's result had another shape on another call (a shape set by values)"
        return None


_PLAIN = (int, float, complex, str, bytes, slice, np.generic, np.dtype)


def _same_value(a: Any, b: Any) -> bool:
    """Attrs equal for replay: arrays and objects by identity, plain values by value."""
    if isinstance(a, (tuple, list)) and type(a) is type(b):
        return len(a) == len(b) and all(map(_same_value, a, b))
    return a is b or (type(a) is type(b) and isinstance(a, _PLAIN) and bool(a == b))


class CompiledStep:
    """``outputs, loss = step(inputs, targets)``: forward, loss and ``loss.backward()``.

    Gradients go to ``.grad`` as ``backward()`` puts them there (summed into any already
    present: zero them first, as in an eager loop). In a replay the returned tensors
    carry no graph.

    >>> import gradwell as gw
    >>> model = gw.nn.Sequential(gw.nn.Linear(3, 4, rng=0), gw.nn.ReLU(), gw.nn.Linear(4, 2, rng=0))
    >>> step = gw.compile_step(model, gw.nn.CrossEntropyLoss())
    >>> x, y = gw.ones(8, 3), gw.tensor([0, 1] * 4)
    >>> for _ in range(3):
    ...     model.zero_grad()
    ...     outputs, loss = step(x, y)
    >>> step.replays, model[0].weight.grad.shape
    (1, (4, 3))
    """

    def __init__(self, model: Any, loss_fn: Any) -> None:
        if not callable(model) or not callable(loss_fn):
            raise TypeError(
                f"compile_step: expected a model and a loss function (callables); got "
                f"{type(model).__name__} and {type(loss_fn).__name__}"
            )
        self.model, self.loss_fn = model, loss_fn
        self.replays = 0  # how many calls were replayed rather than run eagerly
        self.fallback_reason: str | None = None
        # per input signature: a plan, (the first recording,) waiting for a second, or why not
        self._plans: dict[tuple[Any, ...], Plan | tuple[Plan] | str] = {}
        self._states: list[dict[str, Any]] = []  # the modules' (model's, loss's) __dict__s,
        self._versions: list[int] | None = None  # the versions the plans were recorded at,
        self._hook_dicts: list[dict[int, Any]] = []  # and their forward hooks

    def __call__(self, inputs: Any, targets: Any) -> tuple[Tensor, Tensor]:
        x = inputs if isinstance(inputs, Tensor) else Tensor(self._as_input(inputs))
        y = targets if isinstance(targets, Tensor) else Tensor(np.asarray(targets))
        key = (x.data.shape, x.data.dtype, y.data.shape, y.data.dtype)
        full = len(self._plans) >= 8 and key not in self._plans  # a few shapes at a time
        if [d["_version"] for d in self._states] != self._versions or full:
            self._plans.clear()  # a module changed (every plan may be stale), or a ninth shape
            owners = [o for o in (self.model, self.loss_fn) if isinstance(o, Module)]
            self._states = [m.__dict__ for o in owners for m in o.modules()]
            self._versions = [d["_version"] for d in self._states]
            self._hook_dicts = [d["_forward_hooks"] for d in self._states]
        entry = self._plans.get(key)
        # Op by op and unrecorded if observers or hooks must see each op, grad mode is off,
        # an argument wants its gradient, or the call is known not to replay.
        watched = observing() or any(self._hook_dicts) or not is_grad_enabled()
        eager = watched or x.requires_grad or y.requires_grad or isinstance(entry, str)
        if (
            isinstance(entry, Plan)
            and not eager
            and entry.requires == [t.requires_grad for t in entry.outside]
        ):
            self.replays += 1
            outputs, loss = entry.replay(x.data, y.data)
            return Tensor(outputs), Tensor(loss)
        with contextlib.nullcontext() if eager else record() as tape:
            outputs = self.model(x)
            loss = self.loss_fn(outputs, y)
        if tape is not None:
            self._learn(key, entry, tape, (x, y), (outputs, loss))
        loss.backward()
        return outputs, loss

    def _as_input(self, inputs: Any) -> np.ndarray:
        """A float array takes the model's parameter dtype, as Linear does with arrays."""
        arr = np.asarray(inputs)
        if arr.dtype.kind == "f" and isinstance(self.model, Module):
            for p in self.model.parameters():
                return arr.astype(p.data.dtype, copy=False)
        return arr

    def _learn(self, key: Any, entry: Any, tape: Any, args: Any, outputs: Any) -> None:
        """A recording's verdict: kept as the first, compiled if it agrees with the first,
        or the reason the call cannot replay (warned about once)."""
        try:
            new = Plan(args, tape, outputs)
            difference = entry[0].same_as(new) if isinstance(entry, tuple) else None
        except NotReplayable as e:
            difference = str(e)
        if difference is not None:
            self._plans[key] = difference
            if self.fallback_reason is None:
                why = f"compile_step: running eagerly for inputs of shape {key[0]}: {difference}"
                warnings.warn(why, RuntimeWarning, stacklevel=3)
            self.fallback_reason = difference
        elif isinstance(entry, tuple):  # a second recording, the same as the first
            new.replay = compile_replay(new)
            self._plans[key] = new
        else:  # a first recording
            self._plans[key] = (new,)


compile_step = CompiledStep  # the public spelling, as a verb: gw.compile_step(model, loss_fn)
