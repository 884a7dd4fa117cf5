"""compile_step: a model's forward, loss and backward, captured once and then replayed.

The first calls for a given input shape run eagerly and record their ops; once two
recordings on different batches agree, later calls replay the plan on the new
arrays (:mod:`gradwell.autograd.capture`) without calling a module or building a
Tensor per op. Anything a plan cannot reproduce sends the call back to eager
mode, which is always correct: hooks on modules, tensors or the engine (the
training doctor's sampled steps, ``detect_anomaly``), grad mode off, an argument
that requires grad, or two recordings that differ (the reason is kept in
``fallback_reason`` and warned about once). A change to any module -- an
attribute set, ``train()``/``eval()``, ``load_state_dict`` -- makes the next calls
record again.

What a replay cannot know about is Python in a custom ``forward`` that branches on
values (``if x.mean() > 0``) or keeps its own state between calls: such a model
should run eagerly, as it must under ``torch.jit.trace`` or a CUDA graph.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ..autograd import engine
from ..autograd.capture import NotReplayable, Plan, plan, record
from ..autograd.tensor import Tensor
from ..nn.module import Module, _Edits


class _Pending:
    """A first recording, waiting for a second one to agree with it."""

    __slots__ = ("plan",)

    def __init__(self, first: Plan) -> None:
        self.plan = first


class CompiledStep:
    """``outputs, loss = step(inputs, targets)``: forward, loss and ``loss.backward()``.

    Gradients go to ``.grad`` as ``backward()`` puts them there (summed into any
    already present: zero them first, as in an eager loop). In replay the
    returned tensors carry no graph.

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
        self.model = model
        self.loss_fn = loss_fn
        self.replays = 0  # how many calls were replayed rather than run eagerly
        self.fallback_reason: str | None = None
        self._plans: dict[tuple[Any, ...], Plan | _Pending | str] = {}
        self._edits = _Edits.count
        self._hook_dicts: list[dict[int, Any]] = []

    def __call__(self, inputs: Any, targets: Any) -> tuple[Tensor, Tensor]:
        x = inputs if isinstance(inputs, Tensor) else Tensor(self._as_input(inputs))
        y = targets if isinstance(targets, Tensor) else Tensor(np.asarray(targets))
        if self._edits != _Edits.count:  # a module changed: every plan may be stale
            self._plans.clear()
            self._edits = _Edits.count
        key = (x.data.shape, x.data.dtype, y.data.shape, y.data.dtype)
        entry = self._plans.get(key)
        if type(entry) is Plan and not self._observed(x, y) and entry.requires_grad_unchanged():
            self.replays += 1
            outputs, loss = entry.run((x.data, y.data))
            return Tensor(outputs), Tensor(loss)
        return self._record(key, entry, x, y)

    def _as_input(self, inputs: Any) -> np.ndarray:
        """A float array takes the model's parameter dtype, as Linear does with arrays."""
        arr = np.asarray(inputs)
        if arr.dtype.kind == "f" and isinstance(self.model, Module):
            for p in self.model.parameters():
                return arr.astype(p.data.dtype, copy=False)
        return arr

    def _observed(self, x: Tensor, y: Tensor) -> bool:
        """Whether something must see this call's ops one by one (or grad mode is off)."""
        return bool(
            engine.forward_hooks
            or engine.grad_hooks
            or engine.vjp_hooks
            or not engine._mode.enabled
            or x.requires_grad
            or y.requires_grad
            or any(self._hook_dicts)
        )

    def _forward(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        outputs = self.model(x)
        return outputs, self.loss_fn(outputs, y)

    def _record(self, key: tuple[Any, ...], entry: Any, x: Tensor, y: Tensor) -> tuple[Any, Any]:
        modules = [
            m for owner in (self.model, self.loss_fn) if isinstance(owner, Module)
            for m in owner.modules()
        ]  # fmt: skip
        for m in modules:
            m.__dict__["_captured"] = True  # from now on, a change to it counts as an edit
        self._hook_dicts = [m._forward_hooks for m in modules]
        if isinstance(entry, str) or self._observed(x, y):
            outputs, loss = self._forward(x, y)
            loss.backward()
            return outputs, loss
        (outputs, loss), ran = record(self._forward, (x, y))
        loss.backward()
        try:
            new = plan((x, y), ran, (outputs, loss), loss=1)
        except NotReplayable as e:
            self._give_up(key, str(e))
            return outputs, loss
        if isinstance(entry, _Pending):
            difference = entry.plan.same_as(new)
            if difference is not None:
                self._give_up(key, difference)
                return outputs, loss
            self._plans[key] = new
        else:
            if len(self._plans) >= 8:  # a few shapes at a time (e.g. the last, short batch)
                self._plans.clear()
            self._plans[key] = _Pending(new)
        return outputs, loss

    def _give_up(self, key: tuple[Any, ...], reason: str) -> None:
        self._plans[key] = reason
        if self.fallback_reason is None:
            warnings.warn(
                f"compile_step: running eagerly for inputs of shape {key[0]}: {reason}",
                RuntimeWarning,
                stacklevel=4,
            )
        self.fallback_reason = reason


def compile_step(model: Any, loss_fn: Any) -> CompiledStep:
    """Forward, loss and backward of ``model`` as one call that replays after its first
    two: see :class:`CompiledStep`. Use it like
    ``outputs = model(x); loss = loss_fn(outputs, y); loss.backward()``."""
    return CompiledStep(model, loss_fn)
