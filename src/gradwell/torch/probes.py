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
from typing import Any

import numpy as np
import torch

from ..doctor.probes import PROBE_ROWS, PROBE_VALUES, Probes, _watched_entries, evenly
from ..doctor.profile import class_family
from ..doctor.thresholds import Thresholds
from .replay import devices_of, replay_nonfinite


def numpy_of(x: Any) -> Any:
    """A tensor as a numpy array (on the CPU, float32 for the dtypes numpy lacks); other
    values as they are."""
    if not isinstance(x, torch.Tensor):
        return x
    x = x.detach()
    if x.dtype in (torch.bfloat16, torch.float16):
        x = x.float()
    return x.cpu().numpy()


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


class TorchProbes(Probes):
    """:class:`~gradwell.doctor.probes.Probes` for a ``torch.nn.Module`` and a
    ``torch.optim`` optimizer."""

    stateless_loss = staticmethod(is_torch_loss)
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
        # per weight: the flat indices its update ratio is measured on (None: all), and
        # their values before the sampled step's update
        self._watched: dict[str, torch.Tensor | None] = {}
        self._before: dict[str, tuple[torch.Size, torch.Tensor]] = {}
        # per layer: the gradient reaching its output on this sampled step
        self._out_grads: dict[str, torch.Tensor] = {}
        return prof

    # ------------------------------------------------------------------ sampled steps
    @torch.no_grad()
    def sample(self, s: int) -> None:
        named = [(n, p.grad) for n, p in self._params if p.grad is not None]
        norms: dict[str, float] = {}
        if named:
            # one fused kernel for every gradient (what clip_grad_norm_ uses), one transfer
            values = torch.stack(torch._foreach_norm([g for _, g in named])).double().tolist()
            norms = dict(zip((n for n, _ in named), values))
        signal: dict[str, float] = {}
        if self._out_grads:
            grads = list(self._out_grads.values())
            values = torch.stack(torch._foreach_norm(grads)).double().tolist()
            signal = {
                path: v / math.sqrt(max(g.numel(), 1))
                for path, g, v in zip(self._out_grads, grads, values)
            }
        total2 = sum(v * v for v in norms.values())
        self.total_norm = math.sqrt(total2) if total2 >= 0 else math.nan
        self.trace.add_sample(s, norms, signal, self.total_norm)
        self._out_grads = {}
        for name, p in self._weights:
            if name not in self._before or self._before[name][0] != p.shape:
                idx = _watched_entries(p.numel())
                self._watched[name] = None if idx is None else torch.from_numpy(idx).to(p.device)
            idx_t = self._watched[name]
            flat = p.detach().reshape(-1)
            self._before[name] = (p.shape, flat.clone() if idx_t is None else flat[idx_t])
        self.update_pending = True

    @torch.no_grad()
    def resolve_update(self) -> dict[str, Any] | None:
        if not self.update_pending:
            return None
        self.update_pending = False
        names, sums = [], []
        for name, p in self._weights:
            kept = self._before.get(name)
            if kept is None or kept[0] != p.shape:
                continue
            idx_t = self._watched[name]
            flat = p.detach().reshape(-1)
            after = (flat if idx_t is None else flat[idx_t]).double()
            before = kept[1].double()
            names.append(name)
            sums.append(torch.stack([before.square().sum(), (after - before).square().sum()]))
        ratios, broken = {}, []
        if sums:
            params = dict(self._weights)
            for name, (w2, d2) in zip(names, torch.stack(sums).tolist()):
                if (
                    math.isfinite(w2)
                    and not math.isfinite(d2)
                    and not torch.isfinite(params[name]).all()
                ):
                    broken.append(name)
                ratios[name] = math.sqrt(d2 / w2) if w2 > 0 and math.isfinite(w2) else math.nan
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

    def _dropout_hook(self, module: Any, inputs: Any, output: Any) -> None:
        # evaluating (no gradient recorded) while the layer is still in training mode
        if module.training and not torch.is_grad_enabled():
            path = self._paths.get(id(module), "?")
            self.trace.dropout_in_eval[path] = self.trace.dropout_in_eval.get(path, 0) + 1

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
        if not output.requires_grad:
            return
        path = self._paths[id(module)]
        out_grads = self._out_grads  # the dict of this step (replaced after each sample)

        def record(g: torch.Tensor) -> None:
            out_grads[path] = g.detach()  # reduced to its RMS in sample()

        output.register_hook(record)

    def _root_hook(self, module: Any, inputs: Any, output: Any) -> None:
        last = self._last_activation_output
        if last is not None and isinstance(output, torch.Tensor) and id(output) == last[1]:
            self.trace.activations[last[0]].is_output = True
        self._last_activation_output = None


