"""The doctor's probes for PyTorch models: the same numbers as gradwell's, from torch's seams.

On a sampled step, forward hooks on the activation and layer modules (installed right
before the step, removed right after) fold the activations into the Trace and put a
tensor gradient hook on each layer's output (the gradient reaching it); after backward
the gradient norms are read in one fused call, and the watched entries of each weight
are kept to measure the update on the next step. Everything a detector reads is the
same plain number as in a gradwell run, so the same diagnosis serves both.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from ..doctor.probes import Probes, Seams, watched_stride
from ..doctor.probes import probe_setup as shared_probe_setup
from ..doctor.thresholds import Thresholds
from .replay import devices_of, replay_nonfinite


def numpy_of(x: Any) -> Any:
    """A tensor as a numpy array (on the CPU, float32 for the dtypes numpy lacks); other
    values as they are."""
    if not isinstance(x, torch.Tensor):
        return x
    if x.requires_grad:  # (a detach is an op: not where it changes nothing)
        x = x.detach()
    if x.dtype in (torch.bfloat16, torch.float16):
        x = x.float()
    return (x if x.is_cpu else x.cpu()).numpy()  # (.cpu() costs a dispatch even there)


def is_torch_loss(loss_fn: Any) -> bool:
    """Whether ``loss_fn`` is one of torch's losses (stateless: calling it once more
    changes nothing), a module of ``torch.nn`` or a function of ``torch.nn.functional``."""
    if isinstance(loss_fn, torch.nn.modules.loss._Loss):
        return True
    return callable(loss_fn) and getattr(loss_fn, "__module__", "") == "torch.nn.functional"


def _per_unit(kind: str, a: torch.Tensor, per_channel: bool = True) -> torch.Tensor:
    """The outputs to fold into the statistics. A ReLU's after a conv are reduced here to
    (examples, channels), a channel alive for an example when any position of it is
    positive (one small transfer instead of the whole map); the others go as they are
    (the statistics count their units or channels)."""
    if a.ndim > 2 and kind == "relu" and per_channel:
        return a.flatten(2).amax(dim=2)
    return a


def _precise(a: torch.Tensor) -> torch.Tensor:
    """``a`` in at least float32 (norms of half-precision values keep 3 digits)."""
    return a if a.dtype in (torch.float32, torch.float64) else a.float()


class TorchProbes(Probes):
    """:class:`~gradwell.doctor.probes.Probes` for a ``torch.nn.Module`` and a
    ``torch.optim`` optimizer."""

    stateless_loss = staticmethod(is_torch_loss)
    grad_enabled = staticmethod(torch.is_grad_enabled)
    replay = staticmethod(replay_nonfinite)

    def setup_probe(
        self, model: Any, loss_fn: Any, X: Any, y: Any, th: Thresholds
    ) -> dict[str, Any]:
        self.keep_reference(X, y, loss_fn)
        return probe_setup(model, loss_fn, X, y, th)

    # the torch pieces of the batch-norm check (Probes.check_batchnorm)
    def rows_of(self, a: Any, rows: np.ndarray) -> Any:
        if a is None:
            return None
        t = a if isinstance(a, torch.Tensor) else torch.as_tensor(np.asarray(a))
        device = next((p.device for p in self.model.parameters()), torch.device("cpu"))
        return t[torch.from_numpy(rows)].to(device)

    def no_grad(self) -> Any:
        return torch.no_grad()

    def copy_of(self, buffer: Any) -> Any:
        return buffer.detach().clone()

    def restore(self, buffer: Any, value: Any) -> None:
        with torch.no_grad():
            buffer.copy_(value)

    def scalar(self, loss: Any) -> float:
        return float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)

    def channel_moments(self, x: Any) -> tuple[np.ndarray, np.ndarray]:
        dims = [0, *range(2, x.ndim)]
        var, mean = torch.var_mean(x.detach().double(), dim=dims, unbiased=False)
        return mean.cpu().numpy(), var.cpu().numpy()

    def attach(self, model: Any, optimizer: Any, in_fit: bool) -> Any:
        prof = super().attach(model, optimizer, in_fit)
        self._fresh_samples()
        return prof

    def _fresh_samples(self) -> None:
        """The state sampled steps keep, empty."""
        # per weight: its shape, and the stride of the entries its update ratio is measured
        # on (1: all)
        self._watched: dict[str, tuple[torch.Size, int]] = {}
        # the watched entries of each weight before the sampled step's update (copied into
        # buffers kept from sample to sample, in at least float32), the weights' shapes
        # then, and the norms of those entries
        self._before: list[torch.Tensor] = []
        self._before_shapes: list[torch.Size] = []
        self._before_norms: list[float] = []
        # per layer: the gradient reaching its output on this sampled step
        self._out_grads: dict[str, torch.Tensor] = {}

    # ------------------------------------------------------------------ sampled steps
    # Each torch op a sampled step adds costs its dispatch, several times its hot cost
    # there (the step's caches are cold for the doctor's code): the gradients, the output
    # gradients and the weights kept for the update are read in one fused norm and one
    # transfer, and the update in one subtraction, one norm and one transfer. The weights
    # are read through ``.data`` (no gradient recorded, without the cost of entering
    # ``no_grad``); the gradients need no detach.
    def sample(self, s: int) -> None:
        named = [(n, p.grad) for n, p in self._params if p.grad is not None]
        out_grads = self._out_grads
        before = self._keep_weights()
        tensors = [*(g for _, g in named), *out_grads.values(), *before]
        # every norm in one fused kernel (what clip_grad_norm_ uses), one transfer
        values = torch.stack(torch._foreach_norm(tensors)).tolist() if tensors else []
        k, m = len(named), len(named) + len(out_grads)
        norms = dict(zip((n for n, _ in named), values))
        signal = {
            path: v / math.sqrt(max(g.numel(), 1))
            for (path, g), v in zip(out_grads.items(), values[k:m])
        }
        self._before_norms = values[m:]
        total2 = sum(v * v for v in values[:k])
        self.total_norm = math.sqrt(total2) if total2 >= 0 else math.nan
        self.trace.add_sample(s, norms, signal, self.total_norm)
        self._out_grads = {}
        self.update_pending = True

    def _keep_weights(self) -> list[torch.Tensor]:
        """Copy the watched entries of every weight, before the sampled step's update, into
        the buffers ``_before`` (one copy op); returns them."""
        watched = self._watched_values()
        before = self._before
        if len(before) != len(watched) or any(
            b.shape != w.shape or b.device != w.device for b, w in zip(before, watched)
        ):
            before = self._before = [_precise(torch.empty_like(w)) for w in watched]
        if watched:
            torch._foreach_copy_(before, watched)
        self._before_shapes = [p.shape for _, p in self._weights]
        return before

    def _watched_values(self) -> list[torch.Tensor]:
        """Each weight's watched entries, outside autograd: every k-th of its entries, flat
        (a view: no gather op, and no index to keep)."""
        out = []
        for name, p in self._weights:
            w = p.data
            kept = self._watched.get(name)
            if kept is None or kept[0] != w.shape:  # the stride, fixed by the shape
                kept = self._watched[name] = (w.shape, watched_stride(tuple(w.shape)))
            out.append(w if kept[1] == 1 else w.reshape(-1)[:: kept[1]])
        return out

    def resolve_update(self) -> dict[str, Any] | None:
        if not self.update_pending:
            return None
        self.update_pending = False
        if not self._before or [p.shape for _, p in self._weights] != self._before_shapes:
            return None  # (the weights changed shape since the sample: nothing to compare)
        change = torch._foreach_sub(self._watched_values(), self._before)
        # |change| of every weight in one fused kernel, one transfer (|w|: in the sample's)
        values = torch.stack(torch._foreach_norm(change)).tolist()
        ratios, broken = {}, []
        for (name, p), w, d in zip(self._weights, self._before_norms, values):
            # finite weights before, non-finite after: this update broke them
            if math.isfinite(w) and not math.isfinite(d) and not bool(torch.isfinite(p).all()):
                broken.append(name)
            ratios[name] = d / w if w > 0 and math.isfinite(w) else math.nan
        self.trace.set_update_ratio(ratios)
        return self.overflow_event(broken)

    def nonfinite_gradients(self) -> list[str]:
        if math.isfinite(self.total_norm):
            return []
        i = len(self.trace.samples) - 1
        params = dict(self._params)
        return [
            n
            for n, series in self.trace.grad_norm.items()
            if len(series) > i
            and not math.isfinite(series[i])
            and params[n].grad is not None
            and not bool(torch.isfinite(params[n].grad).all())
        ]

    def _nonfinite_inputs(self, inputs: Any) -> list[str]:
        return super()._nonfinite_inputs(numpy_of(inputs))

    def values(self, t: Any) -> Any:
        return numpy_of(t)

    def _order_hook(self, module: Any, inputs: Any, output: Any) -> None:
        if self._call_order is not None and module.training and torch.is_grad_enabled():
            path = self._paths.get(id(module))
            if path is not None and path not in self._call_order:
                self._call_order.append(path)

    def _activation_hook(self, module: Any, inputs: Any, output: Any) -> None:
        if not (module.training and torch.is_grad_enabled() and isinstance(output, torch.Tensor)):
            return
        path = self._paths[id(module)]
        stats = self.trace.activations[path]
        th = self.thresholds
        # (statistics that know whether a convolution feeds them say so: per_channel)
        per_channel = getattr(stats, "per_channel", True)
        stats.observe(self.step, numpy_of(_per_unit(stats.kind, output.detach(), per_channel)),
                      th.sigmoid_margin, th.tanh_limit)  # fmt: skip
        if self._call_order is not None:  # the first sample learns the model's structure
            self._order_hook(module, inputs, output)
            self._last_activation_output = (path, id(output))

    def _layer_hook(self, module: Any, inputs: Any, output: Any) -> None:
        if not (module.training and torch.is_grad_enabled() and isinstance(output, torch.Tensor)):
            return
        if self._call_order is not None:
            self._order_hook(module, inputs, output)
        node = output.grad_fn  # (None: no gradient reaches it, or it is a leaf)
        if node is None:
            return
        path, i = self._paths[id(module)], output.output_nr
        out_grads = self._out_grads  # the dict of this step (replaced after each sample)

        def record(grads: tuple[torch.Tensor | None, ...]) -> None:
            g = grads[i]
            if g is not None:
                out_grads[path] = g  # reduced to its RMS in sample()

        # the gradient reaching the output, as a tensor hook has it (an in-place op on the
        # output later does not change it), at a third of a tensor hook's cost
        node.register_prehook(record)

    def _root_hook(self, module: Any, inputs: Any, output: Any) -> None:
        last = self._last_activation_output
        if last is not None and isinstance(output, torch.Tensor) and id(output) == last[1]:
            self.trace.activations[last[0]].is_output = True
        self._last_activation_output = None


# --------------------------------------------------------------------------- pre-flight


def twin_of(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` without its hooks (the doctor's among them: the copy must not
    feed them) and without gradients, whose parameters share the model's weights: new
    leaves of autograd over the same storage (copying the weights cost most of the copy,
    on a large model milliseconds; a backward on the copy gives its own leaves gradients,
    and nothing writes to the weights). Its buffers are copies (a forward in training mode
    updates batch norm's)."""
    memo: dict[int, Any] = {}
    for m in model.modules():
        for name, value in vars(m).items():
            if name.endswith("_hooks") and isinstance(value, dict):
                memo[id(value)] = type(value)()
    for p in model.parameters():
        if not torch.nn.parameter.is_lazy(p):  # (a lazy one has no storage yet: copied)
            memo[id(p)] = torch.nn.Parameter(p.detach(), p.requires_grad)
    return copy.deepcopy(model, memo)


