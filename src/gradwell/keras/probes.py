"""The doctor's probes for Keras 3 models on the torch backend.

Keras' layers there are ``torch.nn.Module`` objects, but not children of one another:
a model's module tree holds only ``ParameterDict`` objects of its variables, so the torch
probes, which walk the module tree, see no layer. These probes walk ``model.layers``
instead, and use two seams of each layer, on sampled steps only (installed right
before the step, removed right after):

- torch forward hooks, which fire for a Keras layer (``Layer.__call__`` runs through
  ``torch.nn.Module.__call__``): the output of an activation layer, and of a layer with
  no activation (its output gets a tensor gradient hook: the gradient reaching it);
- the layer's ``activation`` attribute, wrapped for the step, for a layer that applies
  its own (``Dense(16, activation="relu")``): its input is the layer's pre-activation
  output (the gradient reaching it is the layer's signal, as at a torch Linear's output)
  and its output the activation's (per-unit activity, saturation).

A variable's value is a torch Parameter whose ``.grad`` the backward fills, read after
backward and before the optimizer applies it, so gradient norms and update ratios are
the torch probes' own. Everything lands in the same Trace as a gradwell run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import torch

from ..doctor.probes import PROBE_ROWS, PROBE_VALUES, evenly
from ..doctor.profile import ModelProfile
from ..doctor.thresholds import Thresholds
from ..doctor.trace import ActivationStats
from ..torch.probes import TorchProbes, _per_unit, numpy_of
from .losses import is_keras_loss
from .profile import INSIDE, leaf_layers, profile_keras
from .replay import forked_random_state, replay_nonfinite, values_of
from .seams import Swapped

#: A probe's callback for a layer's tensor: (path, tensor).
OnTensor = Callable[[str, Any], None]


def instrument(
    layers: list[tuple[str, Any]],
    prof: ModelProfile,
    on_output: OnTensor,
    on_activation: OnTensor,
    on_input: OnTensor | None = None,
) -> list[Any]:
    """Watch ``layers``: ``on_output(path, t)`` gets each kernel layer's (pre-activation)
    output, ``on_activation(path, t)`` each activation's output (the paths of
    :mod:`.profile`), ``on_input`` each kernel layer's first input. Returns the handles."""
    handles: list[Any] = []
    for path, layer in layers:
        if path in prof.layers:
            if on_input is not None:
                handles.append(layer.register_forward_pre_hook(
                    lambda m, args, path=path: on_input(path, args[0] if args else None)
                ))  # fmt: skip
            if path + INSIDE in prof.types:
                activation = layer.activation

                def watched(x: Any, *args: Any, path: str = path, activation: Any = activation,
                            **kwargs: Any) -> Any:  # fmt: skip
                    on_output(path, x)
                    y = activation(x, *args, **kwargs)
                    on_activation(path + INSIDE, y)
                    return y

                watched.__wrapped__ = activation  # type: ignore[attr-defined]
                handles.append(Swapped(layer, "activation", watched))
            else:
                handles.append(layer.register_forward_hook(
                    lambda m, args, out, path=path: on_output(path, out)))  # fmt: skip
        elif path in prof.activations:
            handles.append(layer.register_forward_hook(
                lambda m, args, out, path=path: on_activation(path, out)))  # fmt: skip
    return handles


class _MovingStatistics:
    """A BatchNormalization layer as the probes read batch norm: its moving statistics
    (``running_mean``, ``running_var``), ``eps``, and ``momentum`` as PyTorch's (the weight
    of each new batch: 1 - Keras' momentum, the weight of the old statistics);
    ``num_batches_tracked`` is the number of training steps so far (Keras keeps no count)."""

    def __init__(self, layer: Any, trace: Any) -> None:
        self.layer, self.trace = layer, trace

    @property
    def running_mean(self) -> Any:
        return self.layer.moving_mean.value

    @property
    def running_var(self) -> Any:
        return self.layer.moving_variance.value

    @property
    def eps(self) -> float:
        return float(self.layer.epsilon)

    @property
    def momentum(self) -> float:
        return 1.0 - float(self.layer.momentum)

    @property
    def num_batches_tracked(self) -> int:
        return len(self.trace.loss)

    def channel_axis(self) -> int:
        axis = self.layer.axis
        return int(axis if isinstance(axis, int) else axis[0])


