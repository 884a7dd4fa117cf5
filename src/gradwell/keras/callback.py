"""``DoctorCallback``: gradwell's doctor in ``model.fit``, in one line.

Keras' callbacks see neither the batch loss (``logs["loss"]`` is the epoch's running
mean) nor the gradients (``on_train_batch_end`` runs after the optimizer step). On the
torch backend, the train step calls ``model.compute_loss(x, y, y_pred, ...)`` and then,
after ``loss.backward()``, ``model.optimizer.apply(gradients, variables)``: the
callback wraps both methods of the model and optimizer it watches for the length of
``fit``. The first keeps the step's loss and batch; the second calls ``doctor.step``
between backward and the optimizer step, exactly where a hand-written torch loop calls it.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np
import torch

from ..doctor.check import AUDIT_ROWS
from ..doctor.schedule import DEFAULT_SAMPLE_EVERY, MIN_SAMPLES_PER_EPOCH
from ..torch.doctor import Doctor as TorchDoctor
from ..torch.doctor import WatchedRun
from ..torch.probes import numpy_of
from .losses import KerasLoss
from .probes import KerasProbes
from .profile import learning_rate_of
from .seams import Swapped


class _LearningRate:
    """The optimizer's current learning rate where the Doctor reads a torch parameter
    group's (``group["lr"]``, each step)."""

    def __init__(self, optimizer: Any) -> None:
        self.optimizer = optimizer

    def __getitem__(self, key: str) -> float:
        return learning_rate_of(self.optimizer)


class Doctor(TorchDoctor):
    """The doctor for a Keras model on the torch backend (:class:`DoctorCallback` makes
    one): gradwell's :class:`~gradwell.torch.Doctor` measuring with
    :class:`~.probes.KerasProbes`, its remedies in Keras' words."""

    probes_class = KerasProbes
    framework = "keras"

    def attach(self, model: Any, optimizer: Any = None, train_inputs: Any = None) -> Doctor:
        super().attach(model, optimizer, train_inputs)
        if self._optimizer is not None:
            self._group0 = _LearningRate(self._optimizer)  # type: ignore[assignment]
        return self


