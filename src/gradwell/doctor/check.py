"""The pre-flight check: what is wrong with a setup before any training.

``gw.doctor.check(model, loss, optimizer, X, y)`` audits the targets, runs one forward
and backward of a batch on a copy of the model (the initial loss against what a fresh
model should start at, and the scale of each layer's input, output and gradient), and
judges the setup: the output layer against the loss, layers with no activation between
them, the dropout rates, the learning rate against its optimizer's usual range, the
input features and the targets. ``gw.fit`` runs it when training starts (the doctor's
first look, a few milliseconds).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..autograd.tensor import Tensor
from ..train.predict import resolve_loss
from .detectors import column_scales, detect_unscaled, unscaled_columns
from .detectors_setup import (
    BINARY_LOSSES,
    CROSS_ENTROPY_LOSSES,
    L1_LOSSES,
    MSE_LOSSES,
    REGRESSION_LOSSES,
)
from .diagnosis import detect_all, relate
from .findings import Finding
from .probes import evenly, probe_setup
from .profile import ModelProfile, profile_model
from .thresholds import Thresholds
from .trace import Trace

#: Rows the target audit reads at most (evenly spaced).
TARGET_ROWS = 5000
#: The feature audit looks at evenly spaced rows of the inputs: at most this many values
#: in all (rows x columns), and between 256 and 5000 rows. Enough to place the 1st and 99th
#: percentiles that judge a column's scale, at a few milliseconds.
AUDIT_VALUES = 200_000
AUDIT_ROWS = (256, 5000)


def _array(x: Any) -> np.ndarray:
    return x.data if isinstance(x, Tensor) else np.asarray(x)


def loss_name(loss_fn: Any) -> str | None:
    """The loss's class name (``CrossEntropyLoss``) or function name (``cross_entropy``)."""
    if loss_fn is None:
        return None
    name = getattr(loss_fn, "__name__", None)
    return str(name) if name else type(loss_fn).__name__


