"""Loss modules: configuration plus a call to the functional form.

Every loss takes ``reduction``: "mean" (the default), "sum" or "none" (one loss
per element or per example). Call it as ``loss_fn(input, target)``.

Losses whose targets must lie in a range (``BCEWithLogitsLoss``: [0, 1];
``CrossEntropyLoss`` with class probabilities: non-negative rows summing to 1)
check them with ``check_target``: on every call, except inside ``fit``, which checks
the whole training and validation targets once before the first step.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..autograd.creation import tensor as _tensor
from ..autograd.tensor import Tensor
from . import functional as F
from .module import Module


class _Loss(Module):
    _targets_checked = False  # set by fit while the targets it feeds were checked whole

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = F.check_reduction(reduction, type(self).__name__)

    def check_target(self, target: Any, where: str = "") -> None:
        """Raise ValueError, naming the first bad element, if ``target`` holds values
        this loss cannot take (nothing to check for most losses)."""

    def trust_targets(self, checked: bool) -> None:
        """``fit`` says whether it checked every target it will pass (then each call
        skips the check). Not a setting: it bypasses ``__setattr__``, so a compiled
        step that captured this loss does not record again."""
        self.__dict__["_targets_checked"] = bool(checked)

    def _check_per_call(self, target: Any) -> None:
        if not self._targets_checked:
            self.check_target(target)

    def extra_repr(self) -> str:
        return "" if self.reduction == "mean" else f"reduction={self.reduction!r}"


def _values(target: Any) -> np.ndarray:
    return np.asarray(target.data if isinstance(target, Tensor) else target)


def _first_bad(bad: np.ndarray) -> str:
    index = [int(i) for i in np.unravel_index(int(np.flatnonzero(bad)[0]), bad.shape)]
    if len(index) == 1:
        return f"element {index[0]}"
    return f"row {index[0]}, column {index[1]}" if len(index) == 2 else f"index {tuple(index)}"


def _optional_buffer(value: Any) -> Tensor | None:
    """A Tensor keeps its dtype; other data follows gw.tensor (float becomes float32)."""
    if value is None or isinstance(value, Tensor):
        return None if value is None else value.detach()
    return _tensor(value)


class MSELoss(_Loss):
    """Mean squared error: reduce((input - target) ** 2).

    >>> import gradwell as gw
    >>> gw.nn.MSELoss()(gw.tensor([1.0, 3.0]), gw.tensor([0.0, 0.0])).item()
    5.0
    """

    def forward(self, input: Any, target: Any) -> Tensor:
        return F.mse_loss(input, target, self.reduction)


class L1Loss(_Loss):
    """Mean absolute error: reduce(|input - target|).

    >>> import gradwell as gw
    >>> gw.nn.L1Loss(reduction="sum")(gw.tensor([1.0, -3.0]), gw.zeros(2)).item()
    4.0
    """

    def forward(self, input: Any, target: Any) -> Tensor:
        return F.l1_loss(input, target, self.reduction)


class HuberLoss(_Loss):
    """Huber: 0.5 d**2 for |d| <= delta, delta * (|d| - delta / 2) beyond (d = input - target).

    >>> import gradwell as gw
    >>> gw.nn.HuberLoss(delta=1.0)(gw.tensor([3.0]), gw.tensor([0.0])).item()
    2.5
    """

    def __init__(self, reduction: str = "mean", delta: float = 1.0) -> None:
        super().__init__(reduction)
        if not delta > 0:
            raise ValueError(f"HuberLoss: delta must be positive; got {delta!r}")
        self.delta = float(delta)

    def forward(self, input: Any, target: Any) -> Tensor:
        return F.huber_loss(input, target, self.reduction, self.delta)

    def extra_repr(self) -> str:
        return ", ".join(s for s in (super().extra_repr(), f"delta={self.delta}") if s)


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy on logits (a sigmoid and the log-loss, fused and stable).

    ``pos_weight`` (e.g. one value per class, broadcast over the last axis) weighs the
    positive examples; ``weight`` rescales each element's loss. Both are buffers.

    >>> import gradwell as gw
    >>> loss = gw.nn.BCEWithLogitsLoss()(gw.tensor([0.0, 1e4]), gw.tensor([1.0, 1.0]))
    >>> round(loss.item(), 4)
    0.3466
    """

    def __init__(self, weight: Any = None, reduction: str = "mean", pos_weight: Any = None) -> None:
        super().__init__(reduction)
        self.register_buffer("weight", _optional_buffer(weight))
        self.register_buffer("pos_weight", _optional_buffer(pos_weight))

    def forward(self, input: Any, target: Any) -> Tensor:
        loss = F.binary_cross_entropy_with_logits(
            input, target, self.weight, self.reduction, self.pos_weight
        )
        self._check_per_call(target)  # after the shapes are checked
        return loss

    def check_target(self, target: Any, where: str = "") -> None:
        """Targets are probabilities: every value in [0, 1] (hard labels 0 and 1, or soft)."""
        y = _values(target)
        if y.size and y.dtype.kind in "fiub" and not (y.min() >= 0 and y.max() <= 1):
            bad = ~((y >= 0) & (y <= 1))
            raise ValueError(
                f"{where or 'BCEWithLogitsLoss'}: expected targets in [0, 1] (probabilities of "
                f"the positive class); got {float(y[bad].flat[0]):g} at {_first_bad(bad)}"
            )


