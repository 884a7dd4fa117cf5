"""Detectors of the setup: what is wrong before the first step.

Pure functions of the :class:`~gradwell.doctor.profile.ModelProfile` and of what the
pre-flight check (:func:`gradwell.doctor.check`) wrote into ``trace.setup``: the loss's
name, the target audit, and one forward/backward of a batch on a copy of the model
(the initial loss and the scale of each layer's input, output and gradient).
"""

from __future__ import annotations

import functools
import math
from typing import Any

from . import prescriptions as rx
from .findings import Finding
from .phrasing import say
from .profile import ModelProfile
from .thresholds import Thresholds
from .trace import Trace

#: Keras' cross-entropies, as gradwell.keras names them: the class and its from_logits.
_KERAS_MULTICLASS = ("SparseCategoricalCrossentropy", "CategoricalCrossentropy")


def _keras(classes: tuple[str, ...], from_logits: bool) -> tuple[str, ...]:
    return tuple(f"{c}(from_logits={from_logits})" for c in classes)


#: Losses by what they expect of the model's output.
CROSS_ENTROPY_LOSSES = ("CrossEntropyLoss", "cross_entropy", *_keras(_KERAS_MULTICLASS, True),
                        *_keras(_KERAS_MULTICLASS, False))  # fmt: skip
MULTICLASS_LOSSES = (*CROSS_ENTROPY_LOSSES, "NLLLoss", "nll_loss")
BINARY_LOSSES = ("BCEWithLogitsLoss", "binary_cross_entropy_with_logits", "BCELoss",
                 "binary_cross_entropy", *_keras(("BinaryCrossentropy",), True),
                 *_keras(("BinaryCrossentropy",), False))  # fmt: skip
LOGIT_LOSSES = ("CrossEntropyLoss", "cross_entropy", "BCEWithLogitsLoss",
                "binary_cross_entropy_with_logits",
                *_keras((*_KERAS_MULTICLASS, "BinaryCrossentropy"), True))  # fmt: skip
#: Losses that take probabilities (a Softmax or Sigmoid output), and the one that takes
#: logits in their place.
ON_LOGITS = {"BCELoss": "BCEWithLogitsLoss", **dict(zip(
    _keras((*_KERAS_MULTICLASS, "BinaryCrossentropy"), False),
    _keras((*_KERAS_MULTICLASS, "BinaryCrossentropy"), True)))}  # fmt: skip
MSE_LOSSES = ("MSELoss", "mse_loss", "MeanSquaredError")
L1_LOSSES = ("L1Loss", "l1_loss", "MeanAbsoluteError")
REGRESSION_LOSSES = (*MSE_LOSSES, *L1_LOSSES, "HuberLoss", "huber_loss", "Huber")
#: Usual learning rates per optimizer: far beyond these, training diverges or crawls.
USUAL_LR = {"SGD": (1e-5, 10.0), "SGD+momentum": (1e-5, 2.0), "Adam": (1e-6, 0.5),
            "AdamW": (1e-6, 0.5), "RMSprop": (1e-6, 0.5), "Adamax": (1e-6, 0.5),
            "NAdam": (1e-6, 0.5), "RAdam": (1e-6, 0.5)}  # fmt: skip
DEFAULT_LR = {"SGD": 0.1, "SGD+momentum": 0.01, "Adam": 1e-3, "AdamW": 1e-3, "RMSprop": 1e-3,
              "Adamax": 2e-3, "NAdam": 2e-3, "RAdam": 1e-3}  # fmt: skip


def _finding(
    kind: str, severity: str, where: str, evidence: dict[str, Any], explanation: str,
    remedies: list[rx.Remedy],
) -> Finding:  # fmt: skip
    texts, actions = rx.remedy_lists(remedies)
    return Finding(kind, severity, where, None, None, evidence, explanation, texts, actions)


def _sci(x: float) -> str:
    return f"{x:.3g}" if math.isfinite(x) else str(x)


def detect_missing_nonlinearity(trace: Trace, prof: ModelProfile, th: Thresholds) -> list[Finding]:
    """Two Linear layers of a Sequential with no activation between them."""
    pairs = prof.linear_pairs
    if not pairs:
        return []
    firsts = [a for a, _ in pairs]
    text = "; ".join(f"{a} -> {b}" for a, b in pairs[:6])
    explanation = (
        f"Linear layers follow each other with no activation between them ({text}): a product "
        f"of linear maps is one linear map, so the extra layer adds parameters but no power "
        f"to fit a non-linear function."
    )
    remedies = [
        rx.Remedy(
            f"insert a ReLU after {rx.every(firsts)} (and use He init for the layers before it)",
            {"action": "insert_activation", "after": firsts, "activation": "ReLU"},
        )
    ]
    evidence = {"pairs": [list(p) for p in pairs]}
    return [_finding("missing_nonlinearity", "warning", ", ".join(firsts), evidence,
                     explanation, remedies)]  # fmt: skip