# --------------------------------------------------------------------------- pre-flight


def twin_of(model: torch.nn.Module) -> torch.nn.Module:
    """A deep copy of ``model`` without its hooks (the doctor's among them: the copy must
    not feed them) and without gradients."""
    memo: dict[int, Any] = {}
    for m in model.modules():
        for name, value in vars(m).items():
            if name.endswith("_hooks") and isinstance(value, dict):
                memo[id(value)] = type(value)()
    twin = copy.deepcopy(model, memo)
    for p in twin.parameters():
        p.grad = None
    return twin


def _rms(a: torch.Tensor) -> float:
    return float(a.detach().double().square().mean().sqrt()) if a.numel() else math.nan


def probe_setup(model: Any, loss_fn: Any, X: Any, y: Any, th: Thresholds) -> dict[str, Any]:
    """gradwell's pre-flight probe (:func:`gradwell.doctor.probes.probe_setup`) for a torch
    model: one forward and backward of evenly spaced rows on a copy of ``model``, under a
    forked random state, so nothing of the model or of torch's random streams changes."""
    X = X if isinstance(X, torch.Tensor) else torch.as_tensor(np.asarray(X))
    n_params = sum(p.numel() for p in model.parameters())
    k = min(max(PROBE_VALUES // max(n_params, 1), PROBE_ROWS[0]), PROBE_ROWS[1])
    rows = torch.from_numpy(evenly(X.shape[0], k))
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    xb = X[rows].to(device)
    yb = None
    if y is not None:
        yt = y if isinstance(y, torch.Tensor) else torch.as_tensor(np.asarray(y))
        yb = yt[rows].to(device)
    twin = twin_of(model)
    twin.train()
    paths = {id(m): p for p, m in twin.named_modules()}
    leaves = [m for p, m in twin.named_modules() if p and not any(True for _ in m.children())]
    order: list[str] = []
    made: dict[int, str] = {}
    layers: dict[str, dict[str, Any]] = {}
    saturated: dict[str, float] = {}
    dead: dict[str, float] = {}
    grads: dict[str, list[float]] = {}

    def hook(module: Any, inputs: Any, output: Any) -> None:
        path = paths[id(module)]
        if path not in order:
            order.append(path)
        if not isinstance(output, torch.Tensor):
            return
        made[id(output)] = path
        w = module._parameters.get("weight")
        if w is not None and w.ndim >= 2 and inputs and isinstance(inputs[0], torch.Tensor):
            i_rms, o_rms = _rms(inputs[0]), _rms(output)
            layers[path] = {"in_rms": i_rms, "out_rms": o_rms,
                            "gain": o_rms / i_rms if i_rms > 0 else math.nan}  # fmt: skip
            if output.requires_grad:
                box = grads.setdefault(path, [])
                output.register_hook(lambda g: box.append(_rms(g)))
        fam = class_family(module)
        a = output.detach()
        if fam is not None and fam[1] == "sigmoid":
            saturated[path] = float(((a < th.sigmoid_margin) | (a > 1 - th.sigmoid_margin))
                                    .float().mean())  # fmt: skip
        elif fam is not None and fam[1] == "tanh":
            saturated[path] = float((a.abs() > th.tanh_limit).float().mean())
        elif fam is not None and fam[1] == "relu":
            units = _per_unit("relu", a)
            dead[path] = float((~(units.reshape(len(units), -1) > 0).any(dim=0)).float().mean())

    handles = [m.register_forward_hook(hook) for m in leaves]
    out: dict[str, Any] = {}
    try:
        with torch.random.fork_rng(devices=devices_of(model)), torch.enable_grad():
            pred = twin(xb)
            out["output_module"] = made.get(id(pred)) if isinstance(pred, torch.Tensor) else None
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
    for p, g in grads.items():
        if g and p in layers:
            layers[p]["grad_rms"] = g[0]
    out.update(order=order, layers=layers, saturated=saturated, dead=dead, rows=int(rows.numel()))
    return out