def _in_training(call: Any) -> Any:
    """A layer's ``call`` run with ``training=True`` whatever the model is called with."""

    def call_in_training(*args: Any, **kwargs: Any) -> Any:
        kwargs["training"] = True
        return call(*args, **kwargs)

    return call_in_training


class KerasProbes(TorchProbes):
    """:class:`~gradwell.torch.probes.TorchProbes` for a Keras model and optimizer."""

    stateless_loss = staticmethod(is_keras_loss)
    replay = staticmethod(replay_nonfinite)
    profile_of = staticmethod(profile_keras)

    def setup_probe(
        self, model: Any, loss_fn: Any, X: Any, y: Any, th: Thresholds
    ) -> dict[str, Any]:
        # the probe calls the model's own layers: the hooks of a sampled step must not see it
        armed = self.armed
        self.disarm()
        try:
            self.keep_reference(X, y, loss_fn)
            return probe_setup(model, loss_fn, X, y, th)
        finally:
            if armed:
                self.arm(self.step)

    def batchnorm_passes(
        self, x: Any, y: Any, loss_fn: Any
    ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], float, float]:
        """The batch-norm check's two passes through ``model.stateless_call`` on copies of
        the variables, without gradients (so no probe's hook records them): in evaluation
        (``training=False``), with a pre-hook on each BatchNormalization taking the moments
        of its input per channel (its ``axis``), then with only the BatchNormalization
        layers called with ``training=True`` (Dropout stays off)."""
        model, moments = self.model, {}

        def record(path: str, stats: _MovingStatistics, layer: Any, args: Any) -> None:
            moments[path] = self.channel_moments(args[0].movedim(stats.channel_axis(), 1))

        def loss_of(out: Any) -> float:
            return self.scalar(loss_fn(out, y)) if loss_fn and y is not None else math.nan

        trainable, non_trainable = values_of(model)
        handles = [m.layer.register_forward_pre_hook(partial(record, p, m))
                   for p, m in self.bn_modules]  # fmt: skip
        try:
            with torch.no_grad(), forked_random_state(model):
                out, _ = model.stateless_call(trainable, non_trainable, x, training=False)
                for h in handles:
                    h.remove()
                eval_loss = loss_of(out)
                handles = [Swapped(m.layer, "call", _in_training(m.layer.call))
                           for _, m in self.bn_modules]  # fmt: skip
                out, _ = model.stateless_call(trainable, non_trainable, x, training=False)
                batch_loss = loss_of(out)
        finally:
            for h in handles:
                h.remove()
        return moments, eval_loss, batch_loss

    def attach(self, model: Any, optimizer: Any, in_fit: bool) -> Any:
        self.model, self.optimizer = model, optimizer
        self._layers = leaf_layers(model)
        self._params = [(f"{path}/{v.name}", v.value) for path, layer in self._layers
                        for v in layer.trainable_weights]  # fmt: skip
        self._weights = [(n, p) for n, p in self._params if p.ndim >= 2]
        prof = profile_keras(model, optimizer)
        self.bn_modules = [
            (p, _MovingStatistics(m, self.trace)) for p, m in self._layers if p in prof.batchnorm
        ]
        for path, kind in prof.activations.items():
            if kind in ("relu", "sigmoid", "tanh") and path not in self.trace.activations:
                self.trace.activations[path] = ActivationStats(path, kind, 0)
        self._fresh_samples()
        self.learn_structure(prof)  # the layers' order is known: no sample need learn it
        return self.profile

    def learn_structure(self, prof: Any) -> None:
        super().learn_structure(prof)
        # a channel is one unit after a convolution: where Keras keeps channels
        self._channels_last = {
            path: getattr(self._layer(prof.layer_before(path)), "data_format", None)
            != "channels_first"
            for path, stats in self.trace.activations.items()
            if stats.per_channel
        }

    def _layer(self, path: str | None) -> Any:
        return next((m for p, m in self._layers if p == path), None)

    def arm(self, step: int) -> None:
        self.step = step
        if self.armed or self.model is None:
            return
        self.armed = True
        self._handles = instrument(self._layers, self.profile, self._layer_output,
                                   self._activation_output)  # fmt: skip

    # Training steps run with gradients; evaluate and predict under torch.no_grad.
    def _layer_output(self, path: str, out: Any) -> None:
        if not (torch.is_grad_enabled() and isinstance(out, torch.Tensor) and out.requires_grad):
            return
        out_grads = self._out_grads  # the dict of this step (replaced after each sample)

        def record(g: torch.Tensor) -> None:
            out_grads[path] = g.detach()  # reduced to its RMS in sample()

        out.register_hook(record)

    def _activation_output(self, path: str, out: Any) -> None:
        stats = self.trace.activations.get(path)
        if stats is None or not (torch.is_grad_enabled() and isinstance(out, torch.Tensor)):
            return
        a = out.detach()
        if stats.per_channel and a.ndim > 2 and self._channels_last.get(path, True):
            a = a.movedim(-1, 1)  # (examples, channels, *positions), as the statistics count
        th = self.thresholds
        stats.observe(self.step, numpy_of(_per_unit(stats.kind, a, stats.per_channel)),
                      th.sigmoid_margin, th.tanh_limit)  # fmt: skip