def detect_output_loss_mismatch(trace: Trace, prof: ModelProfile, th: Thresholds) -> list[Finding]:
    """The model's last layer and the loss do not fit: a Softmax, Sigmoid or ReLU output
    before a loss that expects logits; outputs that differ from the number of classes; a
    binary loss on a multi-class target; a classification loss on a regression target."""
    loss = trace.setup.get("loss")
    targets = trace.setup.get("targets") or {}
    if not loss:
        return []
    problems: list[tuple[str, str, str, rx.Remedy]] = []  # severity, where, text, remedy
    out_mod = prof.output_module
    out_type = prof.types.get(out_mod or "", "")
    last_layer = prof.layers[-1] if prof.layers else None
    n_out = prof.out_features.get(last_layer or "") if last_layer else None
    if loss in LOGIT_LOSSES and out_mod and out_type in ("Softmax", "LogSoftmax", "Sigmoid"):
        problems.append((
            "critical", out_mod,
            f"The model ends with {out_type} at {out_mod}, but {loss} expects raw scores "
            f"(logits) and applies its own softmax/sigmoid: the output is squashed twice, the "
            f"gradients are tiny and the loss can never reach 0.",
            rx.remove_module([out_mod], f"({out_type}): {loss} takes the logits of {last_layer}"
                             f"{say('raw_output', layer=last_layer)}"),
        ))  # fmt: skip
    elif loss in ON_LOGITS and out_mod in prof.layers:
        binary = loss in BINARY_LOSSES
        squash = "Sigmoid" if binary else "Softmax"
        problems.append((
            "critical", out_mod,
            f"The model ends with {out_mod}, a layer with no activation, but {loss} expects "
            f"probabilities ({squash} outputs): it takes the log of raw scores, negative ones "
            f"among them, so the loss and its gradients mean nothing.",
            rx.replace_loss("bce_with_logits" if binary else "cross_entropy",
                            f"compute the loss from the logits of {out_mod}: "
                            f"{say('loss_object', name=ON_LOGITS[loss])}, which applies the "
                            f"{squash.lower()} itself, stably"),
        ))  # fmt: skip
    elif loss in LOGIT_LOSSES and out_mod and out_type in ("ReLU",):
        problems.append((
            "critical", out_mod,
            f"The model ends with ReLU at {out_mod}, so every logit is >= 0 and a negative "
            f"one (the usual way to say 'not this class') is impossible; the units that go "
            f"to 0 pass no gradient back.",
            rx.remove_module([out_mod], f"(ReLU): {loss} takes the logits of {last_layer}"),
        ))  # fmt: skip
    kind = targets.get("kind")
    classes = targets.get("classes")
    labels = targets.get("labels")  # (class labels read by a regression loss)
    if loss in REGRESSION_LOSSES and labels and n_out and n_out == labels > 1 and last_layer:
        problems.append((
            "critical", "loss",
            f"The targets are class labels (0..{labels - 1}) and {last_layer} has {n_out} "
            f"outputs, one per class, but {loss} is a regression loss: it pulls every output "
            f"towards the label's number, as if class 2 were twice class 1.",
            rx.replace_loss("cross_entropy", f"use a classification loss: "
                            f"{say('cross_entropy_loss')}, on the {n_out} logits of "
                            f"{last_layer}"),
        ))  # fmt: skip
    if loss in MULTICLASS_LOSSES and kind == "continuous":
        problems.append((
            "critical", "loss",
            f"The targets are continuous (e.g. {_sci(targets.get('example', math.nan))}, "
            f"{targets.get('distinct', '?')} distinct values), but {loss} is a classification "
            f"loss that reads them as class indices.",
            rx.replace_loss("mse", f"use a regression loss: {say('mse_loss')}, with "
                            f"{last_layer} giving 1 output"),
        ))  # fmt: skip
    elif loss in MULTICLASS_LOSSES and classes and n_out and n_out != classes and last_layer:
        severity = "critical" if n_out < classes else "warning"
        problems.append((
            severity, last_layer,
            f"The labels hold {classes} classes (0..{classes - 1}) but {last_layer} has "
            f"{n_out} outputs: {loss} needs one logit per class"
            + (" (labels beyond the outputs cannot be predicted)." if n_out < classes
               else " (the extra outputs are classes that never occur)."),
            rx.Remedy(
                f"give {last_layer} {classes} outputs (out_features={classes})",
                {"action": "set_out_features", "module": last_layer, "out_features": classes},
            ),
        ))  # fmt: skip
    if loss in BINARY_LOSSES and kind == "classes" and classes and classes > 2:
        problems.append((
            "critical", "loss",
            f"The labels hold {classes} classes but {loss} is a binary loss: it treats each "
            f"label as a probability of one class.",
            rx.replace_loss(
                "cross_entropy",
                f"use {say('cross_entropy_loss')} with {classes} outputs",
            ),
        ))  # fmt: skip
    if not problems:
        return []
    severity = "critical" if any(p[0] == "critical" for p in problems) else "warning"
    places = list(dict.fromkeys(p[1] for p in problems))
    evidence = {
        "loss": loss,
        "output_module": out_mod,
        "output_type": out_type or None,
        "outputs": n_out,
        "target_kind": kind,
        "classes": classes,
    }
    return [_finding("output_loss_mismatch", severity, ", ".join(places), evidence,
                     " ".join(p[2] for p in problems), [p[3] for p in problems])]  # fmt: skip


