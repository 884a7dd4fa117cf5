"""compile_step: a model's forward, loss and backward, recorded once and then replayed.

The first calls for a given input shape run eagerly under
:func:`gradwell.autograd.record`; once two recordings on different batches agree,
later calls replay the tape (:mod:`gradwell.autograd.tape`, with the fused chains of
:data:`gradwell.nn.fused.FUSIONS`) on the new arrays, without calling a module or
checking an argument, and ``backward()`` runs as in eager mode. Anything a tape
cannot reproduce sends the call back to eager mode, which is always correct:
observers (the training doctor's sampled steps, ``detect_anomaly``), forward hooks
on modules, grad mode off, an argument that requires grad, or two recordings that
differ (the reason is kept in ``fallback_reason`` and warned about once). A change
to any module's state -- an attribute set, ``train()``/``eval()``,
``load_state_dict`` -- shows in its version, and the next calls record again.

What a replay cannot know about is Python in a custom ``forward`` that branches on
values (``if x.mean() > 0``) or keeps its own state between calls: such a model
should run eagerly, as it must under ``torch.jit.trace`` or a CUDA graph.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ..autograd.recording import is_grad_enabled, observers, record
from ..autograd.tape import NotReplayable, Plan, plan
from ..autograd.tensor import Tensor
from ..nn.fused import FUSIONS
from ..nn.module import Module


class _Pending:
    """A first recording, waiting for a second one to agree with it."""

    __slots__ = ("plan",)

    def __init__(self, first: Plan) -> None:
        self.plan = first


class CompiledStep:
    """``outputs, loss = step(inputs, targets)``: forward, loss and ``loss.backward()``.

    Gradients go to ``.grad`` as ``backward()`` puts them there (summed into any
    already present: zero them first, as in an eager loop); the returned tensors
    are those of an eager step after ``backward()``.

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
        self._modules: list[Module] = []  # those of the model and the loss, when recorded
        self._versions: list[int] = []  # and their versions then
        self._hook_dicts: list[dict[int, Any]] = []

    def __call__(self, inputs: Any, targets: Any) -> tuple[Tensor, Tensor]:
        x = inputs if isinstance(inputs, Tensor) else Tensor(self._as_input(inputs))
        y = targets if isinstance(targets, Tensor) else Tensor(np.asarray(targets))
        if [m.__dict__["_version"] for m in self._modules] != self._versions:
            self._plans.clear()  # a module changed: every plan may be stale
        key = (x.data.shape, x.data.dtype, y.data.shape, y.data.dtype)
        entry = self._plans.get(key)
        if type(entry) is Plan and not self._observed(x, y):
            self.replays += 1
            outputs, loss = entry.run((x.data, y.data))
            loss.backward()
            return outputs, loss
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
            observers
            or not is_grad_enabled()
            or x.requires_grad
            or y.requires_grad
            or any(self._hook_dicts)
        )

    def _forward(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        outputs = self.model(x)
        return outputs, self.loss_fn(outputs, y)

    def _record(self, key: tuple[Any, ...], entry: Any, x: Tensor, y: Tensor) -> tuple[Any, Any]:
        self._modules = [
            m for owner in (self.model, self.loss_fn) if isinstance(owner, Module)
            for m in owner.modules()
        ]  # fmt: skip
        self._versions = [m.__dict__["_version"] for m in self._modules]
        self._hook_dicts = [m._forward_hooks for m in self._modules]
        if isinstance(entry, str) or self._observed(x, y):
            outputs, loss = self._forward(x, y)
            loss.backward()
            return outputs, loss
        with record() as tape:
            outputs, loss = self._forward(x, y)
        loss.backward()
        try:
            new = plan((x, y), tape, (outputs, loss), FUSIONS)
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
