"""What the doctor recorded during a run: plain numbers, no references to the model.

The monitor fills a :class:`Trace`; the detectors read it. Keeping the two apart
means every detector can be tested on hand-made statistics.
"""

from __future__ import annotations

import bisect
import math
from array import array
from collections.abc import Callable, Iterator, MutableSequence, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .kernels import relu_batch

NAN = float("nan")


def floats() -> MutableSequence[float]:
    """A growing series of raw doubles. Series are arrays, not lists: a list keeps one
    Python object alive per value, and those scattered survivors measurably slow the
    following training steps of a small model (benchmarks/doctor_overhead.py)."""
    return array("d")


def ints() -> MutableSequence[int]:
    """A growing series of raw 64-bit integers (step numbers), as :func:`floats`."""
    return array("q")


@dataclass
class ActivationStats:
    """Statistics after one activation module.

    ``kind`` is the activation's family: "relu" (output 0 means silent), "sigmoid",
    "tanh", or "other". Per sampled step: ``active_fraction`` (share of outputs > 0),
    ``silent_fraction`` (share of units that output 0 for the whole batch) and
    ``saturated_fraction`` (share of outputs near an asymptote). A window (an epoch,
    and at least ``Thresholds.min_window_examples`` examples) ORs "ever positive"
    over every example it saw: a ReLU unit never positive in a window is dead.
    ``per_channel``: the activation follows a convolution, so a unit is a channel (axis 1
    of an (examples, channels, *positions) output) over all its positions: a channel is
    dead when it is 0 at every position of every example, pinned when nearly all its
    outputs sit on an asymptote.
    """

    path: str
    kind: str
    units: int
    is_output: bool = False
    per_channel: bool = False
    # The module these are the internal gates of (e.g. an LSTM); None for an activation module.
    inside: str | None = None
    steps: MutableSequence[int] = field(default_factory=ints)
    active_fraction: MutableSequence[float] = field(default_factory=floats)
    silent_fraction: MutableSequence[float] = field(default_factory=floats)
    saturated_fraction: MutableSequence[float] = field(default_factory=floats)
    windows: list[dict[str, Any]] = field(default_factory=list)
    # Accumulators of the open window.
    ever_positive: np.ndarray | None = None
    saturated_count: np.ndarray | None = None
    examples: int = 0
    positions: int = 1  # outputs of a unit per example (a channel's feature-map size)
    window_start: int | None = None
    # Sampled step at which each unit was last positive (-1: never seen positive).
    last_alive: np.ndarray | None = None

    def observe(self, step: int, out: np.ndarray, sigmoid_margin: float, tanh_limit: float) -> None:
        """Fold one batch of outputs (rows are examples) into the statistics."""
        n = out.shape[0]
        if self.per_channel and out.ndim > 2:
            a = out.reshape(n, out.shape[1], -1)
        else:
            a = out.reshape(n, -1, 1)
        units, positions = a.shape[1], a.shape[2]
        if self.ever_positive is None or self.ever_positive.shape[0] != units:
            self.units = units
            self.ever_positive = np.zeros(units, dtype=bool)
            self.saturated_count = np.zeros(units, dtype=np.int64)
            self.last_alive = np.full(units, -1, dtype=np.int64)
        assert self.saturated_count is not None and self.last_alive is not None
        if self.window_start is None:
            self.window_start = step
        self.steps.append(step)
        self.examples += n
        self.positions = positions
        size = max(a.size, 1)
        if self.kind == "relu":
            # ReLU outputs are >= 0, so "positive" is "nonzero" and a unit fired in this
            # batch when its largest output is above 0: no boolean matrix is needed.
            nonzero, on = relu_batch(a, step, self.ever_positive, self.last_alive)
            self.active_fraction.append(nonzero / size)
            self.silent_fraction.append(1.0 - on / max(units, 1))
            self.saturated_fraction.append(NAN)
            return
        if self.kind == "sigmoid":
            sat = (a < sigmoid_margin) | (a > 1.0 - sigmoid_margin)
        elif self.kind == "tanh":
            sat = np.abs(a) > tanh_limit
        else:
            self.active_fraction.append(NAN)
            self.silent_fraction.append(NAN)
            self.saturated_fraction.append(NAN)
            return
        counts = np.add.reduce(sat, axis=(0, 2), dtype=np.int64)
        self.saturated_count += counts
        self.active_fraction.append(NAN)
        self.silent_fraction.append(NAN)
        self.saturated_fraction.append(float(counts.sum()) / size)

    def close_window(self, end_step: int, epoch: int | None, pinned_unit: float) -> dict | None:
        """End the open window: record its dead and pinned fractions, then start afresh."""
        if self.ever_positive is None or self.examples == 0:
            return None
        assert self.saturated_count is not None and self.last_alive is not None
        dead = ~self.ever_positive
        pinned = self.saturated_count >= pinned_unit * self.examples * self.positions
        # When did the dead units die: the first sampled step after each one's last sign
        # of life (units never seen alive died before the first sample).
        died_at = None
        if self.kind == "relu" and dead.any():
            after = [_next_sample(self.steps, int(s)) for s in self.last_alive[dead]]
            died_at = int(np.median(after))
        window = {
            "start_step": self.window_start,
            "end_step": end_step,
            "epoch": epoch,
            "examples": self.examples,
            "units": self.units,
            "per_channel": self.per_channel,
            "dead_units": int(dead.sum()) if self.kind == "relu" else 0,
            "dead_fraction": float(dead.mean()) if self.kind == "relu" else 0.0,
            "dead_unit_indices": np.flatnonzero(dead).tolist() if self.kind == "relu" else [],
            "died_at_step": died_at if self.kind == "relu" else None,
            "never_alive": int((self.last_alive[dead] < 0).sum()) if self.kind == "relu" else 0,
            "pinned_units": int(pinned.sum()),
            "pinned_fraction": float(pinned.mean()) if self.kind in ("sigmoid", "tanh") else 0.0,
            "saturated_fraction": float(self.saturated_count.sum())
            / max(self.examples * self.positions * self.units, 1),
        }
        self.windows.append(window)
        self.ever_positive[:] = False
        self.saturated_count[:] = 0
        self.examples = 0
        self.window_start = None
        return window

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": self.kind,
            "units": self.units,
            "is_output": self.is_output,
            "per_channel": self.per_channel,
            "inside": self.inside,
            "steps": list(self.steps),
            "active_fraction": list(self.active_fraction),
            "silent_fraction": list(self.silent_fraction),
            "saturated_fraction": list(self.saturated_fraction),
            "windows": [dict(w) for w in self.windows],
        }


