"""The Doctor: watches a training run, finds what is wrong and says what to do.

It observes through named seams only: module forward hooks and gradient hooks
(installed on sampled steps, removed right after), the fit loop's callbacks, and
read-only looks at gradients and weights. It never changes training: a NaN is
replayed on a copy of the model.

Per step it reads one float (the loss). On a sampled step (every ``sample_every``
steps, and every step while the loss looks alarming) it also measures each
parameter's gradient norm (one dot product each), the gradient reaching each
layer's output, statistics after every activation, BatchNorm running statistics,
and the update-to-weight ratio of the step (read on the next step, when the
optimizer has moved the weights).
"""

from __future__ import annotations

import json
import math
import os
import sys
import warnings
from typing import Any

import numpy as np

from .._atomic import atomic_write
from ..autograd import engine
from ..autograd.tensor import Tensor
from ..train.callbacks import Callback
from .detectors import (
    column_scales,
    detect_exploding,
    detect_nan,
    detect_unscaled,
    diagnose,
    relate,
    unscaled_columns,
)
from .findings import Finding, jsonable
from .kernels import squares_and_change, sum_of_squares, total
from .profile import ModelProfile, class_family, profile_model
from .replay import replay_anomaly
from .thresholds import Thresholds
from .trace import ActivationStats, Trace, floats, ints, median

#: Sample every this many steps at most: a sampled step costs about three quarters of a
#: step of the smallest benchmark model (benchmarks/doctor_overhead.py; sampled every
#: 12th step there, because of the rule below, the doctor costs it 9-10%) and far less
#: of a larger model's step...
DEFAULT_SAMPLE_EVERY = 16
#: ...and at least this many times per epoch, so short epochs still give windows.
MIN_SAMPLES_PER_EPOCH = 4
#: Steps sampled densely after the loss jumps (so an explosion is seen in detail).
ALARM_STEPS = 20
#: The loss at this multiple of its starting level raises the alarm (mini-batch noise
#: stays well under it; an explosion passes it within a step or two)...
ALARM_LOSS_FACTOR = 3.0
#: ...the median of the first this-many losses.
ALARM_REFERENCE_STEPS = 5
#: The feature audit looks at evenly spaced rows of the training inputs: at most this
#: many values in all (rows x columns), and between 256 and 5000 rows. Enough to place the
#: 1st and 99th percentiles that judge a column's scale, at a few milliseconds.
AUDIT_VALUES = 200_000
AUDIT_ROWS = (256, 5000)
#: Samples between diagnoses when there are no epochs (a hand-written loop).
HAND_WINDOW = 20
#: A weight's update ratio is measured on at most this many of its entries: a fixed
#: random set, the same at every sample, so that a sample neither copies nor reads a
#: large weight whole (on a 784-512-256-10 model that extra memory traffic cost the
#: following steps more than the sample itself). On Gaussian weights and updates the
#: estimate is within a few percent of the whole ratio.
UPDATE_ENTRIES = 4096

_KEYED_BY_PLACE = ("dead_relu", "saturated_activations", "dropout_misconfigured")
_UNION_OF_PLACES = ("vanishing_gradients", "exploding_gradients")
_CURRENT_STATE = ("overfitting",)


def _key(f: Finding) -> tuple[str, str]:
    return (f.kind, f.where if f.kind in _KEYED_BY_PLACE else "")


def _is_grad_enabled() -> bool:
    return engine._mode.enabled


