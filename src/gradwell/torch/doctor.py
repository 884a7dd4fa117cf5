"""The training doctor for a hand-written PyTorch loop.

It is gradwell's :class:`~gradwell.doctor.Doctor` (schedule, diagnosis, findings,
reports) measuring with :class:`~.probes.TorchProbes`, and writing its remedies in
PyTorch's words (``nn.init.kaiming_normal_``, ``torch.nn.utils.clip_grad_norm_``).
"""

from __future__ import annotations

from typing import Any

import torch

from ..doctor import doctor as gw_doctor
from ..doctor.phrasing import speaking
from ..doctor.schedule import DEFAULT_SAMPLE_EVERY, MIN_SAMPLES_PER_EPOCH
from .probes import TorchProbes, numpy_of


class Doctor(gw_doctor.Doctor):
    """Watch a PyTorch training loop; call :meth:`step` between ``backward()`` and
    ``optimizer.step()``::

        doctor = Doctor(model, optimizer, loss=loss_fn)   # or train_data=(X, y)
        for x, y in loader:
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            doctor.step(loss, x, y)        # reads, never changes
            optimizer.step()
        print(doctor.report()); doctor.save_html("report.html")

    ``loss`` (the loss function) lets the pre-flight check measure the initial loss
    (torch's own losses are called; a hand-written one is not, it may keep state) and
    the NaN trap replay the loss and backward. ``train_data=(X, y)``: the whole training
    set, for the feature and target audits and the pre-flight check (else the first
    batch is used). The other options are gradwell's Doctor's. Call :meth:`end_epoch`
    at each epoch's end for per-epoch windows. :meth:`report` and :meth:`save_html`
    finish the run first (the last diagnosis; the hooks are removed).
    """

    probes_class = TorchProbes
    #: whose words the remedies use (:mod:`gradwell.doctor.phrasing`)
    framework = "torch"

    def __init__(
        self,
        model: Any,
        optimizer: Any = None,
        *,
        train_data: tuple[Any, Any] | None = None,
        loss: Any = None,
        **options: Any,
    ) -> None:
        if train_data is not None and (not isinstance(train_data, tuple) or len(train_data) != 2):
            raise TypeError(
                f"gradwell.torch.Doctor: train_data must be a tuple (X, y) of the training "
                f"inputs and targets; got {type(train_data).__name__}"
            )
        self._train_data = train_data
        super().__init__(model, optimizer, loss=loss, **options)
        if train_data is not None:
            self.audit(train_data[0])

    def step(self, loss: Any, inputs: Any = None, targets: Any = None) -> None:
        """Observe one training step: call after ``loss.backward()``, before
        ``optimizer.step()``. The batch (``inputs``, ``targets``) lets the doctor check the
        setup on the first step and replay the batch if a NaN appears."""
        value = loss
        if isinstance(loss, torch.Tensor):
            try:  # (one call into torch a step: asking numel() first cost as much again)
                value = loss.item()
            except RuntimeError:  # not one element: the full path says what is wrong
                value = loss.detach()
        super().step(value, inputs, targets)

    def audit(self, X: Any) -> None:
        with speaking(self.framework):
            super().audit(numpy_of(X))

    def _safely(self, fn: Any, *args: Any) -> None:
        with speaking(self.framework):
            super()._safely(fn, *args)

    def _preflight(self, X: Any, y: Any, batch_size: int | None) -> None:
        if self._train_data is not None:
            X, y = self._train_data
            if self.sample_every is None and batch_size:  # at least 4 samples an epoch
                per_epoch = max(len(X) // batch_size, 1)
                self._schedule.every = max(1, min(DEFAULT_SAMPLE_EVERY,
                                                  per_epoch // MIN_SAMPLES_PER_EPOCH))  # fmt: skip
        super()._preflight(_cpu(X), _cpu(y), batch_size)

    def finish(self) -> list[Any]:
        """The final diagnosis (once; later calls return the findings); removes every hook."""
        return self.findings if self._finished else super().finish()

    def report(self) -> str:
        self.finish()
        return super().report()

    def save_html(self, path: Any) -> str:
        self.finish()
        return super().save_html(path)


class WatchedRun:
    """What a framework's training callback (Lightning's, Keras') gives once ``fit`` ran:
    the findings and reports of its ``doctor``; ``how_to_watch`` says how to get one."""

    doctor: Doctor | None = None
    how_to_watch = ""

    @property
    def findings(self) -> list[Any]:
        """The findings of the last fit, root causes first."""
        return self.doctor.findings if self.doctor is not None else []

    def report(self) -> str:
        return self._watched().report()

    def save_html(self, path: Any) -> str:
        return self._watched().save_html(path)

    def _watched(self) -> Doctor:
        if self.doctor is None:
            raise RuntimeError(f"{type(self).__name__}: no run watched yet; {self.how_to_watch}")
        return self.doctor


def _cpu(x: Any) -> Any:
    return x.detach().cpu() if isinstance(x, torch.Tensor) else x
