"""The Doctor: watches a training run, finds what is wrong and says what to do.

It is four parts along the run's seams: a :class:`~.schedule.Schedule` says which
steps to look at closely; :class:`~.probes.Probes` (the only part that touches the
model and the engine) write numbers into the :class:`~.trace.Trace`; the detectors of
the :mod:`~.diagnosis` registry judge the Trace, and a :class:`~.diagnosis.Ledger`
keeps each finding at its worst, with causes linked to consequences; reports read a
frozen :class:`~.report.Report`. It never changes training: a NaN is replayed on a
copy of the model, the pre-flight check runs on another.

Per step it reads one float (the loss). On a sampled step (every ``sample_every``
steps, and every step while the loss looks alarming) the probes measure each
parameter's gradient norm, the gradient reaching each layer's output, statistics
after every activation, and the update-to-weight ratio of the step.
"""

from __future__ import annotations

import copy
import json
import math
import os
import sys
import warnings
from typing import Any

import numpy as np

from .._atomic import atomic_write
from ..autograd.tensor import Tensor
from ..train.callbacks import Callback
from .check import audit_features, audit_rows, preflight
from .detectors import detect_exploding, detect_nan
from .diagnosis import Ledger, detect_all
from .findings import Finding, jsonable
from .html import html_report
from .probes import Probes
from .profile import ModelProfile
from .report import Report, summary_lines, text_report
from .schedule import DEFAULT_SAMPLE_EVERY, MIN_SAMPLES_PER_EPOCH, Schedule
from .thresholds import Thresholds
from .trace import Trace

#: Samples between diagnoses when there are no epochs (a hand-written loop).
HAND_WINDOW = 20