class DoctorCallback(keras.callbacks.Callback, WatchedRun):
    """Watch ``model.fit`` with gradwell's doctor::

        from gradwell.keras import DoctorCallback
        doctor = DoctorCallback()
        model.fit(X, y, epochs=10, validation_split=0.2, callbacks=[doctor])
        print(doctor.report()); doctor.save_html("report.html")

    It measures what gradwell's doctor measures (the loss every step; on sampled steps each
    weight's gradient norm, the gradient reaching each layer, the update-to-weight ratios,
    per-unit activity after ReLU-family activations, saturation after sigmoid/tanh) and
    BatchNormalization's moving statistics, names places by Keras layer names
    (``dense_1``; ``dense_1/activation`` for the activation of
    ``Dense(..., activation="relu")``) and writes remedies in Keras' words. A NaN is
    replayed on the batch to name the layer and op that made it. It never changes
    training. The training inputs are audited from the first batches (about 256 rows),
    or pass ``train_data=(X, y)`` to audit all of them and run the pre-flight check on
    evenly spaced rows. ``save_html``: a report written when training ends. The other
    options are :class:`gradwell.doctor.Doctor`'s (``sample_every``, ``thresholds``,
    ``feature_names``, ``verbose``, ``replay_nan``, ``raise_errors``); by default it
    samples at least 4 steps an epoch. Keras must run eagerly (``jit_compile=False``,
    the torch backend's default).
    """

    how_to_watch = "pass it to model.fit(..., callbacks=[...])"

    def __init__(
        self, *, train_data: tuple[Any, Any] | None = None, save_html: Any = None, **options: Any
    ) -> None:
        super().__init__()
        self.train_data = train_data
        self.html_path = save_html
        self.options = options
        self.doctor: Doctor | None = None
        self._wrapped: list[Swapped] = []
        self._step: tuple[Any, Any, Any] | None = None  # the step's (loss, x, y)
        self._audit_rows: list[np.ndarray] | None = None

    # ------------------------------------------------------------------ Keras' hooks
    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._unwrap()
        model = self.model
        if getattr(model, "jit_compile", False):
            raise ValueError(
                "DoctorCallback: the doctor watches an eager train step; compile the model "
                "with jit_compile=False (torch.compile hides its layers and gradients)"
            )
        options = dict(self.options)
        steps = (self.params or {}).get("steps")
        if options.get("sample_every") is None and isinstance(steps, int) and steps > 0:
            options["sample_every"] = max(1, min(DEFAULT_SAMPLE_EVERY,
                                                 steps // MIN_SAMPLES_PER_EPOCH))  # fmt: skip
        single = isinstance(model.loss, str) or callable(model.loss)  # (not one per output)
        loss = KerasLoss(model.loss) if single else None
        self.doctor = Doctor(model, model.optimizer, loss=loss, train_data=self.train_data,
                             **options)  # fmt: skip
        self._audit_rows = [] if self.train_data is None else None
        self._wrap(model, model.optimizer)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.doctor is None:
            return
        self._audit_batches(force=True)
        metrics = {k: v for k, v in map(_scalar, (logs or {}).items()) if v is not None}
        metrics.pop("learning_rate", None)
        loss, val_loss = metrics.pop("loss", None), metrics.pop("val_loss", None)
        self.doctor.end_epoch(loss=loss, val_loss=val_loss, **metrics)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self._unwrap()
        if self.doctor is None:
            return
        self.doctor.finish()
        if self.html_path is not None:
            self.doctor.save_html(self.html_path)

    # ------------------------------------------------------------------ the seams
    def _wrap(self, model: Any, optimizer: Any) -> None:
        compute_loss, apply = model.compute_loss, optimizer.apply
        with_training = getattr(model, "_compute_loss_has_training_arg", True)

        def watched_loss(x: Any = None, y: Any = None, y_pred: Any = None,
                         sample_weight: Any = None, training: bool = True) -> Any:  # fmt: skip
            if with_training:
                loss = compute_loss(x, y, y_pred, sample_weight, training=training)
            else:
                loss = compute_loss(x, y, y_pred, sample_weight)
            if training and torch.is_grad_enabled():  # a train step (evaluate runs no_grad)
                self._step = (loss, x, y)
            return loss

        def watched_apply(grads: Any, trainable_variables: Any = None) -> Any:
            step, self._step = self._step, None
            if step is not None and self.doctor is not None:
                self._keep_for_audit(step[1])
                self.doctor.step(*step)  # after backward, before the update
            return apply(grads, trainable_variables)

        self._wrapped = [Swapped(model, "compute_loss", watched_loss),
                         Swapped(optimizer, "apply", watched_apply)]  # fmt: skip

    def _unwrap(self) -> None:
        for w in self._wrapped:
            w.remove()
        self._wrapped = []
        self._step = None

    def _keep_for_audit(self, x: Any) -> None:
        if self._audit_rows is None or not isinstance(x, (torch.Tensor, np.ndarray)):
            return
        self._audit_rows.append(numpy_of(x))
        self._audit_batches(force=False)

    def _audit_batches(self, force: bool) -> None:
        """Audit the input columns from the first batches once they hold enough rows (or at
        the first epoch's end): Keras' callbacks never see the training set itself."""
        rows = self._audit_rows
        if rows is None or self.doctor is None:
            return
        if rows and (force or sum(len(r) for r in rows) >= AUDIT_ROWS[0]):
            self._audit_rows = None
            self.doctor._safely(self.doctor.audit, np.concatenate(rows))


def _scalar(item: tuple[str, Any]) -> tuple[str, float | None]:
    name, value = item
    if isinstance(value, torch.Tensor):
        value = value.item() if value.numel() == 1 else None
    elif isinstance(value, np.ndarray):
        value = value.item() if value.size == 1 else None
    ok = isinstance(value, (int, float, np.number)) and math.isfinite(float(value))
    return name, float(value) if ok else None