class CrossEntropyLoss(_Loss):
    """Softmax cross-entropy of (N, C) logits against class indices (N,) or class
    probabilities (N, C); see :func:`gradwell.nn.functional.cross_entropy`.

    ``weight``: one weight per class (a buffer); ``ignore_index``: a class index whose
    rows are skipped; ``label_smoothing`` eps: the target becomes
    ``(1 - eps) * target + eps / C``.

    >>> import gradwell as gw
    >>> loss_fn = gw.nn.CrossEntropyLoss(label_smoothing=0.1)
    >>> round(loss_fn(gw.tensor([[2.0, 0.0]]), [0]).item(), 4)
    0.2269
    """

    def __init__(
        self,
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(reduction)
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(
                f"CrossEntropyLoss: label_smoothing must be in [0, 1]; got {label_smoothing!r}"
            )
        self.register_buffer("weight", _optional_buffer(weight))
        self.ignore_index = int(ignore_index)
        self.label_smoothing = float(label_smoothing)

    def forward(self, input: Any, target: Any) -> Tensor:
        loss = F.cross_entropy(
            input, target, self.weight, self.ignore_index, self.reduction, self.label_smoothing
        )
        self._check_per_call(target)  # after the shapes are checked
        return loss

    def check_target(self, target: Any, where: str = "") -> None:
        """Class probabilities (float targets) must be non-negative with rows summing to 1
        (class indices are checked against the number of classes on each call)."""
        t = _values(target)
        if t.dtype.kind != "f" or t.ndim != 2 or not t.size:
            return
        who = where or "CrossEntropyLoss"
        if not t.min() >= 0:
            bad = ~(t >= 0)
            raise ValueError(
                f"{who}: expected class probabilities >= 0; got {float(t[bad][0]):g} at "
                f"{_first_bad(bad)}"
            )
        sums = t.sum(axis=1)
        tolerance = 1e-2 if t.dtype.itemsize < 4 else 1e-4  # float16 rounds coarsely
        if not (sums.min() >= 1.0 - tolerance and sums.max() <= 1.0 + tolerance):
            row = int(np.flatnonzero(~(np.abs(sums - 1.0) <= tolerance))[0])
            raise ValueError(
                f"{who}: expected each row of class probabilities to sum to 1; row {row} sums "
                f"to {sums[row]:.6g} (class indices must be an integer array)"
            )

    def extra_repr(self) -> str:
        parts = [super().extra_repr()]
        if self.label_smoothing:
            parts.append(f"label_smoothing={self.label_smoothing}")
        return ", ".join(p for p in parts if p)


class NLLLoss(_Loss):
    """Negative log-likelihood of (N, C) log-probabilities at integer classes (N,).

    >>> import gradwell as gw
    >>> gw.nn.NLLLoss()(gw.tensor([[-0.5, -2.0]]), [0]).item()
    0.5
    """

    def __init__(
        self, weight: Any = None, ignore_index: int = -100, reduction: str = "mean"
    ) -> None:
        super().__init__(reduction)
        self.register_buffer("weight", _optional_buffer(weight))
        self.ignore_index = int(ignore_index)

    def forward(self, input: Any, target: Any) -> Tensor:
        return F.nll_loss(input, target, self.weight, self.ignore_index, self.reduction)


__all__ = ["BCEWithLogitsLoss", "CrossEntropyLoss", "HuberLoss", "L1Loss", "MSELoss", "NLLLoss"]


class SmoothL1Loss(_Loss):
    """0.5 d**2 / beta for |d| < beta, |d| - beta / 2 beyond (d = input - target)."""

    def __init__(self, reduction: str = "mean", beta: float = 1.0) -> None:
        super().__init__(reduction)
        self.beta = float(beta)

    def forward(self, input: Any, target: Any) -> Tensor:
        return F.smooth_l1_loss(input, target, self.reduction, self.beta)


class BCELoss(_Loss):
    """Binary cross-entropy on probabilities (logs clamped at -100, as PyTorch).
    BCEWithLogitsLoss on logits is the stable choice for training."""

    def __init__(self, weight: Any = None, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.weight = _optional_buffer(weight)

    def forward(self, input: Any, target: Any) -> Tensor:
        return F.binary_cross_entropy(input, target, self.weight, self.reduction)


class KLDivLoss(Module):
    """KL divergence of ``target`` from ``input`` log-probabilities (see F.kl_div)."""

    def __init__(self, reduction: str = "mean", log_target: bool = False) -> None:
        super().__init__()
        self.reduction, self.log_target = reduction, bool(log_target)

    def forward(self, input: Any, target: Any) -> Tensor:
        return F.kl_div(input, target, self.reduction, self.log_target)