def _rms(a: torch.Tensor) -> float:
    """Root mean square of ``a``: its norm in one pass (a copy in float64 first cost ten
    times as much), in float64 only where float32 squares overflow (past 1.8e19)."""
    if not a.numel():
        return math.nan
    a = a.detach()
    norm = float(torch.linalg.vector_norm(a))
    if not math.isfinite(norm):
        norm = float(torch.linalg.vector_norm(a, dtype=torch.float64))
    return norm / math.sqrt(a.numel())


class TorchSeams(Seams):
    """The pre-flight probe's seams for torch: the copy is :func:`twin_of` and runs under a
    forked random state (nothing of torch's random streams changes); the reductions run
    where the tensors are, and only their floats are read."""

    tensor = torch.Tensor

    def size(self, p: Any) -> int:
        return int(p.numel())

    def batch(self, X: Any, y: Any, rows: np.ndarray, model: Any) -> tuple[Any, Any]:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        index = torch.from_numpy(rows)

        def pick(a: Any) -> torch.Tensor:
            t = a if isinstance(a, torch.Tensor) else torch.as_tensor(np.asarray(a))
            return t[index].to(device)

        return pick(X), (pick(y) if y is not None else None)

    def twin(self, model: Any) -> Any:
        return twin_of(model)

    def running(self, model: Any) -> Any:
        return _forked(model)

    def rms(self, t: Any) -> float:
        return _rms(t)

    def saturated(self, kind: str, t: Any, th: Thresholds) -> float:
        a = t.detach()
        if kind == "sigmoid":
            return float(((a < th.sigmoid_margin) | (a > 1 - th.sigmoid_margin)).float().mean())
        return float((a.abs() > th.tanh_limit).float().mean())

    def silent(self, t: Any, per_channel: bool) -> float:
        units = _per_unit("relu", t.detach(), per_channel)
        return float((~(units.reshape(len(units), -1) > 0).any(dim=0)).float().mean())


@contextmanager
def _forked(model: Any) -> Iterator[None]:
    with torch.random.fork_rng(devices=devices_of(model)), torch.enable_grad():
        yield


def probe_setup(model: Any, loss_fn: Any, X: Any, y: Any, th: Thresholds) -> dict[str, Any]:
    """gradwell's pre-flight probe (:func:`gradwell.doctor.probes.probe_setup`) for a torch
    model: one forward and backward of evenly spaced rows on a copy of ``model``, under a
    forked random state, so nothing of the model or of torch's random streams changes."""
    return shared_probe_setup(model, loss_fn, X, y, th, TorchSeams())