def detect_unscaled_targets(trace: Trace, prof: ModelProfile, th: Thresholds) -> list[Finding]:
    """Regression targets far from unit scale: the initial MSE is enormous and no single
    learning rate suits both the first steps and the rest."""
    t = trace.setup.get("targets") or {}
    if t.get("kind") != "continuous" or trace.setup.get("loss") not in REGRESSION_LOSSES:
        return []
    mag, std = float(t["median_abs"]), float(t["std"])
    big = mag > th.target_magnitude or std > th.target_magnitude
    tiny = 0 < max(mag, std) < 1.0 / th.target_magnitude
    if not (big or tiny):
        return []
    positive_wide = t["min"] > 0 and t["p99"] > 100 * max(t["p01"], 1e-12)
    method = "log" if positive_wide else "standardize"
    why = " (it is positive and spans over two decades)" if method == "log" else ""
    severity = "critical" if max(mag, std) > th.target_magnitude**2 else "warning"
    explanation = (
        f"The regression target is far from unit scale (median |y| {_sci(mag)}, std "
        f"{_sci(std)}): a fresh model predicts values near 0, so the initial loss is about "
        f"{_sci(t.get('constant_loss', math.nan))} or more and its gradients are just as "
        f"outsized; no learning rate suits both the first steps and the rest."
    )
    if tiny:
        explanation = (
            f"The regression target is tiny (median |y| {_sci(mag)}, std {_sci(std)}): the "
            f"loss and its gradients are too small for the usual learning rates to move."
        )
    remedies = [rx.scale_targets(method, why)]
    if method == "log":
        remedies.append(rx.scale_targets("standardize", ""))
    evidence = {k: t[k] for k in ("median_abs", "std", "min", "max", "p01", "p99", "mean")}
    evidence["initial_loss"] = (trace.setup.get("probe") or {}).get("loss")
    return [_finding("unscaled_targets", severity, "targets", evidence, explanation, remedies)]


#: The init for an activation (a regex on its name) for every layer at every diagnosis: a
#: pure function of the name, so each is worked out once.
_init_for = functools.lru_cache(maxsize=256)(rx.init_for)