def _next_sample(steps: Sequence[int], step: int) -> int:
    """The first sampled step after ``step`` (or the first one, for step -1)."""
    i = bisect.bisect_right(steps, step)
    return steps[min(i, len(steps) - 1)]


@dataclass
class Trace:
    """Everything the monitor measured.

    ``loss`` and ``lr`` hold one value per optimizer step (global step = index); in
    ``gw.fit`` they are the history's own lists (``history.steps``). Series are
    sequences of numbers (arrays, see :func:`floats`; ``to_dict`` gives lists).
    The per-sample series are aligned with ``samples`` (the sampled global steps):
    ``grad_norm[param]`` (L2 norm of the gradient), ``signal[layer]`` (RMS of the
    loss gradient with respect to the layer's output: the back-propagated signal),
    ``update_ratio[param]`` (``|w_after - w_before| / |w_before|`` of that step's
    update, over at most ``doctor.UPDATE_ENTRIES`` fixed entries of a weight;
    NaN when not measured). ``epochs`` holds one dict per finished epoch
    (``epoch``, ``loss``, ``val_loss``, ``end_step``).
    """

    loss: MutableSequence[float] = field(default_factory=floats)
    lr: MutableSequence[float] = field(default_factory=floats)
    samples: MutableSequence[int] = field(default_factory=ints)
    total_norm: MutableSequence[float] = field(default_factory=floats)
    grad_norm: dict[str, MutableSequence[float]] = field(default_factory=dict)
    signal: dict[str, MutableSequence[float]] = field(default_factory=dict)
    update_ratio: dict[str, MutableSequence[float]] = field(default_factory=dict)
    activations: dict[str, ActivationStats] = field(default_factory=dict)
    # per batch-norm layer, at a diagnosis (an epoch's end in fit; on the check's time
    # budget, and at the first and the last): "step" (ints),
    # "rms_running_mean", "mean_running_var", "min_running_var", "momentum" (NaN for a
    # cumulative average), "batches_tracked"; and, measured in evaluation mode on the
    # reference rows of the training data (NaN when not measured): "mean_shift" (RMS over
    # channels of |batch mean - running mean| / batch std), "var_ratio" (geometric mean over
    # channels of running / batch variance), "worst_var_ratio" (the channel furthest from 1,
    # as max(r, 1/r))
    batchnorm: dict[str, dict[str, MutableSequence[Any]]] = field(default_factory=dict)
    #: the loss of the same reference rows with the running statistics (evaluation mode) and
    #: with the rows' own batch statistics (batch norm in training mode, dropout off), at each
    #: diagnosis: "step", "eval_loss", "batch_loss", "rows"
    batchnorm_loss: dict[str, MutableSequence[Any]] = field(default_factory=dict)
    epochs: list[dict[str, Any]] = field(default_factory=list)
    epoch_starts: list[int] = field(default_factory=list)
    nonfinite: dict[str, Any] | None = None
    dropout_in_eval: dict[str, int] = field(default_factory=dict)
    #: what the pre-flight check measured before training (``gw.doctor.check``): "loss"
    #: (the loss's name), "targets" (the target audit), "probe" (one forward/backward of a
    #: batch: the initial loss, its expected value, scales by depth), "batch_size"
    setup: dict[str, Any] = field(default_factory=dict)
    #: the views one diagnosis shares (see :meth:`diagnosing`); None outside a diagnosis
    _views: dict[str, Any] | None = field(default=None, init=False, repr=False, compare=False)

    # --- recording --------------------------------------------------------------
    def add_sample(
        self,
        step: int,
        grad_norm: dict[str, float],
        signal: dict[str, float] | None = None,
        total_norm: float | None = None,
    ) -> None:
        """Record one sampled step; series missing a value get NaN to stay aligned.
        ``total_norm`` (the global gradient norm) is computed from ``grad_norm`` unless
        given."""
        n = len(self.samples)
        self.samples.append(step)
        if total_norm is None:
            total2 = sum(v * v for v in grad_norm.values())  # inf and nan propagate
            total_norm = math.sqrt(total2) if total2 >= 0 else math.nan
        self.total_norm.append(total_norm)
        _append_aligned(self.grad_norm, grad_norm, n)
        _append_aligned(self.signal, signal or {}, n)
        _append_aligned(self.update_ratio, {}, n)

    def set_update_ratio(self, ratios: dict[str, float]) -> None:
        """Fill in the update ratios of the latest sample (measured after its step)."""
        n = len(self.samples)
        for name, value in ratios.items():
            series = self.update_ratio.get(name)
            if series is None:
                series = self.update_ratio[name] = floats()
            if len(series) < n:
                series.extend([NAN] * (n - len(series)))
            series[n - 1] = value

    # --- reading ----------------------------------------------------------------
    @property
    def n_samples(self) -> int:
        return len(self.samples)

    def epoch_of(self, step: int | None) -> int | None:
        """The epoch (0-based) that global step ``step`` belongs to (None if unknown)."""
        if step is None or not self.epoch_starts:
            return None
        return max(bisect.bisect_right(self.epoch_starts, step) - 1, 0)

    def window(self, min_samples: int, max_samples: int = 50) -> list[int]:
        """Indices of the samples in the evaluation window: those of the current epoch
        (the latest one started), extended back to at least ``min_samples`` samples and
        cut to the latest ``max_samples`` (so a diagnosis costs the same late in a run)."""
        n = len(self.samples)
        start_step = self.epoch_starts[-1] if self.epoch_starts else 0
        first = bisect.bisect_left(self.samples, start_step)
        first = min(first, max(n - min_samples, 0))
        first = max(first, n - max_samples)
        return list(range(first, n))

    # --- views shared by the detectors of one diagnosis ------------------------------
    @contextmanager
    def diagnosing(self) -> Iterator[Trace]:
        """While held (one diagnosis: nothing records into the trace meanwhile), the views
        below are computed once, at their first use, and shared by every detector: a small
        model's diagnosis is mostly the dispatch of numpy calls on short arrays, several
        detectors read the same loss. Outside it, each call computes its view afresh."""
        if self._views is not None:  # already held (a diagnosis within one)
            yield self
            return
        self._views = {}
        try:
            yield self
        finally:
            self._views = None  # drops the arrays: a view of ``loss`` pins its buffer

    def _view(self, name: str, make: Callable[[], Any]) -> Any:
        views = self._views
        if views is None:
            return make()
        if name not in views:
            views[name] = make()
        return views[name]

    def loss_array(self) -> np.ndarray:
        """The loss per step as float64 (read-only: it may be shared)."""

        def make() -> np.ndarray:
            a = np.asarray(self.loss, dtype=np.float64)
            a.flags.writeable = False
            return a

        return self._view("loss", make)

    def first_nonfinite_loss(self) -> int:
        """The step of the first inf or NaN loss; -1 when every loss is finite."""

        def make() -> int:
            finite = np.isfinite(self.loss_array())
            return -1 if finite.all() else int(np.argmin(finite))

        return self._view("first_nonfinite", make)

    def finite_loss_median(self) -> float:
        """The median of the loss before its first non-finite value (NaN when empty)."""

        def make() -> float:
            a, bad = self.loss_array(), self.first_nonfinite_loss()
            a = a[:bad] if bad >= 0 else a
            return median(a) if a.size else math.nan

        return self._view("finite_median", make)

    def total_grad_norm(self) -> np.ndarray:
        """Global gradient norm per sample (NaN or inf when any part is)."""
        return np.asarray(self.total_norm, dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        return {
            "loss": list(self.loss),
            "lr": list(self.lr),
            "samples": list(self.samples),
            "total_norm": list(self.total_norm),
            "grad_norm": {k: list(v) for k, v in self.grad_norm.items()},
            "signal": {k: list(v) for k, v in self.signal.items()},
            "update_ratio": {k: list(v) for k, v in self.update_ratio.items()},
            "activations": {k: a.to_dict() for k, a in self.activations.items()},
            "batchnorm": {k: {s: list(v) for s, v in d.items()} for k, d in self.batchnorm.items()},
            "batchnorm_loss": {k: list(v) for k, v in self.batchnorm_loss.items()},
            "epochs": [dict(e) for e in self.epochs],
            "epoch_starts": list(self.epoch_starts),
            "nonfinite": self.nonfinite,
            "dropout_in_eval": dict(self.dropout_in_eval),
            "setup": self.setup,
        }


def _append_aligned(
    series: dict[str, MutableSequence[float]], values: dict[str, float], n: int
) -> None:
    for name, value in values.items():
        s = series.get(name)
        if s is None:
            series[name] = s = floats()
        if len(s) < n:
            s.extend([NAN] * (n - len(s)))
        s.append(value)
    if len(values) != len(series):  # a series without a value this time: pad it
        for s in series.values():
            if len(s) < n + 1:
                s.extend([NAN] * (n + 1 - len(s)))


def finite_median(values: Any) -> float:
    """Median of the finite values (NaN when there are none)."""
    a = np.asarray(values, dtype=np.float64)
    a = a[np.isfinite(a)]
    return median(a) if a.size else math.nan


def median(values: Any) -> float:
    """``np.median`` of a non-empty 1-D array without NaN, the same number, at a third of
    its cost on the short arrays of a diagnosis (about 15 us a call there, for a few
    dozen values): the middle value, or the mean of the two middle ones. (A copy partitioned
    in place: ``np.partition`` makes the same copy behind two more layers of dispatch.)"""
    a = np.array(values, dtype=np.float64)
    k = a.size // 2
    if a.size % 2:
        a.partition(k)
        return float(a[k])
    a.partition((k - 1, k))
    return float((a[k - 1] + a[k]) / 2)


def row_medians(a: np.ndarray) -> np.ndarray:
    """``np.median(a, axis=1)`` of a 2-D float64 array without NaN, as :func:`median`."""
    k = a.shape[1] // 2
    middle = a.copy()
    if a.shape[1] % 2:
        middle.partition(k, axis=1)
        return middle[:, k]
    middle.partition((k - 1, k), axis=1)
    return (middle[:, k - 1] + middle[:, k]) / 2