# --------------------------------------------------------------------------- pre-flight


def _rms(t: Any) -> float:
    if not isinstance(t, torch.Tensor) or not t.numel():
        return math.nan
    return float(t.detach().double().square().mean().sqrt())


def probe_setup(model: Any, loss_fn: Any, X: Any, y: Any, th: Thresholds) -> dict[str, Any]:
    """gradwell's pre-flight probe (:func:`gradwell.doctor.probes.probe_setup`) for a Keras
    model: one forward and backward of evenly spaced rows through ``model.stateless_call``
    on copies of its variables, under a forked random state, so that no weight, moving
    statistic, gradient, seed or random stream of the model changes."""
    prof = profile_keras(model)
    n_params = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    Xa = numpy_of(X) if isinstance(X, torch.Tensor) else np.asarray(X)
    k = min(max(PROBE_VALUES // max(n_params, 1), PROBE_ROWS[0]), PROBE_ROWS[1])
    rows = evenly(Xa.shape[0], k)
    trainable, non_trainable = values_of(model, requires_grad=True)
    device = trainable[0].device if trainable else torch.device("cpu")
    xb = torch.as_tensor(np.ascontiguousarray(Xa[rows])).to(device)
    yb = None
    if y is not None:
        ya = numpy_of(y) if isinstance(y, torch.Tensor) else np.asarray(y)
        yb = torch.as_tensor(np.ascontiguousarray(ya[rows])).to(device)
    ins: dict[str, float] = {}
    layers: dict[str, dict[str, Any]] = {}
    saturated: dict[str, float] = {}
    dead: dict[str, float] = {}

    def on_input(path: str, x: Any) -> None:
        ins[path] = _rms(x)

    def on_output(path: str, out: Any) -> None:
        if not isinstance(out, torch.Tensor):
            return
        i_rms, o_rms = ins.get(path, math.nan), _rms(out)
        layers[path] = {"in_rms": i_rms, "out_rms": o_rms,
                        "gain": o_rms / i_rms if i_rms > 0 else math.nan}  # fmt: skip
        if out.requires_grad:

            def record(g: torch.Tensor) -> None:  # (a value returned would replace g)
                layers[path].setdefault("grad_rms", _rms(g))

            out.register_hook(record)

    def on_activation(path: str, out: Any) -> None:
        kind = prof.activations.get(path)
        if not isinstance(out, torch.Tensor):
            return
        a = out.detach()
        if kind == "sigmoid":
            saturated[path] = float(((a < th.sigmoid_margin) | (a > 1 - th.sigmoid_margin))
                                    .float().mean())  # fmt: skip
        elif kind == "tanh":
            saturated[path] = float((a.abs() > th.tanh_limit).float().mean())
        elif kind == "relu":
            units = a.reshape(-1, a.shape[-1])  # (channels last: a channel is one unit)
            dead[path] = float((~(units > 0).any(dim=0)).float().mean())

    handles = instrument(leaf_layers(model), prof, on_output, on_activation, on_input)
    out: dict[str, Any] = {"output_module": prof.output_module}
    try:
        with forked_random_state(model), torch.enable_grad():
            pred, _ = model.stateless_call(trainable, non_trainable, xb, training=True)
            if loss_fn is not None and yb is not None:
                loss = loss_fn(pred, yb)
                out["loss"] = float(loss.detach())
                if loss.requires_grad:
                    loss.backward()
    except Exception as e:  # a setup error surfaces in the first step; the check reports
        out["error"] = f"{type(e).__name__}: {e}"
    finally:
        for h in handles:
            h.remove()
    out.update(order=list(prof.order), layers=layers, saturated=saturated, dead=dead,
               rows=int(rows.size))  # fmt: skip
    return out
