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

import copy
import math
from typing import Any

import numpy as np

from ..autograd import engine
from ..autograd.tensor import Tensor
from ..train.predict import resolve_loss
from .detectors import column_scales, detect_unscaled, unscaled_columns
from .diagnosis import detect_all, relate
from .findings import Finding
from .profile import ModelProfile, class_family, profile_model
from .thresholds import Thresholds
from .trace import Trace

#: Rows of the batch the check runs forward and backward (evenly spaced over the data):
#: enough for a stable initial loss and layer scales, at the cost of about one step.
PROBE_ROWS = 128
#: Rows the target audit reads at most (evenly spaced).
TARGET_ROWS = 5000


def _array(x: Any) -> np.ndarray:
    return x.data if isinstance(x, Tensor) else np.asarray(x)


def _evenly(n: int, k: int) -> np.ndarray:
    return np.linspace(0, n - 1, min(n, k)).astype(np.int64)


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
    arr = arr[_evenly(arr.shape[0], TARGET_ROWS)].astype(np.float64)
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
    one_hot = arr.ndim == 2 and arr.shape[1] > 1 and integer and set(distinct.tolist()) <= {0, 1}
    if arr.ndim == 1 and integer and flat.min() >= 0 and distinct.size <= max(100, flat.size // 10):
        counts = np.bincount(flat.astype(np.int64))
        share = counts[counts > 0] / counts.sum()
        out.update(kind="classes", classes=int(flat.max()) + 1,
                   constant_loss=float(-(share * np.log(share)).sum()))  # fmt: skip
    elif one_hot:
        share = arr.mean(axis=0)
        share = share[share > 0]
        out.update(kind="classes", classes=int(arr.shape[1]),
                   constant_loss=float(-(share * np.log(share)).sum() / max(share.sum(), 1e-12)))  # fmt: skip
    else:
        out["kind"] = "continuous"
        if loss in ("MSELoss", "mse_loss"):
            out["constant_loss"] = float(np.mean(np.var(arr, axis=0)))
        elif loss in ("L1Loss", "l1_loss"):
            out["constant_loss"] = float(np.mean(np.abs(arr - np.median(arr, axis=0))))
    if loss in ("BCEWithLogitsLoss", "binary_cross_entropy_with_logits") and out["kind"] != "continuous":
        q = min(max(float(flat.mean()), 1e-6), 1 - 1e-6)
        out["constant_loss"] = float(-(q * math.log(q) + (1 - q) * math.log(1 - q)))
    return out


def _expected_loss(loss: str | None, n_out: int | None, y: np.ndarray) -> float:
    """What a fresh model of this loss should start at: log(outputs) for cross-entropy
    (uniform predictions), log 2 per output for BCE, E[y^2] + 1 for MSE (outputs of about
    unit scale around 0)."""
    if loss in ("CrossEntropyLoss", "cross_entropy") and n_out:
        return math.log(n_out) if n_out > 1 else math.nan
    if loss in ("BCEWithLogitsLoss", "binary_cross_entropy_with_logits"):
        return math.log(2.0)
    if loss in ("MSELoss", "mse_loss") and y.dtype.kind == "f":
        return float(np.mean(np.square(y.astype(np.float64)))) + 1.0
    return math.nan


def _rms(a: np.ndarray) -> float:
    a = a.astype(np.float64, copy=False)
    return float(np.sqrt(np.mean(a * a))) if a.size else math.nan


def probe(model: Any, loss_fn: Any, X: Any, y: Any, th: Thresholds) -> dict[str, Any]:
    """One forward and backward of an evenly spaced batch on a copy of ``model`` (so no
    weight, buffer, gradient or random state of the model changes): the initial loss,
    its expected value, the call order, the module that made the output, and per layer
    the RMS of its input, output and output gradient (``gain`` = output / input RMS)."""
    xa = _array(X)
    rows = _evenly(xa.shape[0], PROBE_ROWS)
    xb = Tensor(np.ascontiguousarray(xa[rows]))
    yb = Tensor(np.ascontiguousarray(_array(y)[rows])) if y is not None else None
    # Hooks (the doctor's among them) are not copied: the copy must not feed them.
    memo: dict[int, Any] = {id(m._forward_hooks): {} for m in model.modules()}
    twin = copy.deepcopy(model, memo)
    twin.train()
    paths = {id(m): p for p, m in twin.named_modules()}
    leaves = [(p, m) for p, m in twin.named_modules() if p and not any(True for _ in m.children())]
    order: list[str] = []
    made: dict[int, str] = {}
    layers: dict[str, dict[str, Any]] = {}
    saturated: dict[str, float] = {}
    dead: dict[str, float] = {}
    grads: dict[str, list[Any]] = {}

    def hook(module: Any, inputs: Any, output: Any) -> None:
        path = paths[id(module)]
        if path not in order:
            order.append(path)
        if not isinstance(output, Tensor):
            return
        made[id(output)] = path
        w = getattr(module, "_parameters", {}).get("weight")
        if w is not None and w.data.ndim >= 2 and inputs and isinstance(inputs[0], Tensor):
            i_rms, o_rms = _rms(inputs[0].data), _rms(output.data)
            layers[path] = {"in_rms": i_rms, "out_rms": o_rms,
                            "gain": o_rms / i_rms if i_rms > 0 else math.nan}  # fmt: skip
            if output.requires_grad:
                box = grads.setdefault(path, [])
                output.register_hook(lambda g: box.append(_rms(g.data)))
        fam = class_family(module)
        if fam is not None and fam[1] == "sigmoid":
            a = output.data
            saturated[path] = float(np.mean((a < th.sigmoid_margin) | (a > 1 - th.sigmoid_margin)))
        elif fam is not None and fam[1] == "tanh":
            saturated[path] = float(np.mean(np.abs(output.data) > th.tanh_limit))
        elif fam is not None and fam[1] == "relu":
            a = output.data.reshape(output.data.shape[0], -1)
            dead[path] = float(np.mean(~(a > 0).any(axis=0)))

    handles = [m.register_forward_hook(hook) for _, m in leaves]
    out: dict[str, Any] = {}
    try:
        with engine.enable_grad():
            pred = twin(xb)
            out["output_module"] = made.get(id(pred)) if isinstance(pred, Tensor) else None
            if loss_fn is not None and yb is not None:
                loss = loss_fn(pred, yb)
                out["loss"] = float(loss.data)
                if getattr(loss, "requires_grad", False):
                    loss.backward()
    except Exception as e:  # a setup error surfaces in the first step; the check reports
        out["error"] = f"{type(e).__name__}: {e}"
    finally:
        for h in handles:
            h.remove()
    for p, g in grads.items():
        if g and p in layers:
            layers[p]["grad_rms"] = g[0]
    out.update(order=order, layers=layers, saturated=saturated, dead=dead, rows=int(rows.size))
    return out


def preflight(
    model: Any,
    loss_fn: Any,
    optimizer: Any,
    X: Any,
    y: Any,
    th: Thresholds,
    batch_size: int | None = None,
) -> tuple[dict[str, Any], ModelProfile]:
    """The setup record for ``trace.setup`` and the model's profile (with the call order
    and output module the probe saw)."""
    name = loss_name(loss_fn)
    setup: dict[str, Any] = {"loss": name, "batch_size": batch_size}
    prof = profile_model(model, optimizer)
    if y is not None:
        setup["targets"] = audit_targets(y, name)
    if X is not None and _array(X).ndim >= 1 and _array(X).shape[0] > 0:
        p = probe(model, loss_fn, X, y, th)
        prof = profile_model(model, optimizer, p["order"], p.get("output_module"))
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
    setup, prof = preflight(model, loss_fn, optimizer, X, y, th, batch_size)
    trace = Trace(setup=setup)
    found = detect_all(trace, prof, th, setup_only=True)
    if X is not None:
        f = audit_features(X, feature_names, th)
        if f is not None:
            found.append(f)
    return relate(found)


def audit_features(X: Any, names: list[str] | None, th: Thresholds) -> Finding | None:
    """The ``unscaled_features`` finding of the inputs ``X`` (None when they are in scale)."""
    arr = _array(X)
    if arr.ndim < 2 or arr.dtype.kind not in "fc" or arr.shape[0] < 2:
        return None
    arr = arr.reshape(arr.shape[0], -1)
    names = list(names) if names is not None else [f"x{j}" for j in range(arr.shape[1])]
    scales = column_scales(arr, names)
    scale, outliers, _ = unscaled_columns(scales, th)
    flagged = [j for j, n in enumerate(names) if n in scale or n in outliers]
    if not flagged:
        return None
    from ..preprocessing import audit  # only when a column is off scale

    subset = audit(arr[:, flagged], feature_names=[names[j] for j in flagged])
    return detect_unscaled(subset, th, scales)