class _Batch:
    """What a hand-written loop hands over with a step (fit's state has the same names)."""

    __slots__ = ("inputs", "targets", "loss_fn")

    def __init__(self, inputs: Any, targets: Any, loss_fn: Any) -> None:
        self.inputs, self.targets, self.loss_fn = inputs, targets, loss_fn


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

    Findings come root causes first: ``findings[0].actions[0]`` is the change to try
    first. When training starts (in ``fit``, or at a hand loop's first step with its
    batch), the pre-flight check (:func:`gradwell.doctor.check`) looks at the setup.

    Options: ``sample_every`` (steps between detailed samples; default: 16, or fewer
    so that an epoch has at least 4), ``thresholds`` (a :class:`Thresholds`),
    ``feature_names`` (for the feature audit), ``verbose`` (print a line when a
    warning or critical finding first appears or gets worse, and a summary at the end;
    default: as ``fit``'s verbose), ``replay_nan`` (replay the batch that produced the
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
    #: what measures the model (the only part that knows its framework)
    probes_class: type[Probes] = Probes

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
        self._in_fit = False
        self._attached = False
        self._bar_owner: Any = None
        self._group0: dict[str, Any] | None = None
        self._schedule = Schedule(sample_every or DEFAULT_SAMPLE_EVERY)
        self._afresh()
        if model is not None:
            self.attach(model, optimizer)

    def _afresh(self) -> None:
        """The state of one run (one Doctor diagnoses several fits, each on its own)."""
        self.trace = Trace()
        self._probes = self.probes_class(
            self.trace, self.thresholds, self.feature_names, self.replay_nan
        )
        self._schedule.reset()
        self._ledger = Ledger()
        self._announced: dict[str, int] = {}  # kind -> the severity rank last printed
        self._unscaled: Finding | None = None
        self._audit_rows: np.ndarray | None = None
        self._audit_names: list[str] = []
        self._full_audit: Any = None
        self._norm_ref: float | None = None
        self._step = 0
        self._since_diagnosis = 0
        self._finished = False

    # ------------------------------------------------------------------ public API
    @property
    def model(self) -> Any:
        """The model being watched."""
        return self._model

    @property
    def optimizer(self) -> Any:
        return self._optimizer

    @property
    def profile(self) -> ModelProfile:
        """Where things are in the model, and the optimizer's settings."""
        return self._probes.profile

    @property
    def findings(self) -> list[Finding]:
        """Every finding so far, root causes first (``findings[0]``'s first remedy is the
        one to apply first); each carries ``caused_by`` and ``consequences``."""
        return self._ledger.findings

    def attach(self, model: Any, optimizer: Any = None, train_inputs: Any = None) -> Doctor:
        """Start watching ``model`` (and ``optimizer``); audit ``train_inputs`` if given."""
        self._model = model
        self._optimizer = optimizer if optimizer is not None else self._optimizer
        self._probes.attach(model, self._optimizer, self._in_fit)
        groups = getattr(self._optimizer, "param_groups", None)
        self._group0 = groups[0] if groups else None
        if train_inputs is not None:
            self.audit(train_inputs)
        self._attached = True
        if not self.trace.epoch_starts:
            self.trace.epoch_starts.append(self._step)
        if self._schedule.sampled(self._step):
            self._probes.arm(self._step)
        self._schedule.next_event = 0
        return self

    def audit(self, X: Any) -> None:
        """Check the scale of the input columns of ``X`` (evenly spaced rows: up to 5000,
        fewer for wide inputs). The column scales are computed here in a few vectorised
        passes; the preprocessing audit runs on the flagged columns only, and on all of
        them when :attr:`audit_report` is first read (for the reports)."""
        arr = audit_rows(X)
        if arr is None:
            return
        names = self.feature_names
        if names is not None and len(names) != arr.shape[1]:
            raise ValueError(
                f"Doctor: feature_names has {len(names)} names but the inputs have "
                f"{arr.shape[1]} columns"
            )
        names = list(names) if names is not None else [f"x{j}" for j in range(arr.shape[1])]
        self._audit_rows, self._audit_names, self._full_audit = arr, names, None
        self._unscaled = audit_features(arr, names, self.thresholds)
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
        step. ``inputs``/``targets`` let the doctor check the setup on the first step and
        replay the batch if a NaN appears."""
        if not self._attached:
            raise RuntimeError("Doctor.step: no model attached; create Doctor(model, optimizer)")
        if isinstance(loss, float) and self._quiet_step(loss):
            return
        # (a loss that is not one number is the caller's to fix, not the doctor's failing)
        self._safely(self._hand_step, _one_number(loss), inputs, targets)

    def _quiet_step(self, value: float) -> bool:
        """The step most steps are, done here in a few attribute reads: what
        ``_hand_step`` and ``_observe`` do on a step the schedule leaves alone (record the
        loss and learning rate, count the step). Right after backward the interpreter's
        caches are cold, and there each call the full path makes costs several times its
        hot cost: on a small model the full path alone cost 5% of the step. Whatever is
        not plainly quiet (the first step, a sampled one or its neighbours, an alarming
        loss, a broken or finished doctor, a loss that is not a float) takes the full path."""
        trace, group = self.trace, self._group0
        if self._broken or not trace.loss:
            return False
        if not self._schedule.quiet(self._step, value):
            return False
        try:
            lr = float(group["lr"]) if group is not None else None
        except Exception:
            return False
        trace.loss.append(value)
        if lr is not None:
            trace.lr.append(lr)
        self._step += 1
        return True

    def _hand_step(self, value: float, inputs: Any, targets: Any) -> None:
        if not self.trace.loss and inputs is not None and not self.trace.setup:
            # the weights have not moved yet: the pre-flight check sees the initial model
            self._preflight(inputs, targets, len(inputs))
        self.trace.loss.append(value)
        group = self._group0
        if group is not None:
            self.trace.lr.append(group["lr"])
        self._observe(value, _Batch(inputs, targets, self.loss_fn))
        if not self._in_fit and self._since_diagnosis >= HAND_WINDOW:
            self._close_windows(force=False)
            self._diagnose()
            self._since_diagnosis = 0

    def end_epoch(
        self, loss: float | None = None, val_loss: float | None = None, **metrics: float
    ) -> None:
        """Mark an epoch boundary in a hand-written loop (for windows and overfitting);
        ``metrics`` (``accuracy=0.93``) go into the report's metric curves."""
        self._safely(self._hand_epoch, {"loss": loss, "val_loss": val_loss, **metrics})

    def _hand_epoch(self, logs: dict[str, Any]) -> None:
        self._end_epoch(len(self.trace.epochs), logs)
        self.trace.epoch_starts.append(self._step)

    def finish(self) -> list[Finding]:
        """Final diagnosis; removes every hook. Returns the findings."""
        self._safely(self._finish)
        return self.findings

    def _finish(self) -> None:
        self._record(self._probes.resolve_update())
        self._probes.close()
        self._close_windows(force=True)
        self._diagnose(final=True)
        self._finished = True

    def snapshot(self) -> Report:
        """A frozen copy of what the reports show: the findings, the measurements, the
        profile and the feature audit (later steps do not change it)."""
        return Report(
            tuple(self.findings),
            copy.deepcopy(self.trace),
            copy.deepcopy(self.profile),
            self.audit_report,
            self._schedule.every,
        )

    def report(self) -> str:
        """The findings and the measurements, as text."""
        return text_report(self.snapshot())

    def to_dict(self) -> dict[str, Any]:
        """Findings, the model profile, the feature audit and every recorded series."""
        return jsonable(
            {
                "findings": [f.to_dict() for f in self.findings],
                "profile": self.profile.to_dict(),
                "sample_every": self._schedule.every,
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
        atomic_write(path, html_report(self.snapshot()))
        return os.fspath(path)

    # ------------------------------------------------------------------ callbacks (fit)
    # Each hook runs its work through _safely: a bug in the doctor must never stop training.
    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        state = self.state
        assert state is not None
        if self.feature_names is not None:  # a wrong configuration is the user's to fix
            X = _train_arrays(state.train_loader)[0]
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
        state = self.state
        if not self._broken and state is not None and state.loss is not None:
            self._observe(float(state.loss.data), state)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._safely(self._end_epoch, epoch, logs or {})

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self._safely(self._train_end)

    def _train_begin(self) -> None:
        state = self.state
        assert state is not None
        if self._attached and (self.trace.loss or self._finished):
            self._probes.close()
            self._afresh()  # one Doctor, several fits: each run is diagnosed on its own
        self._in_fit = True
        self.loss_fn = state.loss_fn
        self._step = state.global_step
        if self.sample_every is None:
            spe = max(int(state.steps_per_epoch or 0), 1)
            self._schedule.every = max(1, min(DEFAULT_SAMPLE_EVERY, spe // MIN_SAMPLES_PER_EPOCH))
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
        X, y = _train_arrays(state.train_loader)
        self._preflight(X, y, getattr(state.train_loader, "batch_size", None))
        if X is not None:
            self.audit(X)

    def _preflight(self, X: Any, y: Any, batch_size: int | None) -> None:
        """The pre-flight check (gw.doctor.check) on the training data: its numbers go into
        the trace, the call order and output module into the profile, and what it finds
        (the learning rate against its optimizer's range among them) into the findings."""
        try:
            setup, prof = preflight(
                self.model, self.loss_fn, self.optimizer, X, y, self.thresholds, batch_size,
                call_loss=self._probes.stateless_loss(self.loss_fn), probe=self._probes.setup_probe,
                profile=self._probes.profile_of,
            )  # fmt: skip
        except Exception as e:  # (a model that cannot be copied): watch the run without it
            if self.raise_errors:
                raise
            self.trace.setup = {"error": f"the pre-flight check failed: {e!r}"}
            return
        self.trace.setup = setup
        if (setup.get("probe") or {}).get("order"):
            self._probes.learn_structure(prof)
        self._merge(detect_all(self.trace, self.profile, self.thresholds, setup_only=True))

    def _train_end(self) -> None:
        self._finish()
        state = self.state
        if state is not None and state.history is not None:
            state.history.findings[:] = self.findings
        if self.verbose:
            for line in summary_lines(self.snapshot()):
                self._say(line)

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
        self._probes.close()
        warnings.warn(
            f"gradwell doctor: switched off after an internal error ({e!r}); training "
            "goes on unaffected. Please report it.",
            RuntimeWarning,
            stacklevel=3,
        )

    # ------------------------------------------------------------------ observation
    def _observe(self, value: float, batch: Any) -> None:
        # Every step: two comparisons (the loss and learning rate are already in the
        # trace). The rest only on a step the schedule marks: sampled, right before or
        # after one, at the start, or with a loss that is not finite or jumped.
        s = self._step
        if self._schedule.quiet(s, value):
            self._step = s + 1
            return
        try:
            self._observe_closely(s, value, batch)
        except Exception as e:
            self._fail(e)

    def _observe_closely(self, s: int, value: float, batch: Any) -> None:
        probes, schedule = self._probes, self._schedule
        # The update of a sampled step is measured right after the optimizer's step where
        # its optimizer has a hook there (_update_measured), else here, on the step after
        # it: the optimizer has stepped since, and nothing else has.
        self._record(probes.resolve_update())
        schedule.see_loss(s, value)
        armed = probes.armed
        if armed:
            probes.sample(s)
            probes.measure_updates_at_the_step(self._update_measured)
            self._since_diagnosis += 1
        if self.trace.nonfinite is None:
            args: tuple[str, list[str], str] | None
            if not math.isfinite(value):
                args = ("loss", [], str(value))
            else:
                bad = probes.nonfinite_gradients() if armed else []
                args = ("gradient", bad, "non-finite") if bad else None
            if args is not None:
                self._record(
                    probes.nonfinite_event(s, *args, batch.inputs, batch.targets, batch.loss_fn)
                )
        if armed:
            probes.disarm()
            self._fast_diagnosis()
        self._step = s = s + 1
        if schedule.sampled(s) and not self._finished:
            probes.arm(s)
        schedule.plan(s, probes.armed or probes.update_pending)

    def _update_measured(self) -> None:
        """The optimizer stepped after a sample (from its step post-hook): measure the update;
        when it broke nothing, the next step needs no look for it (the schedule planned
        one in case the optimizer would not step)."""
        if self._broken:
            return
        try:
            event = self._probes.resolve_update()
        except Exception as e:
            self._fail(e)
            return
        if event is None:
            self._schedule.plan(self._step, self._probes.armed)
        else:  # (in the framework's words; the alarm: the next steps are looked at closely)
            self._safely(self._record, event)

    def _record(self, event: dict[str, Any] | None) -> None:
        """The first non-finite value: into the trace, alarm, and diagnosed at once."""
        if event is None:
            return
        self.trace.nonfinite = event
        self._schedule.alarm(event["step"])
        f = detect_nan(self.trace, self.profile, self.thresholds)
        if f is not None:
            self._merge([f])

    # ------------------------------------------------------------------ diagnosis
    def _end_epoch(self, epoch: int, logs: dict[str, Any]) -> None:
        self._record(self._probes.resolve_update())
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
        t = self._probes.total_norm
        if self._norm_ref is None and t > 0 and math.isfinite(t):
            self._norm_ref = t
        if self._norm_ref is not None and t >= self.thresholds.explode_growth * self._norm_ref:
            f = detect_exploding(self.trace, self.profile, self.thresholds)
            if f is not None:
                self._merge([f])

    def _diagnose(self, final: bool = False) -> None:
        self._probes.record_batchnorm(self._step, final)
        found = detect_all(self.trace, self.profile, self.thresholds)
        if self._unscaled is not None:
            found.append(self._unscaled)
        self._ledger.update(found, self.profile.order)
        self._publish()

    def _merge(self, new: list[Finding]) -> None:
        if new:
            self._ledger.merge(new, self.profile.order)
            self._publish()

    def _publish(self) -> None:
        """Hand the findings to the history; print a line for each serious finding when it
        first appears or gets worse (so the last line printed agrees with the summary)."""
        history = self.state.history if self.state is not None else None
        if not isinstance(getattr(history, "findings", None), list):
            history = None
        # The related view (copies of every finding) costs a small model's diagnosis more
        # than a detector: only for the history, or when a line may be due (relating raises
        # a finding's rank to at most the worst rank among them).
        raw = self._ledger.raw
        worst = max((f.rank for f in raw.values()), default=0)
        if history is None and all(self._announced.get(kind, 0) >= worst for kind in raw):
            return
        findings = self.findings
        if history is not None:
            history.findings[:] = findings
        for f in findings:
            if f.rank >= 1 and f.rank > self._announced.get(f.kind, 0):
                self._announced[f.kind] = f.rank
                if self.verbose or (self.verbose is None and not self._in_fit):
                    self._say("doctor: " + f.headline())

    def _say(self, line: str) -> None:
        bar = getattr(self._bar_owner, "bar", None)
        if bar is not None:
            from tqdm.auto import tqdm

            tqdm.write(line, file=getattr(self._bar_owner, "file", None) or sys.stdout)
        else:
            print(line, flush=True)


def _one_number(loss: Any) -> float:
    """The loss of a step as a float; a ValueError saying what came when it is not one
    number (a batch of per-example losses, say: reduce it first, as backward() needs)."""
    data = loss.data if isinstance(loss, Tensor) else loss
    try:
        return float(data)
    except (TypeError, ValueError, RuntimeError):
        shape = getattr(data, "shape", None)
        got = f"of shape {tuple(shape)}" if shape is not None else repr(loss)[:80]
        raise ValueError(
            f"Doctor.step: the loss must be one number (a scalar, e.g. loss_fn(...).mean()); "
            f"got {type(loss).__name__} {got}"
        ) from None


def _epoch_metrics(logs: dict[str, Any]) -> dict[str, float]:
    """The epoch's metrics (accuracy, val_accuracy, ...), for the report's metric curves."""
    skip = ("loss", "val_loss", "lr", "time")
    return {
        k: float(v)
        for k, v in logs.items()
        if k not in skip and isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
    }


def _train_arrays(loader: Any) -> tuple[Any, Any]:
    """The training inputs and targets as arrays, when the loader holds them so."""
    ds = getattr(loader, "dataset", None)
    arrays = getattr(ds, "arrays", None)
    if not arrays:
        return None, None
    return arrays[0], (arrays[1] if len(arrays) > 1 else None)
