"""``gradwell.torch.repair``: gradwell's repair loop for a PyTorch setup.

Diagnose, apply the top remedy, retrain from scratch, repeat
(:func:`gradwell.doctor.repair`): configuration actions change the config that
``build`` and ``train_fn`` read, model edits are applied to each freshly built torch
model (:mod:`.edits`), and everything printed speaks PyTorch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ..doctor.phrasing import speaking
from ..doctor.repair import RepairResult
from ..doctor.repair import repair as gw_repair
from .doctor import Doctor
from .edits import apply_edits


class RunHistory(dict):  # type: ignore[type-arg]
    """A watched torch run as repair reads it: per-epoch series by name (``loss``,
    ``val_loss`` and the metrics given to ``Doctor.end_epoch``), the ``doctor`` and its
    ``findings``."""

    def __init__(self, doctor: Doctor) -> None:
        super().__init__()
        self.doctor = doctor
        self.findings = doctor.findings
        trace = doctor.trace
        starts = list(trace.epoch_starts)
        for i, epoch in enumerate(trace.epochs):
            loss = epoch.get("loss")
            if loss is None:  # the mean of the epoch's step losses
                first = starts[i] if i < len(starts) else 0
                steps = np.asarray(trace.loss[first : epoch["end_step"] + 1], dtype=np.float64)
                loss = float(steps.mean()) if steps.size else math.nan
            self.setdefault("loss", []).append(loss)
            if epoch.get("val_loss") is not None:
                self.setdefault("val_loss", []).append(epoch["val_loss"])
            for name, value in (epoch.get("metrics") or {}).items():
                self.setdefault(name, []).append(value)


def repair(
    build: Callable[[dict[str, Any]], tuple[Any, Any]],
    train_fn: Callable[[Any, Any, dict[str, Any]], Doctor],
    config: dict[str, Any],
    *,
    rounds: int = 3,
    metric: str | None = None,
    print_fn: Callable[[str], Any] | None = print,
) -> RepairResult:
    """Repair a PyTorch training setup: :func:`gradwell.doctor.repair` with torch's model
    edits and words.

    ``build(config) -> (model, optimizer)`` makes a fresh torch model and optimizer from
    the config (keys such as ``lr``, ``optimizer``, ``batch_size``, ``clip_grad_norm``:
    see :mod:`gradwell.doctor.edits`); ``train_fn(model, optimizer, config)`` runs the
    hand-written loop with a :class:`~gradwell.torch.Doctor` and returns it, calling
    ``doctor.end_epoch(accuracy=..., val_loss=...)`` at each epoch's end with the
    metrics that judge the run (default: the first of val_accuracy, accuracy,
    val_loss, loss). Returns the :class:`~gradwell.doctor.repair.RepairResult`.
    """

    def train(model: Any, optimizer: Any, cfg: dict[str, Any]) -> RunHistory:
        doctor = train_fn(model, optimizer, cfg)
        if not isinstance(doctor, Doctor):
            raise TypeError(
                "gradwell.torch.repair: train_fn(model, optimizer, config) must return the "
                f"gradwell.torch.Doctor that watched the run; got {type(doctor).__name__}"
            )
        doctor.finish()
        return RunHistory(doctor)

    with speaking("torch"):
        return gw_repair(build, train, config, rounds=rounds, metric=metric,
                         print_fn=print_fn, edit=apply_edits)  # fmt: skip
