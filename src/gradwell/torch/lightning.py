"""``LightningDoctor``: the torch doctor as a Lightning callback, for ``trainer.fit`` users.

A thin adapter: Lightning's hooks call the same :class:`~gradwell.torch.Doctor` a
hand-written loop calls (``doctor.step`` between backward and the optimizer step,
``doctor.end_epoch`` at each epoch's end), so the probes, the diagnosis and the reports
are the same.
"""

from __future__ import annotations

import math
from typing import Any

try:
    from lightning.pytorch import Callback
except ImportError:  # the standalone package of older installs
    try:
        from pytorch_lightning import Callback  # type: ignore[assignment]
    except ImportError as e:
        raise ImportError(
            "gradwell.torch.LightningDoctor needs Lightning: pip install lightning"
        ) from e

import torch

from ..doctor.schedule import DEFAULT_SAMPLE_EVERY, MIN_SAMPLES_PER_EPOCH
from .doctor import Doctor, WatchedRun


class LightningDoctor(Callback, WatchedRun):  # type: ignore[misc]
    """Watch ``trainer.fit`` with gradwell's doctor::

        from gradwell.torch import LightningDoctor
        doctor = LightningDoctor(loss=nn.CrossEntropyLoss(), save_html="report.html")
        L.Trainer(max_epochs=10, callbacks=[doctor]).fit(model, train_loader, val_loader)
        print(doctor.report())

    It reads the gradients in ``on_before_optimizer_step`` (after backward, before
    gradient clipping and the step), the loss in ``on_before_backward`` and the batch in
    ``on_train_batch_start``; at each training epoch's end the logged scalars
    (``val_loss``, ``val_acc``, ...) go to the doctor; when training ends it diagnoses
    the run once more and writes ``save_html`` if given.

    ``loss``: the loss function, ``loss(model(x), y)``, for the pre-flight check's
    initial loss and the NaN trap's replay of loss and backward (a LightningModule
    computes its loss inside ``training_step``, which the doctor cannot call). Batches
    are read as ``(x, y, ...)``; other batches are watched without the replay.
    ``train_data=(X, y)`` and the other options are :class:`~gradwell.torch.Doctor`'s;
    by default it samples at least 4 steps an epoch.
    """

    how_to_watch = "pass it to Trainer(callbacks=[...]) and call trainer.fit"

    def __init__(
        self,
        *,
        loss: Any = None,
        train_data: tuple[Any, Any] | None = None,
        save_html: Any = None,
        **options: Any,
    ) -> None:
        super().__init__()
        self.loss = loss
        self.train_data = train_data
        self.html_path = save_html
        self.options = options
        self.doctor: Doctor | None = None
        self._batch: Any = None
        self._loss: Any = None

    # ------------------------------------------------------------------ Lightning's hooks
    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        options = dict(self.options)
        batches = trainer.num_training_batches
        if options.get("sample_every") is None and isinstance(batches, int) and batches > 0:
            per_epoch = max(batches // max(trainer.accumulate_grad_batches, 1), 1)
            options["sample_every"] = max(1, min(DEFAULT_SAMPLE_EVERY,
                                                 per_epoch // MIN_SAMPLES_PER_EPOCH))  # fmt: skip
        optimizer = trainer.optimizers[0] if trainer.optimizers else None
        self.doctor = Doctor(pl_module, optimizer, loss=self.loss, train_data=self.train_data,
                             **options)  # fmt: skip

    def on_train_batch_start(
        self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int
    ) -> None:
        self._batch = batch

    def on_before_backward(self, trainer: Any, pl_module: Any, loss: Any) -> None:
        self._loss = loss

    def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        if self.doctor is None or self._loss is None:
            return
        inputs, targets = _inputs_and_targets(self._batch)
        self.doctor.step(self._loss, inputs, targets)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if self.doctor is None:
            return
        metrics = {k: v for k, v in map(_scalar, trainer.callback_metrics.items()) if v is not None}
        self.doctor.end_epoch(val_loss=metrics.pop("val_loss", None), **metrics)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        if self.doctor is None:
            return
        self.doctor.finish()
        if self.html_path is not None:
            self.doctor.save_html(self.html_path)


def _inputs_and_targets(batch: Any) -> tuple[Any, Any]:
    if isinstance(batch, (tuple, list)) and len(batch) >= 2:
        return batch[0], batch[1]
    return (batch, None) if isinstance(batch, torch.Tensor) else (None, None)


def _scalar(item: tuple[str, Any]) -> tuple[str, float | None]:
    name, value = item
    if isinstance(value, torch.Tensor):
        value = value.item() if value.numel() == 1 else None
    ok = isinstance(value, (int, float)) and math.isfinite(value)
    return name, float(value) if ok else None
