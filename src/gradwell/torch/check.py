"""The pre-flight check for a PyTorch setup: ``gw.doctor.check``'s checks, torch's probe."""

from __future__ import annotations

from typing import Any

import torch

from ..doctor.check import setup_findings
from ..doctor.findings import Finding
from ..doctor.phrasing import speaking
from ..doctor.thresholds import Thresholds
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
    cpu = [a.detach().cpu() if a is not None else None for a in (X, y)]
    with speaking("torch"):
        return setup_findings(model, loss_fn, optimizer, cpu[0], cpu[1],
                              thresholds or Thresholds(), batch_size, feature_names,
                              probe=probe_setup, features=numpy_of(cpu[0]))  # fmt: skip
