"""The training doctor for PyTorch models.

gradwell's doctor (the same diagnosis, findings, remedies and reports) with probes
written for torch: module forward hooks and tensor gradient hooks on sampled steps,
a NaN trap that replays the batch on a copy, and a pre-flight check::

    from gradwell.torch import Doctor
    doctor = Doctor(model, optimizer, loss=loss_fn)
    for x, y in loader:
        optimizer.zero_grad(); loss = loss_fn(model(x), y); loss.backward()
        doctor.step(loss, x, y)          # between backward() and optimizer.step()
        optimizer.step()
    print(doctor.report()); doctor.save_html("report.html")

In ``trainer.fit``: ``Trainer(callbacks=[LightningDoctor(loss=loss_fn)])`` (Lightning is
imported on first use of the name).

Importing it imports torch (``import gradwell`` never does).
"""

from __future__ import annotations

from typing import Any

try:
    import torch  # noqa: F401
except ImportError as e:  # pragma: no cover (the tests skip without torch)
    raise ImportError(
        "gradwell.torch needs PyTorch: pip install torch (the doctor works with torch>=2.0)"
    ) from e

from .check import check
from .doctor import Doctor
from .edits import apply_edits
from .repair import repair

__all__ = ["Doctor", "LightningDoctor", "apply_edits", "check", "repair"]


def __getattr__(name: str) -> Any:
    if name == "LightningDoctor":  # Lightning only for those who use it
        from .lightning import LightningDoctor

        return LightningDoctor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