def detect_bad_initialization(trace: Trace, prof: ModelProfile, th: Thresholds) -> list[Finding]:
    """The weight scale at step 0 makes the signal blow up or die layer by layer, saturates
    the sigmoid/tanh layers, or puts the initial loss far above a fresh model's."""
    probe = trace.setup.get("probe") or {}
    layers = [p for p in prof.layers if p in (probe.get("layers") or {})]
    if not layers:
        return []
    rec = probe["layers"]
    act_of = {p: prof.types.get(prof.activation_after(p) or "", "") for p in layers}
    hidden = layers[:-1]
    # the gain a layer should have for the activation after it: He keeps ReLU stacks at
    # sqrt(2) (the ReLU halves the second moment back), Glorot keeps tanh/sigmoid near 1
    need = {p: (math.sqrt(2.0) if _init_for(act_of[p] or None) == "he" else 1.0) for p in layers}
    gain = {p: float(rec[p]["gain"]) for p in layers}
    high = [p for p in layers if gain[p] > th.init_gain_high * need[p] / math.sqrt(2.0)]
    low = [p for p in hidden if gain[p] < 0.5 * need[p]]
    out_rms = [float(rec[p]["out_rms"]) for p in hidden]
    depth = out_rms[-1] / out_rms[0] if len(out_rms) >= 3 and out_rms[0] > 0 else 1.0
    loss, expected = probe.get("loss", math.nan), probe.get("expected_loss", math.nan)
    loss_ratio = loss / expected if expected and expected > 0 else math.nan
    saturated = {p: f for p, f in (probe.get("saturated") or {}).items()
                 if f >= th.saturated_output_info}  # fmt: skip
    reasons, where = [], []
    if high and (loss_ratio > th.init_loss_factor or depth > th.init_depth_ratio):
        where = high
        if loss_ratio > th.init_loss_factor:
            reasons.append(
                f"the initial loss is {_sci(loss)}, {_sci(loss_ratio)} times what a fresh "
                f"model should start at ({_sci(expected)})"
            )
        if depth > th.init_depth_ratio:
            reasons.append(f"the activations grow {_sci(depth)}-fold from {hidden[0]} to "
                           f"{hidden[-1]}")  # fmt: skip
    elif depth < 1.0 / th.init_depth_ratio and low:
        where = low
        reasons.append(f"the activations shrink {_sci(1 / depth)}-fold from {hidden[0]} to "
                       f"{hidden[-1]}, so the signal dies layer by layer")  # fmt: skip
    elif saturated and high:
        where = high  # every layer whose gain is too high, not only those before the worst
        reasons.append(f"{rx.paths(list(saturated))} saturate before the first update")
    if not reasons:
        return []
    acts = [act_of[p] for p in where if act_of[p]]
    init = rx.init_for(acts[0] if acts else None)
    gains_text = ", ".join(f"{p}: {gain[p]:.2g}" for p in where[:6])
    explanation = (
        f"The initial weights are off scale: {'; '.join(reasons)}. Each layer multiplies "
        f"the signal's scale by its gain (measured {gains_text}; {init_name(init)} gives "
        f"{need[where[0]]:.2g} for the activation after it)."
    )
    extreme = (
        loss_ratio > th.init_loss_factor**3
        or depth > th.init_depth_ratio**2
        or depth < th.init_depth_ratio**-2
    )
    evidence = {
        "initial_loss": loss,
        "expected_initial_loss": expected,
        "gain_by_layer": gain,
        "activation_rms_by_layer": {p: float(rec[p]["out_rms"]) for p in layers},
        "gradient_rms_by_layer": {p: rec[p].get("grad_rms") for p in layers},
        "depth_ratio": depth,
        "saturated_at_start": saturated,
    }
    remedies = [rx.reinitialise(where, init)]
    return [_finding("bad_initialization", "critical" if extreme else "warning",
                     ", ".join(where), evidence, explanation, remedies)]  # fmt: skip


def init_name(init: str) -> str:
    return {"he": "He init", "xavier": "Glorot init"}.get(init, init)


def _optimizer_family(prof: ModelProfile) -> str | None:
    name = prof.optimizer
    if name == "SGD" and prof.momentum > 0:
        return "SGD+momentum"
    return name if name in USUAL_LR else None


def detect_lr_range(trace: Trace, prof: ModelProfile, th: Thresholds) -> list[Finding]:
    """A learning rate far outside the usual range of its optimizer."""
    family = _optimizer_family(prof)
    if family is None or not prof.lrs:
        return []
    lo, hi = USUAL_LR[family]
    lr = max(prof.lrs)
    if lo <= lr <= hi:
        return []
    default = DEFAULT_LR[family]
    kind = "learning_rate_too_high" if lr > hi else "learning_rate_too_low"
    explanation = (
        f"The learning rate {rx.fmt_num(lr)} is far {'above' if lr > hi else 'below'} the "
        f"usual range of {family} ({rx.fmt_num(lo)} to {rx.fmt_num(hi)}): "
        + ("the first steps will overshoot and the loss diverge." if lr > hi
           else "the weights will barely move.")
    )  # fmt: skip
    remedies = [rx.change_lr(prof, default / lr, f" (a usual starting rate for {family})")]
    remedies.append(rx.find_lr())
    evidence = {"lr": prof.lrs, "optimizer": family, "usual_range": [lo, hi]}
    return [_finding(kind, "warning", "optimizer", evidence, explanation, remedies)]
