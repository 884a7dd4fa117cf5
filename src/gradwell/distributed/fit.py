"""``gw.fit(..., distributed=True)``: the fit loop of every rank, joined into one job.

:func:`distribute` is the one seam in ``fit``: it gives each rank its share of the
training and validation data, wraps the metrics so their epoch values are reduced
over ranks, keeps the callbacks that print or write files on rank 0 only, and adds
:class:`JobCallback`, which makes the model a replica (``replicate``) and reduces the
epoch logs, and :class:`JobGuard`, which makes all ranks stop together when one of
them meets a non-finite loss or asks to stop.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import pickle
from typing import Any

import numpy as np

from ..data.loader import DataLoader
from ..doctor import Doctor
from ..train import metrics as _metrics
from ..train.callbacks import Callback, CSVLogger, ModelCheckpoint
from .collectives import all_gather_object, all_reduce, broadcast
from .compression import check as check_compression
from .diagnosis import JobTrace
from .parallel import broadcast_buffers, replicate
from .sampler import DistributedSampler
from .world import DistributedError, init, is_main, rank, world_size

#: Callbacks that print or write files: rank 0 runs them, the other ranks leave them out.
MAIN_ONLY: tuple[type, ...] = (ModelCheckpoint, CSVLogger)
_OPTIONS = ("sync_batchnorm", "bucket_bytes", "overlap", "compression")


def _options(distributed: Any) -> dict[str, Any]:
    if distributed is True:
        return {}
    if isinstance(distributed, dict):
        unknown = sorted(set(distributed) - set(_OPTIONS))
        if unknown:
            raise TypeError(
                f"fit: unknown distributed option(s) {', '.join(unknown)}; expected "
                f"{', '.join(_OPTIONS)}"
            )
        check_compression(distributed.get("compression"), "fit: distributed")
        return dict(distributed)
    raise TypeError(
        f"fit: distributed must be True, False or a dict of options ({', '.join(_OPTIONS)}); "
        f"got {distributed!r}"
    )


def _sharded(loader: Any, pad: bool, what: str) -> DataLoader:
    """``loader``'s data set split over the ranks, in the order one process would see it."""
    if not isinstance(loader, DataLoader):
        raise TypeError(
            f"fit(distributed=True) gives each rank its share of the {what} data: pass arrays "
            f"(X, y) or a gw.data.DataLoader; got {type(loader).__name__}"
        )
    if loader.sampler is not None:  # sharded already (a DistributedSampler of one's own)
        return loader
    seed = 0
    if loader.shuffle:  # fit(seed=None) draws a seed per process: rank 0's counts
        assert loader.seed is not None
        seed = int(broadcast(np.array([loader.seed % 2**63], dtype=np.int64))[0])
    sampler = DistributedSampler(len(loader.dataset), shuffle=loader.shuffle, seed=seed, pad=pad)
    shard = DataLoader(
        loader.dataset, batch_size=loader.batch_size, drop_last=loader.drop_last, sampler=sampler
    )
    shard.epoch = loader.epoch
    return shard


class ReducedMetric(_metrics.Metric):
    """A metric whose ``result()`` is over the examples of every rank (exact, not a mean
    of per-rank results): the accumulated sums are gathered and merged."""

    def __init__(self, metric: _metrics.Metric) -> None:
        if not isinstance(metric, (_metrics._Ratio, _metrics._ErrorSum, _metrics.MeanMetric,
                                   _metrics.R2Score)):  # fmt: skip
            raise TypeError(
                f"fit(distributed=True): cannot reduce the metric {metric.name!r} "
                f"({type(metric).__name__}) over ranks"
            )
        self.metric = metric
        self.name = metric.name

    def reset(self) -> None:
        self.metric.reset()

    def update(self, y_true: Any, y_pred: Any) -> None:
        self.metric.update(y_true, y_pred)

    def result(self) -> float:
        m = self.metric
        if isinstance(m, _metrics.R2Score):
            merged = copy.copy(m)
            merged.reset()
            for n, mean, m2, res in all_gather_object((m.n, m.mean, m.m2, m.res)):
                if not n:
                    continue
                total = merged.n + n
                delta = np.asarray(mean) - merged.mean
                merged.mean = merged.mean + delta * (n / total)
                merged.m2 = merged.m2 + m2 + np.square(delta) * (merged.n * n / total)
                merged.res = merged.res + res
                merged.n = total
            return merged.result()
        fields = ("hits", "count") if isinstance(m, _metrics._Ratio) else ("total", "count")
        sums = all_reduce(np.array([float(getattr(m, f)) for f in fields]))
        summed = copy.copy(m)
        for f, v in zip(fields, sums.tolist()):
            setattr(summed, f, v)
        return summed.result()