class Doctor(Callback):
    """The training doctor.

    With ``gw.fit`` it is on by default (``fit(..., doctor=False)`` turns it off; pass
    a configured ``Doctor`` to tune it); findings land in ``history.findings`` and the
    doctor itself in ``history.doctor``. In a hand-written loop, create it with the
    model and call :meth:`step` after ``backward()`` and before ``optimizer.step()``::

        doctor = gw.doctor.Doctor(model, optimizer, loss=loss_fn)
        for x, y in loader:
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            doctor.step(loss, inputs=x, targets=y)   # reads, never changes
            optimizer.step()
        doctor.finish()
        print(doctor.report())

    Options: ``sample_every`` (steps between detailed samples; default: 16, or fewer
    so that an epoch has at least 4), ``thresholds`` (a :class:`Thresholds`),
    ``feature_names`` (for the feature audit), ``verbose`` (print a line when a
    warning or critical finding first appears, and a summary at the end; default:
    as ``fit``'s verbose), ``replay_nan`` (replay the batch that produced the
    first non-finite value under ``gw.detect_anomaly``), ``raise_errors`` (let an error
    inside the doctor propagate; by default it warns, switches itself off and training
    goes on).

    >>> import numpy as np, gradwell as gw
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(256, 4)); y = (X[:, 0] > 0).astype(np.int64)
    >>> nn = gw.nn
    >>> model = nn.Sequential(nn.Linear(4, 16, rng=0), nn.ReLU(), nn.Linear(16, 2, rng=1))
    >>> history = gw.fit(model, (X, y), loss="cross_entropy", epochs=3, seed=0, verbose=0,
    ...                  optimizer=gw.optim.Adam(model.parameters(), lr=0.01))
    >>> [f.kind for f in history.findings if f.severity != "info"]
    []
    """

    order = -100  # first: it measures the gradients before any other callback acts

    def __init__(
        self,
        model: Any = None,
        optimizer: Any = None,
        *,
        loss: Any = None,
        sample_every: int | None = None,
        thresholds: Thresholds | None = None,
        feature_names: list[str] | None = None,
        verbose: bool | None = None,
        replay_nan: bool = True,
        raise_errors: bool = False,
    ) -> None:
        super().__init__()
        if sample_every is not None and (not isinstance(sample_every, int) or sample_every < 1):
            raise ValueError(
                f"Doctor: sample_every must be an int >= 1 or None; got {sample_every!r}"
            )
        if thresholds is not None and not isinstance(thresholds, Thresholds):
            raise TypeError(
                f"Doctor: thresholds must be a gw.doctor.Thresholds; got "
                f"{type(thresholds).__name__}"
            )
        self._model = model
        self._optimizer = optimizer
        self.loss_fn = loss
        self.sample_every = sample_every
        self.thresholds = thresholds or Thresholds()
        self.feature_names = list(feature_names) if feature_names is not None else None
        self.verbose = verbose
        self.replay_nan = replay_nan
        self.raise_errors = raise_errors
        self._broken = False
        self.trace = Trace()
        self.profile = ModelProfile()
        self._audit_rows: np.ndarray | None = None
        self._audit_names: list[str] = []
        self._full_audit: Any = None
        self._unscaled: Finding | None = None
        self._raw: dict[tuple[str, str], Finding] = {}
        self._announced: set[tuple[str, str]] = set()
        self._handles: list[Any] = []
        self._permanent: list[Any] = []
        self._armed = False
        self._step = 0
        self._every = sample_every or DEFAULT_SAMPLE_EVERY
        self._alarm_until = -1
        self._first_losses: list[float] = []  # the first few, for the starting level
        self._alarm_level = math.inf  # a loss above it raises the alarm
        self._next_event = 0  # the next step _observe looks at closely
        # per weight: (shape, dtype, the entries watched or None for all, their values
        # before the sampled step's update)
        self._snapshot: dict[str, tuple[Any, Any, np.ndarray | None, np.ndarray]] = {}
        self._snapshot_pending = False
        self._signal: dict[str, np.ndarray] = {}
        self._last_activation_output: tuple[str, int] | None = None
        self._total_norm = math.nan
        self._group0: dict[str, Any] | None = None
        self._norm_ref: float | None = None
        self._call_order: list[str] | None = None
        self._order_known = False
        self._in_fit = False
        self._attached = False
        self._since_diagnosis = 0
        self._finished = False
        self._bar_owner: Any = None
        if model is not None:
            self.attach(model, optimizer)

    # ------------------------------------------------------------------ public API
    @property
    def model(self) -> Any:
        """The model being watched."""
        return self._model

    @property
    def optimizer(self) -> Any:
        return self._optimizer

    @property
    def findings(self) -> list[Finding]:
        """Every finding so far, most severe first (root causes ahead of consequences)."""
        from .detectors import PRIORITY

        view = [Finding.from_dict(f.to_dict()) for f in self._raw.values()]
        for v, f in zip(view, self._raw.values()):
            v.evidence = dict(f.evidence)  # keep raw numbers (to_dict stringifies non-finite)
        relate(view)
        view.sort(key=lambda f: (-f.rank, PRIORITY.index(f.kind)))
        return view

    def attach(self, model: Any, optimizer: Any = None, train_inputs: Any = None) -> Doctor:
        """Start watching ``model`` (and ``optimizer``); audit ``train_inputs`` if given."""
        self._model = model
        self._optimizer = optimizer if optimizer is not None else self._optimizer
        self.profile = profile_model(model, self.optimizer)
        self.profile.feature_names = self.feature_names
        self._params = [(n, p) for n, p in model.named_parameters()]
        self._weights = [(n, p) for n, p in self._params if p.data.ndim >= 2]
        groups = getattr(self._optimizer, "param_groups", None)
        self._group0 = groups[0] if groups else None
        self._modules = dict(model.named_modules())
        self._paths = {id(m): p for p, m in self._modules.items()}
        self._install_permanent_hooks()
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
        if train_inputs is not None:
            self.audit(train_inputs)
        self._attached = True
        if not self.trace.epoch_starts:
            self.trace.epoch_starts.append(self._step)
        if self._step % self._every == 0 or self._step <= self._alarm_until:
            self._arm()
        self._next_event = 0
        return self

    def audit(self, X: Any) -> None:
        """Check the scale of the input columns of ``X`` (evenly spaced rows: up to 5000,
        fewer for wide inputs). The column scales are computed here in a few vectorised
        passes; the preprocessing audit runs on the flagged columns only, and on all of
        them when :attr:`audit_report` is first read (for the reports)."""
        arr = X.data if isinstance(X, Tensor) else np.asarray(X)
        if arr.ndim < 2 or arr.dtype.kind not in "fc" or arr.shape[0] < 2:
            return
        arr = arr.reshape(arr.shape[0], -1)
        rows = min(max(AUDIT_VALUES // arr.shape[1], AUDIT_ROWS[0]), AUDIT_ROWS[1])
        if arr.shape[0] > rows:
            arr = arr[np.linspace(0, arr.shape[0] - 1, rows).astype(np.int64)]
        names = self.feature_names
        if names is not None and len(names) != arr.shape[1]:
            raise ValueError(
                f"Doctor: feature_names has {len(names)} names but the inputs have "
                f"{arr.shape[1]} columns"
            )
        names = list(names) if names is not None else [f"x{j}" for j in range(arr.shape[1])]
        self._audit_rows, self._audit_names, self._full_audit = arr, names, None
        scales = column_scales(arr, names)
        scale, outliers, _ = unscaled_columns(scales, self.thresholds)
        flagged = [j for j, n in enumerate(names) if n in scale or n in outliers]
        self._unscaled = None
        if flagged:
            from ..preprocessing import audit

            subset = audit(arr[:, flagged], feature_names=[names[j] for j in flagged])
            self._unscaled = detect_unscaled(subset, self.thresholds, scales)
        self._diagnose()

    @property
    def audit_report(self) -> Any:
        """The preprocessing audit of the training inputs (None when they were not seen);
        computed on first use."""
        if self._full_audit is None and self._audit_rows is not None:
            from ..preprocessing import audit

            self._full_audit = audit(
                self._audit_rows,
                feature_names=self._audit_names,
                scale_ratio_limit=self.thresholds.feature_range_ratio,
            )
        return self._full_audit

    def step(self, loss: Any, inputs: Any = None, targets: Any = None) -> None:
        """Observe one training step: call after ``loss.backward()``, before the optimizer
        step. ``inputs``/``targets`` let the doctor replay the batch if a NaN appears."""
        if not self._attached:
            raise RuntimeError("Doctor.step: no model attached; create Doctor(model, optimizer)")
        self._safely(self._hand_step, loss, inputs, targets)

    def _hand_step(self, loss: Any, inputs: Any, targets: Any) -> None:
        value = float(loss.data) if isinstance(loss, Tensor) else float(loss)
        self.trace.loss.append(value)
        group = self._group0
        if group is not None:
            self.trace.lr.append(group["lr"])
        self._observe(value, inputs, targets, self.loss_fn)
        if not self._in_fit and self._since_diagnosis >= HAND_WINDOW:
            self._close_windows(force=False)
            self._diagnose()
            self._since_diagnosis = 0

    def end_epoch(self, loss: float | None = None, val_loss: float | None = None) -> None:
        """Mark an epoch boundary in a hand-written loop (for windows and overfitting)."""
        self._safely(self._hand_epoch, loss, val_loss)

    def _hand_epoch(self, loss: float | None, val_loss: float | None) -> None:
        self._end_epoch(len(self.trace.epochs), {"loss": loss, "val_loss": val_loss})
        self.trace.epoch_starts.append(self._step)

    def finish(self) -> list[Finding]:
        """Final diagnosis; removes every hook. Returns the findings."""
        self._safely(self._finish)
        return self.findings

    def _finish(self) -> None:
        self._resolve_update()
        self._disarm()
        for h in self._permanent:
            h.remove()
        self._permanent = []
        self._close_windows(force=True)
        self._diagnose()
        self._finished = True

    def report(self) -> str:
        """The findings and the measurements, as text."""
        from .report import text_report

        return text_report(self)

    def to_dict(self) -> dict[str, Any]:
        """Findings, the model profile, the feature audit and every recorded series."""
        return jsonable(
            {
                "findings": [f.to_dict() for f in self.findings],
                "profile": self.profile.to_dict(),
                "sample_every": self._every,
                "audit": self.audit_report.to_dict() if self.audit_report is not None else None,
                "trace": self.trace.to_dict(),
            }
        )

    def to_json(self, path: str | os.PathLike[str] | None = None, **kwargs: Any) -> str:
        """Strict JSON of :meth:`to_dict`; written atomically to ``path`` when given."""
        kwargs.setdefault("indent", 2)
        text = json.dumps(self.to_dict(), allow_nan=False, **kwargs)
        if path is not None:
            atomic_write(path, text)
        return text

    def save_html(self, path: str | os.PathLike[str]) -> str:
        """Write a self-contained HTML report (plots embedded) to ``path``; returns the path."""
        from .html import html_report

        atomic_write(path, html_report(self))
        return os.fspath(path)

    # ------------------------------------------------------------------ callbacks (fit)
    # Each hook runs its work through _safely: a bug in the doctor must never stop training.
    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        state = self.state
        assert state is not None
        if self.feature_names is not None:  # a wrong configuration is the user's to fix
            X = _train_inputs(state.train_loader)
            width = int(np.prod(np.shape(X)[1:])) if X is not None else None
            if width is not None and width != len(self.feature_names):
                raise ValueError(
                    f"Doctor: feature_names has {len(self.feature_names)} names but the "
                    f"training inputs have {width} columns"
                )
        self._safely(self._train_begin)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if not self._broken and (
            not self.trace.epoch_starts or self.trace.epoch_starts[-1] != self._step
        ):
            self.trace.epoch_starts.append(self._step)

    def on_after_backward(self, step: int, logs: dict[str, Any] | None = None) -> None:
        # Every step comes here: _observe's short path written out (no call, no try).
        state = self.state
        if self._broken or state is None or state.loss is None:
            return
        value = float(state.loss.data)
        s = self._step
        if s < self._next_event and -math.inf < value <= self._alarm_level:
            self._step = s + 1
            return
        try:
            self._observe_closely(s, value, state.inputs, state.targets, state.loss_fn)
        except Exception as e:
            self._fail(e)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._safely(self._end_epoch, epoch, logs or {})

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self._safely(self._train_end)

    def _train_begin(self) -> None:
        state = self.state
        assert state is not None
        if self._attached and (self.trace.loss or self._finished):
            self._start_afresh()  # one Doctor, several fits: each run is diagnosed on its own
        self._in_fit = True
        self.loss_fn = state.loss_fn
        self._step = state.global_step
        self._next_event = 0
        if self.sample_every is None:
            spe = max(int(state.steps_per_epoch or 0), 1)
            self._every = max(1, min(DEFAULT_SAMPLE_EVERY, spe // MIN_SAMPLES_PER_EPOCH))
        if self.verbose is None:
            bars = [cb for cb in state.callbacks if type(cb).__name__ == "ProgressBar"]
            self.verbose = bool(bars)
            self._bar_owner = bars[0] if bars else None
        if state.history is not None:
            state.history.findings = []
            state.history.doctor = self
            # fit records every step's loss and learning rate there: the trace reads
            # them rather than keep copies (the steps stay cheaper)
            self.trace.loss, self.trace.lr = state.history.steps["loss"], state.history.steps["lr"]
        self.attach(state.model, state.optimizer)
        X = _train_inputs(state.train_loader)
        if X is not None:
            self.audit(X)

    def _train_end(self) -> None:
        self._finish()
        state = self.state
        if state is not None and state.history is not None:
            state.history.findings[:] = self.findings
        if self.verbose:
            from .report import summary_lines

            for line in summary_lines(self):
                self._say(line)

    def _start_afresh(self) -> None:
        self._disarm()
        for h in self._permanent:
            h.remove()
        self._permanent = []
        self.trace = Trace()
        self._raw, self._announced = {}, set()
        self._step, self._alarm_until = 0, -1
        self._first_losses = []
        self._alarm_level, self._next_event = math.inf, 0
        self._snapshot_pending, self._finished = False, False
        self._norm_ref, self._unscaled = None, None
        self._audit_rows, self._full_audit = None, None
        self._order_known, self._call_order = False, None

    def _safely(self, fn: Any, *args: Any) -> None:
        if self._broken:
            return
        try:
            fn(*args)
        except Exception as e:
            self._fail(e)

    def _fail(self, e: Exception) -> None:
        """Called while ``e`` is being handled: re-raise it, or switch the doctor off."""
        if self.raise_errors:
            raise  # noqa: PLE0704  (the exception being handled by the caller)
        self._broken = True
        self._armed = True  # so that _disarm removes whatever is installed
        self._disarm()
        for h in self._permanent:
            h.remove()
        self._permanent = []
        warnings.warn(
            f"gradwell doctor: switched off after an internal error ({e!r}); training "
            "goes on unaffected. Please report it.",
            RuntimeWarning,
            stacklevel=3,
        )

    # ------------------------------------------------------------------ observation
    def _observe(self, value: float, inputs: Any, targets: Any, loss_fn: Any) -> None:
        # Every step: two comparisons (the loss and learning rate are already in the
        # trace). The rest only on a step that is sampled, comes right before or after
        # one, starts the run, or whose loss is not finite or jumped. (fit's callback,
        # on_after_backward, repeats these lines to save a call on every step.)
        s = self._step
        if s < self._next_event and -math.inf < value <= self._alarm_level:
            self._step = s + 1
            return
        self._observe_closely(s, value, inputs, targets, loss_fn)

    def _observe_closely(
        self, s: int, value: float, inputs: Any, targets: Any, loss_fn: Any
    ) -> None:
        # The update of a sampled step is measured on the step after it: the optimizer
        # has stepped since, and nothing else has.
        self._resolve_update()
        trace = self.trace
        finite = math.isfinite(value)
        if not finite or value > self._alarm_level:
            self._alarm_until = s + ALARM_STEPS
        first = self._first_losses
        if len(first) < ALARM_REFERENCE_STEPS:  # the median of the first few losses
            first.append(value)
            finite_first = [v for v in first if math.isfinite(v)]
            ref = median(finite_first) if finite_first else math.nan
            # the starting level, for the steps after these
            self._alarm_level = ALARM_LOSS_FACTOR * ref if ref > 0 else math.inf
        armed = self._armed
        if armed:
            self._sample_numbers(s)
        if not finite and trace.nonfinite is None:
            self._nonfinite(s, "loss", [], str(value), inputs, targets, loss_fn)
        elif armed and trace.nonfinite is None:
            self._check_sample_finite(s, inputs, targets, loss_fn)
        if armed:
            self._disarm()
            self._fast_diagnosis()
        self._step = s = s + 1
        if (s % self._every == 0 or s <= self._alarm_until) and not self._finished:
            self._arm()
        # The next step that needs this method: the one before the next sampled step
        # (it arms the hooks), a sampled one, the one after (it measures the update), or
        # any while the starting level is measured.
        if self._armed or self._snapshot_pending or len(first) < ALARM_REFERENCE_STEPS:
            self._next_event = s
        else:
            self._next_event = s + (-s % self._every) - 1

    def _sample_numbers(self, s: int) -> None:
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
        self._total_norm = math.sqrt(total2) if total2 >= 0 else math.nan
        self.trace.add_sample(s, norms, signal, self._total_norm)
        self._signal = {}
        # Keep the (watched entries of the) weights this step starts from, to measure the
        # update after the step.
        for name, p in self._weights:
            data = p.data
            snap = self._snapshot.get(name)
            if snap is None or snap[0] != data.shape or snap[1] != data.dtype:
                watched = _watched_entries(data.size)
                buf = np.empty(data.size if watched is None else watched.size, data.dtype)
                snap = self._snapshot[name] = (data.shape, data.dtype, watched, buf)
            flat = data.reshape(-1)  # a view, for the contiguous arrays of parameters
            if snap[2] is None:
                np.copyto(snap[3], flat)
            else:
                np.take(flat, snap[2], out=snap[3])
        self._snapshot_pending = True
        self._since_diagnosis += 1

    def _resolve_update(self) -> None:
        """After the optimizer step of a sampled step: |w_after - w_before| / |w_before|."""
        if not self._snapshot_pending:
            return
        self._snapshot_pending = False
        self._update_ratios()

    def _update_ratios(self) -> None:
        ratios = {}
        broken = []
        for name, p in self._weights:
            snap = self._snapshot.get(name)
            if snap is None or snap[0] != p.data.shape:
                continue
            flat = p.data.reshape(-1)
            after = flat if snap[2] is None else flat[snap[2]]
            w2, d2 = squares_and_change(snap[3], after)
            # finite weights before, non-finite after: this update broke them
            if math.isfinite(w2) and not math.isfinite(d2) and not np.isfinite(p.data).all():
                broken.append(name)
            ratios[name] = math.sqrt(d2 / w2) if w2 > 0 and math.isfinite(w2) else math.nan
        self.trace.set_update_ratio(ratios)
        if broken and self.trace.nonfinite is None:
            s = self.trace.samples[-1]
            lr = self.trace.lr[s] if len(self.trace.lr) > s else None
            self._record_nonfinite(
                {
                    "step": s,
                    "source": "parameter",
                    "names": broken,
                    "value": "non-finite",
                    "anomaly": None,
                    "note": (
                        f"The optimizer update of step {s} made them non-finite from finite "
                        f"weights and finite gradients (gradient norm "
                        f"{self._total_norm:.3g}, learning rate {lr}): the step overflowed."
                    ),
                }
            )

    def _check_sample_finite(self, s: int, inputs: Any, targets: Any, loss_fn: Any) -> None:
        if math.isfinite(self._total_norm):
            return
        i = len(self.trace.samples) - 1
        grads = dict(self._params)
        # an infinite norm may be float32 overflow of a finite gradient: look closer
        bad = [
            n
            for n, series in self.trace.grad_norm.items()
            if len(series) > i
            and not math.isfinite(series[i])
            and grads[n].grad is not None
            and not np.isfinite(grads[n].grad.data).all()
        ]
        if bad:
            self._nonfinite(s, "gradient", bad, "non-finite", inputs, targets, loss_fn)

    def _nonfinite(
        self,
        s: int,
        source: str,
        names: list[str],
        value: str,
        inputs: Any,
        targets: Any,
        loss_fn: Any,
    ) -> None:
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
            self._disarm()
            anomaly, note = replay_anomaly(self.model, inputs, targets, loss_fn)
            event["anomaly"] = anomaly
            event["note"] = note
        else:
            event["anomaly"] = None
            event["note"] = "The replay under gw.detect_anomaly was switched off (replay_nan)."
        self._record_nonfinite(event)

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

    def _record_nonfinite(self, event: dict[str, Any]) -> None:
        self.trace.nonfinite = event
        self._alarm_until = max(self._alarm_until, event["step"] + ALARM_STEPS)
        self._next_event = 0
        f = detect_nan(self.trace, self.profile, self.thresholds)
        if f is not None:
            self._merge([f])

    # ------------------------------------------------------------------ hooks
    def _install_permanent_hooks(self) -> None:
        for h in self._permanent:
            h.remove()
        self._permanent = []
        self._bn_modules = []
        for path, m in self._modules.items():
            # fit always evaluates in eval mode; a hand-written loop may forget model.eval()
            if not self._in_fit and self.profile.dropouts.get(path, 0.0) > 0:
                self._permanent.append(m.register_forward_hook(self._dropout_hook))
            if path in self.profile.batchnorm and hasattr(m, "running_var"):
                self._bn_modules.append((path, m))

    def _dropout_hook(self, module: Any, inputs: Any, output: Any) -> None:
        # Evaluating (no gradient recorded) while the layer is still in training mode.
        if module.training and not _is_grad_enabled():
            path = self._paths.get(id(module), "?")
            self.trace.dropout_in_eval[path] = self.trace.dropout_in_eval.get(path, 0) + 1

    def _arm(self) -> None:
        if self._armed or self.model is None:
            return
        self._armed = True
        add = self._handles.append
        for m in self._act_modules:
            add(m.register_forward_hook(self._activation_hook))
        for m in self._layer_modules:
            add(m.register_forward_hook(self._layer_hook))
        if not self._order_known:  # the model's structure: learnt on the first sample
            self._call_order = []
            for m in self._other_leaves:
                add(m.register_forward_hook(self._order_hook))
            add(self.model.register_forward_hook(self._root_hook))

    def _disarm(self) -> None:
        if not self._armed:
            return
        for h in self._handles:
            h.remove()
        self._handles = []
        self._armed = False
        if not self._order_known and self._call_order:
            self._order_known = True
            self.profile = profile_model(self.model, self.optimizer, self._call_order)
            self.profile.feature_names = self.feature_names
            self._call_order = None  # known: the hooks stop recording it

    def _order_hook(self, module: Any, inputs: Any, output: Any) -> None:
        if self._call_order is not None and module.training and _is_grad_enabled():
            path = self._paths.get(id(module))
            if path is not None and path not in self._call_order:
                self._call_order.append(path)

    def _activation_hook(self, module: Any, inputs: Any, output: Any) -> None:
        if not module.training or not engine._mode.enabled or not isinstance(output, Tensor):
            return
        path = self._paths[id(module)]
        th = self.thresholds
        self.trace.activations[path].observe(
            self._step, output.data, th.sigmoid_margin, th.tanh_limit
        )
        if self._call_order is not None:  # the first sample learns the model's structure
            self._order_hook(module, inputs, output)
            self._last_activation_output = (path, id(output))

    def _layer_hook(self, module: Any, inputs: Any, output: Any) -> None:
        if not module.training or not engine._mode.enabled or not isinstance(output, Tensor):
            return
        if self._call_order is not None:
            self._order_hook(module, inputs, output)
        if not output.requires_grad:
            return
        path = self._paths[id(module)]
        signal = self._signal  # the dict of this step (replaced after each sample)

        def record(g: Tensor) -> None:
            signal[path] = g.data  # reduced to its RMS in _sample

        output.register_hook(record)

    def _root_hook(self, module: Any, inputs: Any, output: Any) -> None:
        last = self._last_activation_output
        if last is not None and isinstance(output, Tensor) and id(output) == last[1]:
            self.trace.activations[last[0]].is_output = True
        self._last_activation_output = None

    # ------------------------------------------------------------------ diagnosis
    def _end_epoch(self, epoch: int, logs: dict[str, Any]) -> None:
        self._resolve_update()
        val = logs.get("val_loss")
        loss = logs.get("loss")
        self.trace.epochs.append(
            {
                "epoch": epoch,
                "loss": float(loss) if loss is not None else None,
                "val_loss": float(val) if val is not None else None,
                "end_step": self._step - 1,
                "metrics": _epoch_metrics(logs),
            }
        )
        self._close_windows(force=False)
        self._diagnose()

    def _close_windows(self, force: bool) -> None:
        epoch = self.trace.epoch_of(self._step - 1)
        for stats in self.trace.activations.values():
            if stats.examples >= self.thresholds.min_window_examples or (
                force and stats.examples > 0 and not stats.windows
            ):
                stats.close_window(self._step - 1, epoch, self.thresholds.pinned_unit)

    def _fast_diagnosis(self) -> None:
        # Cheap test first (one float): the full detector only once the norm has grown.
        t = self._total_norm
        if self._norm_ref is None and t > 0 and math.isfinite(t):
            self._norm_ref = t
        if self._norm_ref is not None and t >= self.thresholds.explode_growth * self._norm_ref:
            f = detect_exploding(self.trace, self.profile, self.thresholds)
            if f is not None:
                self._merge([f])

    def _diagnose(self) -> None:
        self._record_batchnorm()
        found = diagnose(self.trace, self.profile, self.thresholds)
        if self._unscaled is not None:
            found.append(self._unscaled)
        # A trend judged on the whole run: the latest verdict replaces earlier ones.
        for key in [k for k in self._raw if k[0] in _CURRENT_STATE]:
            if not any(_key(f) == key for f in found):
                del self._raw[key]
        for f in found:
            if f.kind in _CURRENT_STATE:
                self._raw.pop(_key(f), None)
        self._merge(found)

    def _record_batchnorm(self) -> None:
        """The running statistics of each batch-norm layer, at every diagnosis (an epoch's
        end in fit): they move slowly, and no detector reads them, so a sampled step
        does not pay for them."""
        records = self.trace.batchnorm
        for path, m in self._bn_modules:
            rm, rv = m.running_mean, m.running_var
            if rm is None or rv is None:
                continue
            rec = records.get(path)
            if rec is None:
                rec = records[path] = {
                    "step": ints(),
                    "rms_running_mean": floats(),
                    "mean_running_var": floats(),
                    "min_running_var": floats(),
                }
            if rec["step"] and rec["step"][-1] == self._step:
                continue  # (finish right after an epoch's end: no step since)
            mean, var = rm.data, rv.data
            rec["step"].append(self._step)
            rec["rms_running_mean"].append(math.sqrt(sum_of_squares(mean) / max(mean.size, 1)))
            rec["mean_running_var"].append(total(var) / max(var.size, 1))
            rec["min_running_var"].append(float(np.min(var)) if var.size else math.nan)

    def _merge(self, new: list[Finding]) -> None:
        """Keep each finding at its worst (earliest start); announce new serious ones."""
        if not new:
            return
        for f in new:
            k = _key(f)
            old = self._raw.get(k)
            if old is None:
                self._raw[k] = f
            elif f.rank >= old.rank:
                keep_start = f.kind not in _KEYED_BY_PLACE  # per-layer kinds: latest window
                if keep_start and old.step is not None and (f.step is None or old.step < f.step):
                    f.step, f.epoch = old.step, old.epoch
                if f.kind in _UNION_OF_PLACES:
                    # the places affected at any time in the run, in forward order
                    seen = set(old.locations) | set(f.locations)
                    order = [p for p in self.profile.order if p in seen]
                    order += sorted(seen - set(order))
                    f.where = ", ".join(order)
                    f.evidence["layers_over_the_run"] = order
                    for key in ("ratio_to_strongest_later_layer", "growth_by_layer"):
                        if key in old.evidence and key in f.evidence:
                            merged = dict(old.evidence[key])
                            pick = min if key.startswith("ratio") else max
                            for p, v in f.evidence[key].items():
                                merged[p] = pick(v, merged.get(p, v))
                            f.evidence[key] = merged
                self._raw[k] = f
        findings = self.findings
        history = self.state.history if self.state is not None else None
        if history is not None and isinstance(getattr(history, "findings", None), list):
            history.findings[:] = findings
        for f in findings:
            k = _key(f)
            if f.rank >= 1 and k not in self._announced:
                self._announced.add(k)
                if self.verbose or (self.verbose is None and not self._in_fit):
                    self._say("doctor: " + f.headline())

    def _say(self, line: str) -> None:
        bar = getattr(self._bar_owner, "bar", None)
        if bar is not None:
            from tqdm.auto import tqdm

            tqdm.write(line, file=getattr(self._bar_owner, "file", None) or sys.stdout)
        else:
            print(line, flush=True)


def _epoch_metrics(logs: dict[str, Any]) -> dict[str, float]:
    """The epoch's metrics (accuracy, val_accuracy, ...), for the report's metric curves."""
    skip = ("loss", "val_loss", "lr", "time")
    return {
        k: float(v)
        for k, v in logs.items()
        if k not in skip and isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
    }


def _watched_entries(size: int) -> np.ndarray | None:
    """The flat indices a weight's update ratio is measured on (None: all of them):
    ``UPDATE_ENTRIES`` of them, random but fixed by the weight's size, in order."""
    if size <= UPDATE_ENTRIES:
        return None
    return np.sort(np.random.default_rng(size).choice(size, UPDATE_ENTRIES, replace=False))


def _train_inputs(loader: Any) -> Any:
    ds = getattr(loader, "dataset", None)
    arrays = getattr(ds, "arrays", None)
    if arrays:
        return arrays[0]
    return None
