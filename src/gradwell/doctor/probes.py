"""Probes: the only part of the doctor that touches gradwell's modules and engine.

They install module forward hooks and gradient hooks on sampled steps (removed right
after) and one forward hook on the model (in a hand-written loop: an evaluation with
Dropout in training mode), read gradients and weights, and write plain numbers into the
:class:`~gradwell.doctor.trace.Trace`: per parameter the gradient norm (one dot product
each), the gradient reaching each layer's output, statistics after every activation,
the update-to-weight ratio of a sampled step (read on the next step, when the optimizer
has moved the weights), BatchNorm running statistics (at a diagnosis, on a time budget, against
what reference rows of the training data give in evaluation), and the first non-finite value
(replayed on a copy of the model to name the op). :func:`probe_setup` runs one forward
and backward of a batch on a copy of the model for the pre-flight check. Another
framework could feed the same Trace by writing its own probes.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ..autograd.recording import enable_grad, is_grad_enabled, no_grad, observe
from ..autograd.tensor import Tensor
from .kernels import squares_and_change, sum_of_squares, total
from .profile import ModelProfile, class_family, is_gated, profile_model
from .replay import replay_anomaly
from .thresholds import Thresholds
from .trace import NAN, ActivationStats, Trace, floats, ints

#: A weight's update ratio is measured on at most this many of its entries, the same at
#: every sample (every k-th entry, see :func:`watched_stride`), so that a sample neither
#: copies nor reads a large weight whole (on a 784-512-256-10 model that extra memory
#: traffic cost the following steps more than the sample itself). On Gaussian weights and
#: updates the estimate is within a few percent of the whole ratio.
UPDATE_ENTRIES = 4096
#: Rows of the batch the pre-flight probe runs forward and backward (evenly spaced over
#: the data): at most 64 (the initial loss to about an eighth of its spread), fewer for
#: large models so that the probe costs a few milliseconds (its matmuls cost rows x
#: parameters), never under 16.
PROBE_ROWS = (16, 64)
PROBE_VALUES = 4_000_000  # rows x parameters
#: Rows of the training data (evenly spaced) that the batch-norm check runs through the
#: model at a diagnosis (see BATCHNORM_BUDGET), in evaluation and in training mode: a
#: channel's mean over 128 rows is within about 0.09 of its std of the population's
#: (1/sqrt(128)). Fewer than 16 rows say too little, and are not checked.
BATCHNORM_ROWS = (16, 128)
#: The batch-norm check runs at a diagnosis once the time since the last one is at least
#: this many times what the last one cost (so it costs training at most 1%), and always at
#: the first one that can run it and at the last: running statistics move slowly. Run at
#: every epoch's end, its two passes cost 5% of a small model's training. Time is the
#: thread's CPU time (the training thread's: a loaded machine does not inflate it).
BATCHNORM_BUDGET = 100
#: The buffers a batch-norm layer changes in a forward in training mode.
BATCHNORM_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")
#: The series of each batch-norm layer's record besides "step" (see ``Trace.batchnorm``).
BATCHNORM_SERIES = ("rms_running_mean", "mean_running_var", "min_running_var", "momentum",
                    "batches_tracked", "mean_shift", "var_ratio", "worst_var_ratio")  # fmt: skip


def is_builtin_loss(loss_fn: Any) -> bool:
    """Whether ``loss_fn`` is one of gradwell's losses (stateless: calling it once more
    changes nothing)."""
    return type(loss_fn).__module__.startswith("gradwell.") or (
        callable(loss_fn) and getattr(loss_fn, "__module__", "").startswith("gradwell.")
    )


class Probes:
    """The measurements of one watched model, written into ``trace``.

    ``attach`` learns the model; ``arm(step)`` installs the hooks of a sampled step and
    ``sample(step)`` reads its gradients after backward; ``disarm`` removes the hooks;
    ``resolve_update`` measures the sampled step's update: right after the optimizer's step
    where the optimizer has a hook there (:meth:`measure_updates_at_the_step`), else on
    the next step. Methods
    that find a non-finite value return its event (a dict) for the Doctor to record.
    Another framework's probes subclass it; ``setup_probe``, ``stateless_loss``,
    ``replay`` and ``profile_of`` are the pre-flight check's probe, which losses it may
    call, the NaN replay and how a model is described (:func:`profile_model`'s signature).
    """

    stateless_loss = staticmethod(is_builtin_loss)
    grad_enabled = staticmethod(is_grad_enabled)
    replay = staticmethod(replay_anomaly)
    profile_of = staticmethod(profile_model)

    def __init__(
        self,
        trace: Trace,
        thresholds: Thresholds,
        feature_names: list[str] | None = None,
        replay_nan: bool = True,
    ) -> None:
        self.trace = trace
        self.thresholds = thresholds
        self.feature_names = feature_names
        self.replay_nan = replay_nan
        self.model: Any = None
        self.optimizer: Any = None
        self.profile = ModelProfile()
        self.armed = False
        self.update_pending = False
        self.order_known = False  # the call order (learnt on the first sample or the check)
        self.total_norm = math.nan
        self.step = 0
        self._handles: list[Any] = []
        self._permanent: list[Any] = []
        self._call_order: list[str] | None = None
        self._last_activation_output: tuple[str, int] | None = None
        self._signal: dict[str, np.ndarray] = {}
        # per weight: (shape, dtype, the stride of the entries watched (1: all), their
        # values before the sampled step's update)
        self._snapshot: dict[str, tuple[Any, Any, int, np.ndarray]] = {}
        # the optimizer's step post-hook (see measure_updates_at_the_step): (its optimizer,
        # its handle), and what it calls when an update is pending
        self._step_hook: tuple[Any, Any] | None = None
        self._updated: Callable[[], None] | None = None
        self.bn_modules: list[tuple[str, Any]] = []
        self._dropouts: list[tuple[str, Any]] = []  # (path, module) of each with rate > 0
        # when the next batch-norm check is due (time.thread_time; see BATCHNORM_BUDGET)
        self._bn_due = -math.inf
        # the rows of the training data and the loss that the batch-norm check runs
        self._bn_reference: tuple[Any, Any, Any] | None = None

    def setup_probe(
        self, model: Any, loss_fn: Any, X: Any, y: Any, th: Thresholds
    ) -> dict[str, Any]:
        """The pre-flight check's forward and backward on a copy (:func:`probe_setup`)."""
        self.keep_reference(X, y, loss_fn)
        return probe_setup(model, loss_fn, X, y, th)

    def keep_reference(self, X: Any, y: Any, loss_fn: Any) -> None:
        """Keep evenly spaced rows of the training data (and the loss, when it may be called)
        for the batch-norm check of the diagnoses; only for a model with batch norm."""
        n = len(X) if X is not None and self.bn_modules else 0
        if n < BATCHNORM_ROWS[0]:
            return
        rows = evenly(n, BATCHNORM_ROWS[1])
        self._bn_reference = (self.rows_of(X, rows), self.rows_of(y, rows), loss_fn)

    def rows_of(self, a: Any, rows: np.ndarray) -> Any:
        """Rows of an array of the training data, as the model takes them (None stays None)."""
        return None if a is None else Tensor(np.ascontiguousarray(_array(a)[rows]))

    # ------------------------------------------------------------------ the model
    def attach(self, model: Any, optimizer: Any, in_fit: bool) -> ModelProfile:
        """Learn ``model``'s parameters and modules; returns its profile."""
        self.model, self.optimizer = model, optimizer
        self.profile = profile_model(model, optimizer)
        self.profile.feature_names = self.feature_names
        self._params = [(n, p) for n, p in model.named_parameters()]
        self._weights = [(n, p) for n, p in self._params if p.data.ndim >= 2]
        self._modules = dict(model.named_modules())
        self._paths = {id(m): p for p, m in self._modules.items()}
        self._install_permanent_hooks(in_fit)
        self._gated = {id(m): p for p, m in self._modules.items() if is_gated(m)}
        self._act_modules, self._layer_modules, self._other_leaves = [], [], []
        for path, m in self._modules.items():
            fam = class_family(m)
            if fam is not None and fam[1] in ("relu", "sigmoid", "tanh"):
                if path not in self.trace.activations:
                    self.trace.activations[path] = ActivationStats(path, fam[1], 0)
                self._act_modules.append(m)
            elif path in self.profile.layers:
                self._layer_modules.append(m)
            elif path and not any(True for _ in m.children()):
                self._other_leaves.append(m)
        self._mark_channels()
        return self.profile

    def _mark_channels(self) -> None:
        """Activations fed by a convolution count channels as their units (a profile that
        learnt the call order may see it differently from the registration order)."""
        for path, stats in self.trace.activations.items():
            stats.per_channel = self.profile.after_convolution(path)

    def learn_structure(self, prof: ModelProfile) -> None:
        """The profile the pre-flight probe saw (call order and output module): the first
        sample then need not learn the call order."""
        prof.feature_names = self.feature_names
        self.profile = prof
        self.order_known = True
        out = self.trace.activations.get(prof.output_module or "")
        if out is not None:
            out.is_output = True
        self._mark_channels()

    def _install_permanent_hooks(self, in_fit: bool) -> None:
        self.remove_permanent()
        prof = self.profile
        self.bn_modules = [(p, m) for p, m in self._modules.items()
                           if p in prof.batchnorm and hasattr(m, "running_var")]  # fmt: skip
        self._dropouts = [(p, m) for p, m in self._modules.items()
                          if prof.dropouts.get(p, 0.0) > 0]  # fmt: skip
        # fit always evaluates in eval mode; a hand-written loop may forget model.eval().
        # One hook on the whole model, not one on each Dropout: in torch any hook on a
        # module sends every call of it down the slow path (on a small model two
        # Dropouts' hooks cost 4% of the step; the model's one costs about 1.5 us).
        if not in_fit and self._dropouts:
            self._permanent.append(self.model.register_forward_hook(self._evaluation_hook))

    def remove_permanent(self) -> None:
        for h in self._permanent:
            h.remove()
        self._permanent = []

    def close(self) -> None:
        """Remove every hook."""
        self.armed = True  # so that disarm removes whatever is installed
        self.disarm()
        self.remove_permanent()
        if self._step_hook is not None:
            self._step_hook[1].remove()
            self._step_hook = None

    # ------------------------------------------------------------------ sampled steps
    def arm(self, step: int) -> None:
        """Install the hooks that measure sampled step ``step``."""
        self.step = step
        if self.armed or self.model is None:
            return
        self.armed = True
        add = self._handles.append
        for m in self._act_modules:
            add(m.register_forward_hook(self._activation_hook))
        for m in self._layer_modules:
            add(m.register_forward_hook(self._layer_hook))
        if self._gated:  # their gates are ops inside them: watched through the op seam
            add(_Watching(self._gate_op))
        if not self.order_known:  # the model's structure: learnt on the first sample
            self._call_order = []
            for m in self._other_leaves:
                add(m.register_forward_hook(self._order_hook))
            add(self.model.register_forward_hook(self._root_hook))

    def disarm(self) -> None:
        if not self.armed:
            return
        for h in self._handles:
            h.remove()
        self._handles = []
        self.armed = False
        if not self.order_known and self._call_order:
            self.order_known = True
            self.profile = profile_model(
                self.model, self.optimizer, self._call_order, self.profile.output_module
            )
            self.profile.feature_names = self.feature_names
            self._mark_channels()
        if self.order_known:  # (learnt here, or by the pre-flight check while armed)
            self._call_order = None  # the hooks stop recording it

    def sample(self, s: int) -> None:
        """Read the gradients of sampled step ``s`` (after backward) and keep the weights
        it starts from, for its update ratio."""
        # The arithmetic runs in compiled kernels (float64) or on Python floats: no numpy
        # warning can arise, so no errstate is needed (it costs about a microsecond).
        norms: dict[str, float] = {}
        total2 = 0.0
        for name, p in self._params:
            g = p.grad
            if g is None:
                continue
            n2 = sum_of_squares(g.data)  # float64: inf or nan come out as such
            norms[name] = math.sqrt(n2) if n2 >= 0 else math.nan
            total2 += n2
        signal = {}
        for path, g in self._signal.items():
            n2 = sum_of_squares(g)
            signal[path] = math.sqrt(n2 / max(g.size, 1)) if n2 >= 0 else math.nan
        self.total_norm = math.sqrt(total2) if total2 >= 0 else math.nan
        self.trace.add_sample(s, norms, signal, self.total_norm)
        self._signal = {}
        # Keep the (watched entries of the) weights this step starts from, to measure the
        # update after the step.
        for name, p in self._weights:
            data = p.data
            snap = self._snapshot.get(name)
            if snap is None or snap[0] != data.shape or snap[1] != data.dtype:
                stride = watched_stride(data.shape)
                buf = np.empty(data.reshape(-1)[::stride].size, data.dtype)
                snap = self._snapshot[name] = (data.shape, data.dtype, stride, buf)
            np.copyto(snap[3], data.reshape(-1)[:: snap[2]])  # (views: contiguous parameters)
        self.update_pending = True

    def measure_updates_at_the_step(self, updated: Callable[[], None]) -> None:
        """Have ``updated`` called right after each optimizer step that follows a sample (its
        update pending), to measure it there (``resolve_update``): the step after the sample
        then needs no look. The optimizer's step post-hook does it (torch's optimizers have
        one), installed once and idle on the other steps: a hook that removed itself
        would change the dict of hooks torch is running through, when another follows it.
        Without such a hook the update is measured on the next step."""
        optimizer = self.optimizer
        if self._step_hook is not None and self._step_hook[0] is not optimizer:
            self._step_hook[1].remove()
            self._step_hook = None
        if self._step_hook is None:
            register = getattr(optimizer, "register_step_post_hook", None)
            if register is not None:
                self._step_hook = (optimizer, register(self._after_optimizer_step))
        self._updated = updated

    def _after_optimizer_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if self.update_pending and self._updated is not None:
            self._updated()

    def resolve_update(self) -> dict[str, Any] | None:
        """After the optimizer step of a sampled step: |w_after - w_before| / |w_before|.
        Returns the event when this update made finite weights non-finite."""
        if not self.update_pending:
            return None
        self.update_pending = False
        ratios = {}
        broken = []
        for name, p in self._weights:
            snap = self._snapshot.get(name)
            if snap is None or snap[0] != p.data.shape:
                continue
            w2, d2 = squares_and_change(snap[3], p.data.reshape(-1)[:: snap[2]])
            # finite weights before, non-finite after: this update broke them
            if math.isfinite(w2) and not math.isfinite(d2) and not np.isfinite(p.data).all():
                broken.append(name)
            ratios[name] = math.sqrt(d2 / w2) if w2 > 0 and math.isfinite(w2) else math.nan
        self.trace.set_update_ratio(ratios)
        return self.overflow_event(broken)

    def overflow_event(self, broken: list[str]) -> dict[str, Any] | None:
        """The event of a sampled step's update that made the finite weights ``broken``
        non-finite (None when there are none, or a non-finite value came first)."""
        if not broken or self.trace.nonfinite is not None:
            return None
        s = self.trace.samples[-1]
        lr = self.trace.lr[s] if len(self.trace.lr) > s else None
        return {
            "step": s,
            "source": "parameter",
            "names": broken,
            "value": "non-finite",
            "anomaly": None,
            "note": (
                f"The optimizer update of step {s} made them non-finite from finite "
                f"weights and finite gradients (gradient norm "
                f"{self.total_norm:.3g}, learning rate {lr}): the step overflowed."
            ),
        }

    def nonfinite_gradients(self) -> list[str]:
        """The parameters whose gradient of the latest sample holds inf or NaN."""
        if math.isfinite(self.total_norm):
            return []
        i = len(self.trace.samples) - 1
        grads = dict(self._params)
        # an infinite norm may be float32 overflow of a finite gradient: look closer
        return [
            n
            for n, series in self.trace.grad_norm.items()
            if len(series) > i
            and not math.isfinite(series[i])
            and grads[n].grad is not None
            and not np.isfinite(grads[n].grad.data).all()
        ]

    def nonfinite_event(
        self,
        s: int,
        source: str,
        names: list[str],
        value: str,
        inputs: Any,
        targets: Any,
        loss_fn: Any,
    ) -> dict[str, Any]:
        """The event of the first non-finite value: blamed on the batch's inputs when they
        hold it, else located by replaying the batch on a copy under gw.detect_anomaly."""
        event: dict[str, Any] = {
            "step": s,
            "source": source,
            "names": names,
            "value": value,
            "last_sampled_step": self.trace.samples[-2] if len(self.trace.samples) >= 2 else None,
        }
        bad_columns = self._nonfinite_inputs(inputs)
        if bad_columns:  # the data itself: nothing to replay
            event.update(source="inputs", names=bad_columns, anomaly=None)
            event["note"] = (
                f"The batch's inputs hold inf or NaN (columns {', '.join(bad_columns[:6])}): "
                "they came with the data, no op made them."
            )
        elif self.replay_nan and self.model is not None:
            self.disarm()
            anomaly, note = self.replay(self.model, inputs, targets, loss_fn)
            event["anomaly"] = anomaly
            event["note"] = note
        else:
            event["anomaly"] = None
            event["note"] = "The replay under gw.detect_anomaly was switched off (replay_nan)."
        return event

    def _nonfinite_inputs(self, inputs: Any) -> list[str]:
        """Names of the input columns holding inf or NaN in this batch."""
        arr = inputs.data if isinstance(inputs, Tensor) else inputs
        if not isinstance(arr, np.ndarray) or arr.dtype.kind != "f" or arr.ndim == 0:
            return []
        flat = arr.reshape(arr.shape[0], -1) if arr.ndim > 1 else arr[:, None]
        bad = np.flatnonzero(~np.isfinite(flat).all(axis=0))
        names = self.feature_names
        if names is None or len(names) != flat.shape[1]:
            names = [f"x{j}" for j in range(flat.shape[1])]
        return [names[j] for j in bad]

    def values(self, t: Any) -> np.ndarray:
        """A buffer's numbers as a numpy array (another framework's probes override this)."""
        return t.data

    def record_batchnorm(self, step: int, final: bool = False) -> None:
        """The running statistics of each batch-norm layer, at a diagnosis (an epoch's end
        in fit) when the last record is ``BATCHNORM_BUDGET`` times its cost ago, and at the
        ``final`` one: they move slowly, so a sampled step does not pay for them. With the
        reference rows, :meth:`check_batchnorm` compares them with those rows' own."""
        records = self.trace.batchnorm
        if any(r["step"] and r["step"][-1] == step for r in records.values()):
            return  # (finish right after an epoch's end: no step since)
        start = time.thread_time()
        if start < self._bn_due and not final:
            return
        checked = self.check_batchnorm(step)
        for path, m in self.bn_modules:
            rm, rv = m.running_mean, m.running_var
            if rm is None or rv is None:
                continue
            rec = records.get(path)
            if rec is None:
                rec = records[path] = {"step": ints()}
                for name in BATCHNORM_SERIES:
                    rec[name] = floats()
            mean, var = self.values(rm), self.values(rv)
            tracked = getattr(m, "num_batches_tracked", None)
            momentum = getattr(m, "momentum", None)
            rec["step"].append(step)
            rec["rms_running_mean"].append(math.sqrt(sum_of_squares(mean) / max(mean.size, 1)))
            rec["mean_running_var"].append(total(var) / max(var.size, 1))
            rec["min_running_var"].append(float(np.min(var)) if var.size else math.nan)
            rec["momentum"].append(math.nan if momentum is None else float(momentum))
            rec["batches_tracked"].append(
                math.nan if tracked is None else float(self.values(tracked))
            )
            against = checked.get(path)
            shift, ratio, worst = (
                compare_moments(mean, var, *against, m.eps) if against else (math.nan,) * 3
            )
            rec["mean_shift"].append(shift)
            rec["var_ratio"].append(ratio)
            rec["worst_var_ratio"].append(worst)
        if checked:  # (until a check can run, each diagnosis tries: the record alone is cheap)
            done = time.thread_time()
            self._bn_due = done + BATCHNORM_BUDGET * (done - start)

    def check_batchnorm(self, step: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """The reference rows through the model in evaluation mode (each batch-norm layer's
        input: its per-channel mean and variance, what the running statistics should match),
        then with batch norm in training mode (the rows' own statistics; dropout stays off),
        without recording gradients; both losses go into ``trace.batchnorm_loss``. No hook
        sees these passes, and the running statistics and every module's mode are put back
        as they were (a copy of the model would cost more than both passes). Returns the
        moments by layer path (empty without reference rows, or when the forward fails:
        nothing is recorded)."""
        ref = self._bn_reference
        if ref is None or not self.bn_modules or not len(self.trace.loss):
            return {}  # (before the first step the running statistics are their initial ones)
        x, y, loss_fn = ref
        try:
            moments, eval_loss, batch_loss = self.batchnorm_passes(x, y, loss_fn)
        except Exception:  # a model the rows do not suit: no check, and nothing changed
            return {}
        if not moments:
            return {}
        record = self.trace.batchnorm_loss
        if not record:
            record.update(step=ints(), eval_loss=floats(), batch_loss=floats(), rows=ints())
        record["step"].append(step)
        record["eval_loss"].append(eval_loss)
        record["batch_loss"].append(batch_loss)
        record["rows"].append(len(x))
        return moments

    def batchnorm_passes(
        self, x: Any, y: Any, loss_fn: Any
    ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], float, float]:
        """The two passes of :meth:`check_batchnorm`: (the moments of each batch-norm
        layer's input in evaluation mode, the loss in evaluation mode, the loss with batch
        norm in training mode), the model left as it was."""
        model = self.model
        modes = [(m, m.training) for m in model.modules()]
        moments: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        saved: list[tuple[Any, Any]] = []
        handles: list[Any] = []
        # every module's hooks (the user's, the doctor's) set aside: they must not see the
        # check (only the dicts that hold some: a module has a dozen, nearly all empty)
        hooks = [(vars(m), name, value) for m in model.modules()
                 for name, value in vars(m).items()
                 if isinstance(value, dict) and value and name.endswith("_hooks")]  # fmt: skip
        try:
            for where, name, value in hooks:
                where[name] = type(value)()
            for _, m in self.bn_modules:
                for name in BATCHNORM_BUFFERS:
                    b = getattr(m, name, None)
                    if b is not None:
                        saved.append((b, self.copy_of(b)))
            for p, m in self.bn_modules:
                handles.append(m.register_forward_hook(self._moments_hook(moments, p)))
            with self.no_grad():
                model.eval()
                out = model(x)
                for h in handles:
                    h.remove()
                eval_loss = self.scalar(loss_fn(out, y)) if loss_fn and y is not None else NAN
                for _, m in self.bn_modules:
                    m.train()
                out = model(x)
                batch_loss = self.scalar(loss_fn(out, y)) if loss_fn and y is not None else NAN
        finally:
            for h in handles:
                h.remove()
            for where, name, value in hooks:
                where[name] = value
            for b, value in saved:
                self.restore(b, value)
            for m, mode in modes:  # (parents first: each child is set after its parent, and
                if m.training != mode:  # only where it differs: train() recurses)
                    m.train(mode)
        return moments, eval_loss, batch_loss

    def _moments_hook(self, into: dict[str, Any], path: str) -> Any:
        def hook(module: Any, inputs: Any, output: Any) -> None:
            into[path] = self.channel_moments(inputs[0])

        return hook

    # the framework's pieces of the batch-norm check (another framework's probes override)
    def no_grad(self) -> Any:
        """A block that records no gradients."""
        return no_grad()

    def copy_of(self, buffer: Any) -> Any:
        return np.array(buffer.data, copy=True)

    def restore(self, buffer: Any, value: Any) -> None:
        np.copyto(buffer.data, value)

    def scalar(self, loss: Any) -> float:
        return float(loss.data) if isinstance(loss, Tensor) else float(loss)

    def channel_moments(self, x: Any) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel mean and (biased) variance of a batch-norm input (N, C, *positions)."""
        a = _array(x).astype(np.float64)
        axes = (0, *range(2, a.ndim))
        return a.mean(axis=axes), a.var(axis=axes)

    # ------------------------------------------------------------------ hooks
    def _evaluation_hook(self, module: Any, inputs: Any, output: Any) -> None:
        # Evaluating (a forward of the model recording no gradient) while Dropouts are still
        # in training mode: each such Dropout counts the forward.
        if self.grad_enabled():
            return
        counts = self.trace.dropout_in_eval
        for path, m in self._dropouts:
            if m.training:
                counts[path] = counts.get(path, 0) + 1

    def _order_hook(self, module: Any, inputs: Any, output: Any) -> None:
        if self._call_order is not None and module.training and is_grad_enabled():
            path = self._paths.get(id(module))
            if path is not None and path not in self._call_order:
                self._call_order.append(path)

    def _activation_hook(self, module: Any, inputs: Any, output: Any) -> None:
        if not module.training or not is_grad_enabled() or not isinstance(output, Tensor):
            return
        path = self._paths[id(module)]
        th = self.thresholds
        self.trace.activations[path].observe(self.step, output.data, th.sigmoid_margin,
                                             th.tanh_limit)  # fmt: skip
        if self._call_order is not None:  # the first sample learns the model's structure
            self._order_hook(module, inputs, output)
            self._last_activation_output = (path, id(output))

    def _gate_op(self, step: Any) -> None:
        """The outputs of the sigmoid and tanh ops run inside a gated module (an LSTM's
        gates), kept as the activation statistics ``<module>.gates`` / ``<module>.tanh``."""
        kind = step.op.name
        if kind != "sigmoid" and kind != "tanh":
            return
        owner = self._gated.get(id(step.scope))
        if owner is None or not step.scope.training or not is_grad_enabled():
            return
        path = f"{owner}.gates" if kind == "sigmoid" else f"{owner}.tanh"
        stats = self.trace.activations.get(path)
        if stats is None:
            stats = self.trace.activations[path] = ActivationStats(path, kind, 0, inside=owner)
        out = step.output.data
        th = self.thresholds
        stats.observe(self.step, out.reshape(-1, out.shape[-1]), th.sigmoid_margin, th.tanh_limit)

    def _layer_hook(self, module: Any, inputs: Any, output: Any) -> None:
        if not module.training or not is_grad_enabled() or not isinstance(output, Tensor):
            return
        if self._call_order is not None:
            self._order_hook(module, inputs, output)
        if not output.requires_grad:
            return
        path = self._paths[id(module)]
        signal = self._signal  # the dict of this step (replaced after each sample)

        def record(g: Tensor) -> None:
            signal[path] = g.data  # reduced to its RMS in sample()

        output.register_hook(record)

    def _root_hook(self, module: Any, inputs: Any, output: Any) -> None:
        last = self._last_activation_output
        if last is not None and isinstance(output, Tensor) and id(output) == last[1]:
            self.trace.activations[last[0]].is_output = True
        self._last_activation_output = None


def compare_moments(
    running_mean: Any, running_var: Any, mean: np.ndarray, var: np.ndarray, eps: float
) -> tuple[float, float, float]:
    """How far running statistics are from a batch's per-channel ``mean`` and ``var``: the
    RMS over channels of the mean's distance in batch standard deviations, the geometric
    mean of running / batch variance, and the channel furthest from 1 (as max(r, 1/r))."""
    rm = np.asarray(running_mean, np.float64)
    rv = np.asarray(running_var, np.float64)
    if rm.shape != mean.shape or rv.shape != var.shape or not mean.size:
        return math.nan, math.nan, math.nan
    shift = float(np.sqrt(np.mean((mean - rm) ** 2 / (var + eps))))
    log_ratio = np.log((rv + eps) / (var + eps))
    return shift, float(np.exp(np.mean(log_ratio))), float(np.exp(np.max(np.abs(log_ratio))))


class _Watching:
    """An op observer registered until ``remove()``, like a hook's handle."""

    def __init__(self, on_op: Any) -> None:
        self._registration = observe(op=on_op)
        self._registration.__enter__()

    def remove(self) -> None:
        self._registration.__exit__(None, None, None)


def watched_stride(shape: tuple[int, ...]) -> int:
    """A weight's update ratio is measured on every ``k``-th of its entries, flat (1: all of
    them; at most ``UPDATE_ENTRIES``): a view, which neither an index nor a gather needs.
    ``k`` is the smallest at or above size / UPDATE_ENTRIES that shares no factor with any
    of the weight's dimensions, so that the entries walk through every row and column (a
    stride dividing the row length would watch a few columns only, and a column of a dead
    unit's inputs is not a fair sample)."""
    size = math.prod(shape)
    k = max(-(-size // UPDATE_ENTRIES), 1)
    while k > 1 and any(math.gcd(k, d) != 1 for d in shape):
        k += 1
    return k


def _array(x: Any) -> np.ndarray:
    return x.data if isinstance(x, Tensor) else np.asarray(x)


# --------------------------------------------------------------------------- pre-flight


def evenly(n: int, k: int) -> np.ndarray:
    """Up to ``k`` evenly spaced row indices of ``n`` rows."""
    return np.linspace(0, n - 1, min(n, k)).astype(np.int64)


def _rms(a: np.ndarray) -> float:
    a = a.astype(np.float64, copy=False)
    return float(np.sqrt(np.mean(a * a))) if a.size else math.nan


class Seams:
    """What the pre-flight probe needs of a framework (here gradwell's): its tensor type,
    the rows of a batch, a copy of the model that feeds none of its hooks, the context the
    copy runs in, and three reductions of a tensor to a float. Another framework's probes
    pass their own (:class:`gradwell.torch.probes.TorchSeams`)."""

    tensor: Any = Tensor

    def size(self, p: Any) -> int:
        return int(p.data.size)

    def batch(self, X: Any, y: Any, rows: np.ndarray, model: Any) -> tuple[Any, Any]:
        xb = Tensor(np.ascontiguousarray(_array(X)[rows]))
        return xb, (Tensor(np.ascontiguousarray(_array(y)[rows])) if y is not None else None)

    def twin(self, model: Any) -> Any:
        # Hooks (the doctor's among them) are not copied: the copy must not feed them.
        memo: dict[int, Any] = {id(m._forward_hooks): {} for m in model.modules()}
        return copy.deepcopy(model, memo)

    def running(self, model: Any) -> Any:
        return enable_grad()

    def rms(self, t: Any) -> float:
        return _rms(t.data)

    def saturated(self, kind: str, t: Any, th: Thresholds) -> float:
        """The share of the outputs of a sigmoid or tanh near an asymptote."""
        a = t.data
        if kind == "sigmoid":
            return float(np.mean((a < th.sigmoid_margin) | (a > 1 - th.sigmoid_margin)))
        return float(np.mean(np.abs(a) > th.tanh_limit))

    def silent(self, t: Any, per_channel: bool) -> float:
        """The share of a ReLU's units silent for the whole batch (channels: all positions)."""
        a = t.data
        # (examples, units, positions): after a convolution a channel is one unit
        shape = (a.shape[0], a.shape[1], -1) if per_channel and a.ndim > 2 else (len(a), -1, 1)
        return float(np.mean(~(a.reshape(shape) > 0).any(axis=(0, 2))))


def probe_setup(
    model: Any, loss_fn: Any, X: Any, y: Any, th: Thresholds, seams: Seams | None = None
) -> dict[str, Any]:
    """One forward and backward of an evenly spaced batch on a copy of ``model`` (so no
    weight, buffer, gradient or random state of the model changes): the initial loss, the
    call order, the module that made the output, and per layer the RMS of its input,
    output and output gradient (``gain`` = output / input RMS); per sigmoid/tanh the
    share of saturated outputs, per ReLU the share of silent units (after a convolution,
    of silent channels). ``seams``: the framework's (gradwell's by default)."""
    fw = seams or Seams()
    n_params = sum(fw.size(p) for p in model.parameters())
    k = min(max(PROBE_VALUES // max(n_params, 1), PROBE_ROWS[0]), PROBE_ROWS[1])
    rows = evenly(len(X), k)
    xb, yb = fw.batch(X, y, rows, model)
    twin = fw.twin(model)
    twin.train()
    paths = {id(m): p for p, m in twin.named_modules()}
    leaves = [m for p, m in twin.named_modules() if p and not any(True for _ in m.children())]
    order: list[str] = []
    made: dict[int, str] = {}
    layers: dict[str, dict[str, Any]] = {}
    saturated: dict[str, float] = {}
    dead: dict[str, float] = {}
    grads: dict[str, list[float]] = {}
    convolved = [False]  # whether the last layer with a weight was a convolution

    def hook(module: Any, inputs: Any, output: Any) -> None:
        path = paths[id(module)]
        if path not in order:
            order.append(path)
        if not isinstance(output, fw.tensor):
            return
        made[id(output)] = path
        w = getattr(module, "_parameters", {}).get("weight")
        if w is not None and w.ndim >= 2:
            convolved[0] = w.ndim > 2
        if w is not None and w.ndim >= 2 and inputs and isinstance(inputs[0], fw.tensor):
            i_rms, o_rms = fw.rms(inputs[0]), fw.rms(output)
            layers[path] = {"in_rms": i_rms, "out_rms": o_rms,
                            "gain": o_rms / i_rms if i_rms > 0 else math.nan}  # fmt: skip
            if output.requires_grad:
                box = grads.setdefault(path, [])
                output.register_hook(lambda g: box.append(fw.rms(g)))
        fam = class_family(module)
        if fam is not None and fam[1] in ("sigmoid", "tanh"):
            saturated[path] = fw.saturated(fam[1], output, th)
        elif fam is not None and fam[1] == "relu":
            dead[path] = fw.silent(output, convolved[0])

    handles = [m.register_forward_hook(hook) for m in leaves]
    out: dict[str, Any] = {}
    try:
        with fw.running(model):
            pred = twin(xb)
            out["output_module"] = made.get(id(pred)) if isinstance(pred, fw.tensor) else None
            if loss_fn is not None and yb is not None:
                loss = loss_fn(pred, yb)
                out["loss"] = float(loss.data)  # (a torch tensor's .data too)
                if getattr(loss, "requires_grad", False):
                    loss.backward()
    except Exception as e:  # a setup error surfaces in the first step; the check reports
        out["error"] = f"{type(e).__name__}: {e}"
    finally:
        for h in handles:
            h.remove()
    for p, g in grads.items():
        if g and p in layers:
            layers[p]["grad_rms"] = g[0]
    out.update(order=order, layers=layers, saturated=saturated, dead=dead, rows=int(rows.size))
    return out
