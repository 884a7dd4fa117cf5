"""The pre-flight check for a PyTorch setup: ``gw.doctor.check``'s checks, torch's probe."""

from __future__ import annotations

from typing import Any

import torch

from ..doctor.check import audit_features, preflight
from ..doctor.diagnosis import detect_all, relate
from ..doctor.findings import Finding
from ..doctor.phrasing import speaking
from ..doctor.thresholds import Thresholds
from ..doctor.trace import Trace
from .probes import numpy_of, probe_setup


def check(
    model: torch.nn.Module,
    loss_fn: Any,
    optimizer: Any = None,
    X: Any = None,
    y: Any = None,
    *,
    batch_size: int | None = None,
    feature_names: list[str] | None = None,
    thresholds: Thresholds | None = None,
) -> list[Finding]:
    """Check a PyTorch training setup without training; returns the findings, root
    causes first, with remedies in PyTorch's words.

    The checks are :func:`gradwell.doctor.check`'s: the output layer against the loss
    (``nn.Softmax`` before ``nn.CrossEntropyLoss``), Linear layers with no activation
    between them, dropout rates, the learning rate against its optimizer's usual range,
    the feature and target audits, and, from one forward and backward of evenly spaced
    rows on a copy of ``model``, the initial loss against its expected value and the
    signal's scale by depth. Nothing about ``model`` or torch's random state changes.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"gradwell.torch.check: model must be a torch.nn.Module; got "
                        f"{type(model).__name__}")  # fmt: skip
    for name, arr in (("X", X), ("y", y)):
        if arr is not None and not isinstance(arr, torch.Tensor):
            raise TypeError(f"gradwell.torch.check: {name} must be a torch.Tensor with one row "
                            f"per example; got {type(arr).__name__}")  # fmt: skip
    if X is not None and y is not None and len(X) != len(y):
        raise ValueError(f"gradwell.torch.check: X and y must have the same number of rows; "
                         f"got {len(X)} and {len(y)}")  # fmt: skip
    th = thresholds or Thresholds()
    cpu = [a.detach().cpu() if a is not None else None for a in (X, y)]
    with speaking("torch"):
        setup, prof = preflight(model, loss_fn, optimizer, cpu[0], cpu[1], th, batch_size,
                                probe=probe_setup)  # fmt: skip
        found = detect_all(Trace(setup=setup), prof, th, setup_only=True)
        if X is not None:
            f = audit_features(numpy_of(X), feature_names, th)
            if f is not None:
                found.append(f)
        return relate(found)