class JobCallback(Callback):
    """What every rank of a ``fit(distributed=True)`` job runs (see the module docstring)."""

    order = -1000  # first: the model is a replica before anything looks at it

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__()
        self.options = options
        self.reducer: Any = None
        self._job_traces: dict[int, JobTrace] = {}  # per doctor

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        state = self.state
        assert state is not None
        self.reducer = replicate(state.model, **self.options)
        for cb in state.callbacks:  # the doctor speaks on rank 0 only
            if not is_main() and isinstance(cb, Doctor):
                cb.verbose = False

    def _merge_doctors_numbers(self) -> None:
        """Before each doctor judges (it runs after this callback): see diagnosis.py."""
        assert self.state is not None
        for cb in self.state.callbacks:
            if isinstance(cb, Doctor):
                job = self._job_traces.get(id(cb))
                if job is None or job.trace is not cb.trace:  # a new run: a new trace
                    job = self._job_traces[id(cb)] = JobTrace(cb.trace)
                job.merge()

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self._merge_doctors_numbers()
        self.reducer.remove()  # the model is a plain model again (fit again: hooks again)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._loss_sum, self._seen = 0.0, 0

    def on_after_backward(self, step: int, logs: dict[str, Any] | None = None) -> None:
        self.reducer.finish()  # parameters without a gradient this step (else a no-op)

    def on_batch_end(self, step: int, logs: dict[str, Any] | None = None) -> None:
        assert logs is not None and self.state is not None
        self._loss_sum += logs["loss"] * logs["size"]
        self._seen += logs["size"]
        # after the step's update, so validation and checkpoints see rank 0's statistics
        broadcast_buffers(self.state.model)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if logs is None:
            return
        state = self.state
        assert state is not None
        self._merge_doctors_numbers()
        total, seen = all_reduce(np.array([self._loss_sum, float(self._seen)]))
        logs["loss"] = total / seen if seen else float("nan")
        val = state.validation_loader
        if "val_loss" in logs and val is not None:
            n = float(len(val.sampler)) if isinstance(val, DataLoader) and val.sampler else 0.0
            total, seen = all_reduce(np.array([logs["val_loss"] * n, n]))
            logs["val_loss"] = total / seen if seen else float("nan")


class JobGuard(Callback):
    """Runs last at each step of every rank: the ranks agree whether to stop (one small
    all-reduce), so a non-finite loss or a stop asked on one rank stops them all at the
    same step; ``fit`` then ends on every rank with a :class:`DistributedError` naming
    the rank (and the doctor's finding there)."""

    order = 1000  # after every callback that may ask to stop

    def __init__(self) -> None:
        super().__init__()
        self.error: DistributedError | None = None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.error = None
        self.findings: list[Any] = []

    def on_batch_end(self, step: int, logs: dict[str, Any] | None = None) -> None:
        state = self.state
        assert state is not None and logs is not None
        loss = logs["loss"]
        # One small all-reduce a step: does any rank have a non-finite loss, or want to stop?
        flags = np.zeros(world_size() + 1)
        flags[rank()] = not math.isfinite(loss)
        flags[-1] = state.stop_training
        flags = all_reduce(flags, op="max")
        bad = np.flatnonzero(flags[:-1]).tolist()
        if bad:
            self._stop_for_nonfinite(bad, step, loss)
        state.stop_training = bool(flags[-1]) or state.stop_training

    def _stop_for_nonfinite(self, bad: list[int], step: int, loss: float) -> None:
        state = self.state
        assert state is not None
        nan = [f for f in getattr(state.history, "findings", None) or [] if "nan" in f.kind]
        said: tuple[str, Any] = (f"the loss is {loss}", None)
        if nan:  # the doctor's finding itself travels too, when it pickles
            f = dataclasses.replace(nan[0], evidence={**nan[0].evidence, "rank": rank()})
            said = (f.headline(), f if _picklable(f) else None)
        everyone = all_gather_object(said if rank() in bad else None)
        self.findings = [everyone[r][1] for r in bad if r != rank() and everyone[r][1]]
        where = "; ".join(f"rank {r}: {everyone[r][0]}" for r in bad)
        self.error = DistributedError(
            f"training stopped on all {world_size()} ranks at epoch {state.epoch}, batch {step} "
            f"(global step {state.global_step - 1}): a non-finite loss on rank "
            f"{', '.join(map(str, bad))}. {where}",
            collective=True,
            history=state.history,
        )
        state.stop_training = True

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self.error is None:
            return
        findings = getattr(self.state.history if self.state else None, "findings", None)
        if isinstance(findings, list):  # after the doctor's own: the other ranks' findings
            findings.extend(self.findings)
        raise self.error


def _picklable(obj: Any) -> bool:
    try:
        pickle.dumps(obj)
    except Exception:
        return False
    return True


def distribute(
    distributed: Any,
    train_loader: Any,
    val_loader: Any,
    train_metrics: list[Any],
    val_metrics: list[Any],
    callbacks: Any,
    verbose: int,
) -> tuple[Any, Any, list[Any], list[Any], list[Callback], int]:
    """What ``fit`` runs with on this rank: the sharded loaders, reduced metrics, this
    rank's callbacks (with :class:`JobCallback`) and its verbosity (0 off rank 0)."""
    options = _options(distributed)
    init()
    if world_size() == 1:
        return train_loader, val_loader, train_metrics, val_metrics, list(callbacks), verbose
    train_loader = _sharded(train_loader, pad=True, what="training")
    if val_loader is not None:
        val_loader = _sharded(val_loader, pad=False, what="validation")
    kept = [cb for cb in callbacks if is_main() or not isinstance(cb, MAIN_ONLY)]
    return (
        train_loader,
        val_loader,
        [ReducedMetric(m) for m in train_metrics],
        [ReducedMetric(m) for m in val_metrics],
        [*kept, JobCallback(options), JobGuard()],
        verbose if is_main() else 0,
    )


__all__ = ["JobCallback", "JobGuard", "ReducedMetric", "distribute"]
