"""The doctor's numbers over the whole job: what each rank measured, merged before it judges.

Each rank's doctor watches its own replica and its own share of every batch. Before a
doctor closes its windows and judges (at each epoch's end and at the end of training),
:class:`JobTrace` merges what the ranks measured since the last merge, so every rank's
doctor reads the numbers of one process that saw all the examples:

- gradient norms and update ratios need nothing: the doctor reads the gradients after
  backward, when they are already the averages, and the weights are the same everywhere;
- the loss of each step: the mean over ranks (each rank's loss is a mean over its share);
- activation windows: a ReLU unit is dead for the job only if it was silent on every
  rank's examples (``ever_positive`` OR-ed: the intersection of the dead), the step it
  was last positive is the latest over the ranks, and the saturated counts and example
  counts are summed (pinned units and a window's size are over all the examples);
- per-step activation fractions: the active and saturated shares are means over ranks
  (the ranks' batches are the same size); the share of units silent for the whole batch
  is the minimum over ranks (a unit silent on the job's batch is silent on every part:
  the fraction one process would see is at most this);
- the back-propagated signal of each layer: the root mean square over ranks, of each
  rank's own loss gradient (the detectors read its ratios between layers, which this
  keeps: one process with a mean loss over R times the batch reads 1/R of each);
- a NaN: :class:`gradwell.distributed.fit.JobGuard` stops every rank at the same step
  and carries the finding of the rank that met it, with that rank.

Everything travels in one gather and three all-reduces per merge, whatever the model's size.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .collectives import all_gather_object, all_reduce


def _series(trace: Any) -> dict[tuple[str, ...], tuple[Any, str]]:
    """The per-step series to merge: key -> (the series, how: "mean", "min" or "rms")."""
    found: dict[tuple[str, ...], tuple[Any, str]] = {("loss",): (trace.loss, "mean")}
    for layer, series in trace.signal.items():
        found[("signal", layer)] = (series, "rms")
    for path, s in trace.activations.items():
        found[("active", path)] = (s.active_fraction, "mean")
        found[("saturated", path)] = (s.saturated_fraction, "mean")
        found[("silent", path)] = (s.silent_fraction, "min")
    return found


class JobTrace:
    """Merges one doctor's :class:`~gradwell.doctor.trace.Trace` over the ranks, each
    time only what was measured since the last merge (see the module docstring)."""

    def __init__(self, trace: Any) -> None:
        self.trace = trace
        self._merged: dict[tuple[str, ...], int] = {}  # entries of each series merged
        # per activation: its open window's start, and that window's example and
        # saturated counts as last merged (what the ranks already share of it)
        self._window: dict[str, tuple[Any, int, np.ndarray]] = {}

    def merge(self) -> None:
        series = _series(self.trace)
        acts = {p: s for p, s in self.trace.activations.items() if s.ever_positive is not None}
        everyone = all_gather_object(
            ({k: len(v) for k, (v, _) in series.items()}, {p: s.units for p, s in acts.items()})
        )
        ranks = len(everyone)
        spans = {}  # the entries measured on every rank and not merged yet
        for k in sorted(set(everyone[0][0]).intersection(*(e[0] for e in everyone[1:]))):
            start, end = self._merged.get(k, 0), min(e[0][k] for e in everyone)
            if end > start:
                spans[k] = (start, end)
        layers = [(p, acts[p]) for p, n in sorted(everyone[0][1].items())
                  if all(e[1].get(p) == n for e in everyone)]  # fmt: skip
        bases = [self._shared(p, s) for p, s in layers]

        # One all-reduce per operation, everything packed: sums (means, RMS, counts), min, max.
        parts: dict[str, list[np.ndarray]] = {"sum": [], "min": [], "max": []}
        for k, (start, end) in spans.items():
            values, how = series[k]
            part = np.asarray(values[start:end], dtype=np.float64)
            parts["min" if how == "min" else "sum"].append(part**2 if how == "rms" else part)
        for (_, s), (examples, saturated) in zip(layers, bases):
            parts["sum"] += [np.array([s.examples - examples]), s.saturated_count - saturated]
            parts["max"] += [s.ever_positive.astype(np.int64), s.last_alive]
        reduced = {
            op: iter(all_reduce(np.concatenate(arrays).astype(np.float64), op=op).tolist())
            for op, arrays in parts.items()
            if arrays
        }

        def take(op: str, n: int) -> np.ndarray:
            return np.array([next(reduced[op]) for _ in range(n)])

        for k, (start, end) in spans.items():
            values, how = series[k]
            merged = take("min" if how == "min" else "sum", end - start)
            if how != "min":
                merged = np.sqrt(merged / ranks) if how == "rms" else merged / ranks
            for i, v in enumerate(merged.tolist(), start=start):
                values[i] = v
            self._merged[k] = end
        for (path, s), (examples, saturated) in zip(layers, bases):
            s.examples = examples + int(take("sum", 1)[0])
            s.saturated_count[:] = saturated + take("sum", s.units).astype(np.int64)
            s.ever_positive[:] = take("max", s.units) > 0
            s.last_alive[:] = take("max", s.units).astype(np.int64)
            self._window[path] = (s.window_start, s.examples, s.saturated_count.copy())

    def _shared(self, path: str, s: Any) -> tuple[int, np.ndarray]:
        """What the ranks already share of ``s``'s open window: nothing for a new one."""
        shared = self._window.get(path)
        if shared is None or shared[0] != s.window_start or shared[2].shape != (s.units,):
            return 0, np.zeros_like(s.saturated_count)
        return shared[1], shared[2]


__all__ = ["JobTrace"]