def audit_targets(y: Any, loss: str | None) -> dict[str, Any]:
    """Plain numbers about the targets: class labels or continuous values, their scale, and
    the loss of the best constant prediction for ``loss`` (chance level)."""
    arr = _array(y)
    if arr.ndim == 0 or arr.shape[0] == 0 or arr.dtype.kind not in "biuf":
        return {}
    arr = arr[evenly(arr.shape[0], TARGET_ROWS)].astype(np.float64)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]  # one column: as a vector of labels or values
    finite = arr[np.isfinite(arr)]
    if finite.size == 0:
        return {}
    flat = finite.reshape(-1)
    integer = bool(np.all(flat == np.round(flat)))
    distinct = np.unique(flat[: min(flat.size, 20000)])
    p01, p99 = np.percentile(flat, [1, 99])
    out: dict[str, Any] = {
        "shape": list(arr.shape),
        "distinct": int(distinct.size),
        "example": float(flat[0]),
        "min": float(flat.min()),
        "max": float(flat.max()),
        "p01": float(p01),
        "p99": float(p99),
        "mean": float(flat.mean()),
        "std": float(flat.std()),
        "median_abs": float(np.median(np.abs(flat))),
    }
    # labels: small non-negative integers (or one-hot rows), unless a regression loss reads them
    labels = integer and loss not in REGRESSION_LOSSES
    one_hot = arr.ndim == 2 and arr.shape[1] > 1 and labels and set(distinct.tolist()) <= {0, 1}
    if arr.ndim == 1 and labels and flat.min() >= 0 and distinct.size <= max(100, flat.size // 10):
        counts = np.bincount(flat.astype(np.int64))
        share = counts[counts > 0] / counts.sum()
        out.update(kind="classes", classes=int(flat.max()) + 1,
                   constant_loss=float(-(share * np.log(share)).sum()))  # fmt: skip
    elif one_hot:
        share = arr.mean(axis=0)
        share = share[share > 0] / max(share.sum(), 1e-12)
        entropy = float(-(share * np.log(share)).sum())
        out.update(kind="classes", classes=int(arr.shape[1]), constant_loss=entropy)
    else:
        out["kind"] = "continuous"
        if loss in MSE_LOSSES:
            out["constant_loss"] = float(np.mean(np.var(arr, axis=0)))
        elif loss in L1_LOSSES:
            out["constant_loss"] = float(np.mean(np.abs(arr - np.median(arr, axis=0))))
        if arr.ndim == 1 and integer and flat.min() >= 0 and distinct.size <= 100:
            out["labels"] = int(flat.max()) + 1  # (what would be classes, for a check)
    if loss in BINARY_LOSSES and out["kind"] != "continuous":
        q = min(max(float(flat.mean()), 1e-6), 1 - 1e-6)
        out["constant_loss"] = float(-(q * math.log(q) + (1 - q) * math.log(1 - q)))
    return out


def _expected_loss(loss: str | None, n_out: int | None, y: np.ndarray) -> float:
    """What a fresh model of this loss should start at: log(outputs) for cross-entropy
    (uniform predictions), log 2 per output for BCE, E[y^2] + 1 for MSE (outputs of about
    unit scale around 0)."""
    if loss in CROSS_ENTROPY_LOSSES and n_out:
        return math.log(n_out) if n_out > 1 else math.nan
    if loss in BINARY_LOSSES:
        return math.log(2.0)
    if loss in MSE_LOSSES and y.dtype.kind in "biuf" and y.size:
        return float(np.mean(np.square(y.astype(np.float64)))) + 1.0
    return math.nan


def preflight(
    model: Any,
    loss_fn: Any,
    optimizer: Any,
    X: Any,
    y: Any,
    th: Thresholds,
    batch_size: int | None = None,
    call_loss: bool = True,
    probe: Any = probe_setup,
    profile: Any = profile_model,
) -> tuple[dict[str, Any], ModelProfile]:
    """The setup record for ``trace.setup`` and the model's profile (with the call order
    and output module the probe saw). ``call_loss``: whether the probe may call
    ``loss_fn`` (the Doctor calls only gradwell's own losses: a user's may keep state).
    ``probe``: the framework's :func:`~.probes.probe_setup`; ``profile``: its
    :func:`~.profile.profile_model`."""
    name = loss_name(loss_fn)
    setup: dict[str, Any] = {"loss": name, "batch_size": batch_size}
    prof = profile(model, optimizer)
    if y is not None:
        setup["targets"] = audit_targets(y, name)
    if X is not None and _array(X).ndim >= 1 and _array(X).shape[0] > 0:
        p = probe(model, loss_fn if call_loss else None, X, y, th)
        prof = profile(model, optimizer, p["order"], p.get("output_module"))
        last = prof.layers[-1] if prof.layers else None
        ya = _array(y) if y is not None else np.zeros(0)
        p["expected_loss"] = _expected_loss(name, prof.out_features.get(last or ""), ya)
        setup["probe"] = p
    return setup, prof


def check(
    model: Any,
    loss: Any,
    optimizer: Any = None,
    X: Any = None,
    y: Any = None,
    *,
    batch_size: int | None = None,
    feature_names: list[str] | None = None,
    thresholds: Thresholds | None = None,
) -> list[Finding]:
    """Check a training setup without training: returns the findings, root causes first.

    Covers the output layer against the loss (``output_loss_mismatch``), Linear layers
    with no activation between them (``missing_nonlinearity``), dropout rates, a learning
    rate far outside its optimizer's usual range, the input features
    (``unscaled_features``) and the targets (``unscaled_targets``), and, from one forward
    and backward of a batch on a copy of the model, the initial loss and the scale of the
    signal by depth (``bad_initialization``). Nothing about ``model`` changes.

    >>> import numpy as np, gradwell as gw
    >>> nn = gw.nn
    >>> model = nn.Sequential(nn.Linear(4, 8, rng=0), nn.Linear(8, 3, rng=1), nn.Softmax())
    >>> X = np.random.default_rng(0).normal(size=(64, 4)); y = np.arange(64) % 3
    >>> [f.kind for f in gw.doctor.check(model, gw.nn.CrossEntropyLoss(), None, X, y)]
    ['output_loss_mismatch', 'missing_nonlinearity']
    """
    th = thresholds or Thresholds()
    loss_fn = resolve_loss(loss, "gw.doctor.check") if loss is not None else None
    check_rows(X, y, "gw.doctor.check", "a numpy array or gw.Tensor")
    return setup_findings(model, loss_fn, optimizer, X, y, th, batch_size, feature_names)


def check_rows(X: Any, y: Any, where: str, kinds: str) -> None:
    """Raise when ``X`` or ``y`` is not an array of numbers (``kinds``: what it may be), or
    when they differ in rows; ``where`` names the function checking them."""
    for name, arr in (("X", X), ("y", y)):
        a = None if arr is None else _array(arr)
        if a is not None and (a.ndim == 0 or a.dtype.kind not in "biuf"):
            raise TypeError(
                f"{where}: {name} must be an array of numbers with one row per example "
                f"({kinds}); got {type(arr).__name__} {getattr(a, 'dtype', '')} of shape "
                f"{getattr(a, 'shape', '?')}"
            )
    if X is not None and y is not None and len(_array(X)) != len(_array(y)):
        raise ValueError(f"{where}: X and y must have the same number of rows; got "
                         f"{len(_array(X))} and {len(_array(y))}")  # fmt: skip


def setup_findings(
    model: Any,
    loss_fn: Any,
    optimizer: Any,
    X: Any,
    y: Any,
    th: Thresholds,
    batch_size: int | None,
    feature_names: list[str] | None,
    *,
    probe: Any = probe_setup,
    profile: Any = profile_model,
    features: Any = None,
) -> list[Finding]:
    """What :func:`check` reports, once its arguments are checked: the pre-flight check
    (``probe`` and ``profile``: the framework's) and the audit of the input ``features``
    (``X`` unless given: another framework passes them as a numpy array), related."""
    setup, prof = preflight(model, loss_fn, optimizer, X, y, th, batch_size, probe=probe,
                            profile=profile)  # fmt: skip
    found = detect_all(Trace(setup=setup), prof, th, setup_only=True)
    if X is not None:
        f = audit_features(X if features is None else features, feature_names, th)
        if f is not None:
            found.append(f)
    return relate(found)


def audit_rows(X: Any) -> np.ndarray | None:
    """The rows of ``X`` (2-D, floating point) the feature audit reads; None when ``X`` is
    not a table of numbers."""
    arr = _array(X)
    if arr.ndim < 2 or arr.dtype.kind not in "fc" or arr.shape[0] < 2:
        return None
    arr = arr.reshape(arr.shape[0], -1)
    rows = min(max(AUDIT_VALUES // arr.shape[1], AUDIT_ROWS[0]), AUDIT_ROWS[1])
    return arr[evenly(arr.shape[0], rows)] if arr.shape[0] > rows else arr


def audit_features(X: Any, names: list[str] | None, th: Thresholds) -> Finding | None:
    """The ``unscaled_features`` finding of the inputs ``X`` (None when they are in scale)."""
    arr = audit_rows(X)
    if arr is None:
        return None
    names = list(names) if names is not None else [f"x{j}" for j in range(arr.shape[1])]
    scales = column_scales(arr, names)
    scale, outliers, _ = unscaled_columns(scales, th)
    flagged = [j for j, n in enumerate(names) if n in scale or n in outliers]
    if not flagged:
        return None
    from ..preprocessing import audit  # only when a column is off scale

    subset = audit(arr[:, flagged], feature_names=[names[j] for j in flagged])
    return detect_unscaled(subset, th, scales)
