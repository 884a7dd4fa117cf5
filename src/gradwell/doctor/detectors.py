"""Detectors: pure functions from recorded statistics to findings.

Each takes a :class:`~gradwell.doctor.trace.Trace` (what was measured), a
:class:`~gradwell.doctor.profile.ModelProfile` (where things are) and the
:class:`~gradwell.doctor.thresholds.Thresholds`, and returns findings. Rules use
ratios over windows of sampled steps, so they do not depend on the model's size,
the loss's scale or one seed. :mod:`.diagnosis` holds them in a registry,
runs them and links causes to their consequences.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import prescriptions as rx
from .findings import Finding, severity_rank
from .phrasing import say
from .profile import ModelProfile
from .thresholds import Thresholds
from .trace import ActivationStats, Trace, finite_median, median, row_medians


def _finding(
    kind: str,
    severity: str,
    where: str,
    step: int | None,
    trace: Trace,
    evidence: dict[str, Any],
    explanation: str,
    remedies: list[rx.Remedy],
) -> Finding:
    texts, actions = rx.remedy_lists(remedies)
    return Finding(
        kind, severity, where, step, trace.epoch_of(step), evidence, explanation, texts, actions
    )


def _sci(x: float) -> str:
    return f"{x:.2g}" if math.isfinite(x) else str(x)


# --- gradients ---------------------------------------------------------------------------


def _downstream_ratios(S: np.ndarray) -> np.ndarray:
    """ratio[i, t] = S[i, t] / max(S[i+1:, t]): each layer against the strongest layer
    after it (NaN where undefined)."""
    L = S.shape[0]
    safe = np.where(np.isfinite(S), S, -np.inf)
    suffix = np.maximum.accumulate(safe[::-1], axis=0)[::-1]  # suffix[i] = max(S[i:])
    ref = suffix[1:]  # max over i+1..
    with np.errstate(divide="ignore", invalid="ignore"):
        r = S[: L - 1] / ref
    r[~np.isfinite(r)] = np.nan
    return r


def detect_vanishing(trace: Trace, prof: ModelProfile, th: Thresholds) -> Finding | None:
    """Hidden layers whose back-propagated gradient is persistently a tiny fraction of a
    later layer's. A gradient of exactly 0 is blocked, not vanishing (dead units or
    dropout 1.0 explain it), so it does not count."""
    hidden = [p for p in prof.hidden_layers if p in trace.signal]
    if len(hidden) < 2:
        return None
    idx = trace.window(th.min_samples)
    if len(idx) < th.min_samples:
        return None
    window = slice(idx[0], idx[-1] + 1)  # the window is a run of samples: a slice is cheaper
    S = np.array([np.asarray(trace.signal[p], np.float64)[window] for p in hidden])
    ratios = _downstream_ratios(S)
    starved: list[tuple[str, float]] = []
    for i, layer in enumerate(hidden[:-1]):
        r = ratios[i]
        valid = r[np.isfinite(r) & (r > 0)]
        if valid.size < th.min_samples:
            continue
        if np.count_nonzero(valid < th.vanishing_ratio) / valid.size >= th.persistence:
            starved.append((layer, median(valid)))
    if not starved:
        return None
    worst = min(r for _, r in starved)
    where = [p for p, _ in starved]
    strongest = hidden[int(np.nanargmax(np.nanmedian(S, axis=1)))]
    # When it began: the first sample at which the input-most starved layer fell below.
    full = np.array([trace.signal[p] for p in hidden], dtype=np.float64)
    first_ratio = _downstream_ratios(full)[hidden.index(where[0])]
    below = np.flatnonzero(first_ratio < th.vanishing_ratio)
    step = trace.samples[int(below[0])] if below.size else trace.samples[idx[0]]
    profile = {p: finite_median(S[k]) for k, p in enumerate(hidden)}
    evidence = {
        "layers": where,
        "ratio_to_strongest_later_layer": {p: r for p, r in starved},
        "median_gradient_rms_by_layer": profile,
        "strongest_layer": strongest,
        "samples": len(idx),
        "threshold": th.vanishing_ratio,
    }
    saturating = [
        p
        for p in prof.activations_of("sigmoid", "tanh")
        if any(prof.activation_after(layer) == p for layer in hidden)
    ]
    explanation = (
        f"The gradient at the output of layer {where[0]} is {_sci(starved[0][1])} times the "
        f"gradient at later hidden layers (median over {len(idx)} sampled steps), so the "
        f"layers near the input barely learn."
    )
    if saturating:
        explanation += (
            " Each sigmoid passes back at most a quarter of the gradient (tanh at "
            "most all of it, usually much less), so a stack of them starves the "
            "first layers."
        )
    remedies = _to_relu(prof, saturating)
    no_bn = [p for p in hidden if not prof.has_batchnorm_after(p)]
    if no_bn:
        remedies.append(rx.add_batchnorm(no_bn, prof))
    if not saturating:
        act = prof.activation_after(hidden[0])
        remedies.append(rx.reinitialise(hidden, rx.init_for(prof.types.get(act or "", None))))
    fewer = max(1, len(prof.hidden_layers) // 2)
    remedies.append(
        rx.Remedy(
            f"use fewer hidden layers: {fewer} instead of {len(prof.hidden_layers)}",
            {"action": "fewer_layers", "hidden_layers": fewer},
        )
    )
    severity = "critical" if worst < th.vanishing_critical_ratio else "warning"
    return _finding(
        "vanishing_gradients",
        severity,
        ", ".join(where),
        step,
        trace,
        evidence,
        explanation,
        remedies,
    )


def _to_relu(prof: ModelProfile, activations: list[str]) -> list[rx.Remedy]:
    """Replace the sigmoid/tanh modules ``activations`` with ReLU, one remedy per type, the
    Linear layers that feed them re-initialised with He."""
    by_type: dict[str, list[str]] = {}
    for p in activations:
        by_type.setdefault(prof.types.get(p, p), []).append(p)
    return [
        rx.replace_activation(ps, old, "ReLU", [q for q in map(prof.layer_before, ps) if q])
        for old, ps in by_type.items()
    ]


def _module_norms(trace: Trace, prof: ModelProfile) -> dict[str, np.ndarray]:
    groups: dict[str, list[np.ndarray]] = {}
    for name, series in trace.grad_norm.items():
        module = prof.param_module.get(name, name.rsplit(".", 1)[0] if "." in name else name)
        groups.setdefault(module, []).append(np.asarray(series, dtype=np.float64))
    with np.errstate(over="ignore", invalid="ignore"):
        return {m: np.sqrt(sum(a * a for a in arrs)) for m, arrs in groups.items()}


def _reference(values: np.ndarray) -> float:
    """The first finite, positive value: the level at initialisation. (A median of the
    first few would include the explosion itself when the learning rate is far too high.)"""
    ok = values[np.isfinite(values) & (values > 0)]
    return float(ok[0]) if ok.size else math.nan


def detect_exploding(trace: Trace, prof: ModelProfile, th: Thresholds) -> Finding | None:
    """The total gradient norm grew a hundredfold (or overflowed) from where it started."""
    tn = trace.total_grad_norm()
    if tn.size < 2:
        return None
    ref = _reference(tn)
    if not math.isfinite(ref):
        return None
    growth = tn / ref
    big = growth >= th.explode_growth  # (False where NaN)
    if not big.any():
        return None
    first = int(np.flatnonzero(big)[0])
    later = growth[first + 1 :]
    only_nan_after = later.size == 0 or bool(np.isnan(later).all())
    peak = float(np.nanmax(growth))
    persistent = int(big.sum()) >= 2 or only_nan_after or peak >= th.explode_critical_growth
    if not persistent:
        return None
    peak_i = int(np.nanargmax(growth))
    per_module = {}
    for m, norms in _module_norms(trace, prof).items():
        r = _reference(norms)
        if math.isfinite(r):
            with np.errstate(divide="ignore", invalid="ignore"):
                per_module[m] = float(norms[peak_i] / r)
    grown = [m for m in prof.order if per_module.get(m, 0) >= th.explode_growth]
    grown += [m for m in per_module if per_module[m] >= th.explode_growth and m not in grown]
    if not grown and per_module:
        grown = [max(per_module, key=lambda m: per_module[m])]
    where = ", ".join(grown) if grown else "model"
    step = trace.samples[first]
    loss = trace.loss
    evidence = {
        "layers": grown,
        "initial_grad_norm": ref,
        "peak_grad_norm": float(tn[peak_i]),
        "peak_step": trace.samples[peak_i],
        "growth": peak,
        "growth_by_layer": per_module,
        "loss_at_start": loss[0] if loss else None,
        "loss_at_peak": loss[trace.samples[peak_i]] if len(loss) > trace.samples[peak_i] else None,
        "threshold": th.explode_growth,
    }
    explanation = (
        f"The gradient norm grew from {_sci(ref)} to {_sci(float(tn[peak_i]))} "
        f"({_sci(peak)} times) by step {trace.samples[peak_i]}; the largest growth is at "
        f"{grown[0] if grown else 'the model'}. Each update then overshoots more, and the "
        f"run heads for inf and NaN."
    )
    start_ratio = starting_update_ratio(trace, prof)
    evidence["update_ratio_at_start"] = start_ratio
    remedies = [
        rx.lower_lr(prof, start_ratio, diverged_lr(trace, th)),
        rx.clip_grad_norm(rx.nice(ref)),
    ]
    no_bn = [p for p in prof.hidden_layers if not prof.has_batchnorm_after(p)]
    if no_bn:
        remedies.append(rx.add_batchnorm(no_bn, prof))
    severity = "critical" if peak >= th.explode_critical_growth else "warning"
    return _finding(
        "exploding_gradients", severity, where, step, trace, evidence, explanation, remedies
    )


# --- the NaN trap ---------------------------------------------------------------------------


def _range_text(r: Any) -> str:
    if not r:
        return "?"
    return f"[{_sci(float(r[0]))}, {_sci(float(r[1]))}]"


def detect_nan(trace: Trace, prof: ModelProfile, th: Thresholds) -> Finding | None:
    """Report the first non-finite value the monitor saw, and the op that produced it."""
    ev = trace.nonfinite
    if not ev:
        return None
    step = ev.get("step")
    source = ev.get("source", "loss")
    names = list(ev.get("names") or [])
    anomaly = ev.get("anomaly")
    what = {
        "loss": "the loss",
        "gradient": "the gradient of " + rx.paths(names, 3),
        "parameter": "the parameter " + rx.paths(names, 3),
        "batchnorm": "the running statistics of " + rx.paths(names, 3),
        "activation": "the output of " + rx.paths(names, 3),
        "inputs": "the training inputs (columns " + rx.paths(names, 3) + ")",
    }.get(source, source)
    value = ev.get("value")
    became = f"became {value}" if value is not None else "became non-finite"
    text = f"At step {step}, {what} {became}"
    remedies: list[rx.Remedy] = []
    if anomaly:
        op = anomaly.get("op", "?")
        module = anomaly.get("module")
        ranges = ", ".join(_range_text(r) for r in anomaly.get("input_ranges", []))
        loss_name = trace.setup.get("loss") or "the loss function"
        # outside every module: the op belongs to the loss (or code around the model); one
        # placed nowhere (no module, no line) at the first parameter its gradient broke
        unplaced = anomaly.get("code", "?") == "?"
        where = module or (names[0] if names and unplaced else loss_name)
        in_what = f"module {module}" if module else f"the loss ({loss_name})"
        code = anomaly.get("code", "?")
        text += (
            f"; the first op to make inf or NaN from finite values was '{op}' "
            f"({anomaly.get('phase', 'forward')}) in {in_what}, from inputs in "
            f"{ranges}. Code: {code}."
        )
        remedies += _domain_remedies(op, anomaly, module, in_what, where, prof)
    else:
        where = names[0] if names else ("loss" if source == "loss" else source)
        text += ". " + (ev.get("note") or "The op that produced it could not be located.")
    if source == "inputs":
        text = (
            f"At step {step}, the loss became {value}: the batch's inputs hold inf or NaN in "
            f"column {rx.paths(names, 3)}. They came with the data; no op made them."
        )
        remedies.append(
            rx.Remedy(
                f"remove or impute the inf/NaN values of column {rx.every(names)} before "
                f"training ({say('bad_rows')})",
                {"action": "clean_inputs", "columns": names},
            )
        )
        evidence = {k: v for k, v in ev.items() if k != "anomaly"}
        return _finding("nan_trap", "critical", ", ".join(names) or "inputs", step, trace,
                        evidence, text, remedies)  # fmt: skip
    remedies.append(rx.lower_lr(prof, starting_update_ratio(trace, prof), diverged_lr(trace, th)))
    ref = _reference(trace.total_grad_norm())
    remedies.append(rx.clip_grad_norm(rx.nice(ref) if math.isfinite(ref) else 1.0))
    remedies.append(
        rx.Remedy(
            f"stop at the first NaN: {say('terminate_on_nan')}",
            {"action": "terminate_on_nan"},
        )
    )
    evidence = {k: v for k, v in ev.items() if k not in ("anomaly",)}
    if anomaly:
        evidence["anomaly"] = dict(anomaly)
    return _finding("nan_trap", "critical", where, step, trace, evidence, text, remedies)


def _domain_remedies(
    op: str,
    anomaly: dict[str, Any],
    module: str | None,
    in_what: str,
    where: str,
    prof: ModelProfile,
) -> list[rx.Remedy]:
    """The fix that follows from the producing op's domain: log, sqrt and pow need a
    positive input, a division a non-zero denominator. When the op is in the loss, the
    value it received is the model's output: the output module must keep it positive."""
    ranges = [r for r in anomaly.get("input_ranges", []) if r]
    lo = min((float(r[0]) for r in ranges), default=math.nan)
    feeding = module or prof.output_module or (prof.order[-1] if prof.order else "model")
    out: list[rx.Remedy] = []
    bound = -1.0 if op == "log1p" else 0.0
    if op in ("log", "log1p", "sqrt", "pow") and not lo > bound:
        got = f"received {_sci(lo)}" if math.isfinite(lo) else "received a value outside its domain"
        r = rx.positive_output(feeding, op, inside=module is not None)
        head = f"the {op} at {where} {got} (it needs inputs above {_sci(bound)}): "
        out.append(rx.Remedy(head + r.text, r.action))
        if op in ("log", "log1p") and module is None:
            out.append(
                rx.Remedy(
                    f"or compute the loss from logits with a fused loss ({say('fused_loss')}), "
                    "which never takes the log of a probability",
                    {"action": "replace_loss", "loss": "cross_entropy"},
                )
            )
    elif op == "div":
        out.append(rx.guard_division(in_what, anomaly.get("code", "?")))
    elif op == "exp":
        # exp overflows the float range (above ~88 in float32) from moderate inputs: no
        # learning rate or clipping helps when the forward pass of the initial model does it.
        hi = max((float(r[1]) for r in ranges), default=math.nan)
        exps = [p for p in prof.order if prof.types.get(p) == "Exp"]
        got = f"received up to {_sci(hi)}" if math.isfinite(hi) else "overflowed"
        if module in exps:
            layers = [q for q in map(prof.layer_before, exps) if q]
            r = rx.replace_activation(exps, "Exp", "ReLU", layers)
            text = f"the exp at {where} {got} and overflowed (it is unbounded): {r.text}"
            out.append(rx.Remedy(text, r.action))
        else:
            out.append(
                rx.Remedy(
                    f"the exp in {in_what} {got} and overflowed: bound its input "
                    f"(exp(gw.clip(x, max=20))) or compute it in log space (logsumexp, softplus)",
                    {"action": "fix_exp", "where": in_what, "code": anomaly.get("code", "?")},
                )
            )
    return out


# --- activations ----------------------------------------------------------------------------


def _latest_window(stats: ActivationStats, th: Thresholds) -> dict[str, Any] | None:
    full = [w for w in stats.windows if w["examples"] >= th.min_window_examples]
    return full[-1] if full else None


def _units(window: dict[str, Any]) -> str:
    """What a unit of an activation is: a channel after a convolution."""
    return "channels" if window.get("per_channel") else "units"


def _severity(frac: float, info: float, warning: float, critical: float) -> str | None:
    if frac >= critical:
        return "critical"
    if frac >= warning:
        return "warning"
    if frac >= info:
        return "info"
    return None


def detect_dead_relu(trace: Trace, prof: ModelProfile, th: Thresholds) -> list[Finding]:
    """ReLU layers with many units that output 0 for every example of the latest window:
    one finding for all of them, whose remedies name every affected layer."""
    layers: list[dict[str, Any]] = []
    for path, stats in trace.activations.items():
        if stats.kind != "relu":
            continue
        w = _latest_window(stats, th)
        if w is None:
            continue
        frac = w["dead_fraction"]
        from_start = w["never_alive"] >= max(1, w["dead_units"]) / 2
        # Units silent from initialisation (narrow layers on low-dimensional inputs) waste
        # capacity; units killed during training are the pathology, so they warn sooner.
        warn_at = th.dead_from_start_warning if from_start else th.dead_warning
        severity = _severity(frac, th.dead_info, warn_at, th.dead_critical)
        if severity is None:
            continue
        blocked_by = _zero_dropout_before(prof, path)
        if blocked_by is not None:
            severity = "info"
        layers.append(
            {"path": path, "w": w, "from_start": from_start, "severity": severity,
             "blocked_by": blocked_by, "prev": prof.layer_before(path)}
        )  # fmt: skip
    if not layers:
        return []
    # one finding names every layer that fired, so that following its remedy fixes them all
    severity = max((x["severity"] for x in layers), key=severity_rank)
    worst = max(layers, key=lambda x: x["w"]["dead_fraction"])
    w = worst["w"]
    paths_ = [x["path"] for x in layers]
    killed = [x for x in layers if not x["from_start"] and x["blocked_by"] is None]
    died = [x["w"]["died_at_step"] for x in killed if x["w"]["died_at_step"] is not None]
    when = f"since about step {min(died)}" if died else "from the first sampled step"
    many = len(layers) > 1
    explanation = (
        f"{w['dead_fraction']:.0%} of the {w['units']} ReLU {_units(w)} at {worst['path']} "
        f"output 0{' at every position' if w.get('per_channel') else ''} for every one of "
        f"the {w['examples']} examples seen in the latest window, {when}"
        + (f"; {len(layers) - 1} more ReLU layer{'s' if len(layers) > 2 else ''} "
           f"({rx.paths([p for p in paths_ if p != worst['path']])}) likewise" if many else "")
        + ". A dead ReLU passes no gradient, so it never recovers."
    )  # fmt: skip
    remedies: list[rx.Remedy] = []
    blocked = [x for x in layers if x["blocked_by"] is not None]
    if blocked:
        explanation += (
            f" Its input is all zeros because Dropout at {blocked[0]['blocked_by']} drops "
            f"everything (see dropout_misconfigured)."
        )
    elif not killed:
        explanation += " They were dead from the start: initialisation or input scale."
        prevs = [x["prev"] for x in layers if x["prev"]]
        if prevs:
            remedies.append(
                rx.reinitialise(prevs, "he", " (biases at 0) and check the scale of their inputs")
            )
    if killed:  # killed by big updates; units dead since initialisation were not
        remedies.append(
            rx.lower_lr(prof, starting_update_ratio(trace, prof), diverged_lr(trace, th))
        )
    remedies.append(rx.replace_activation(paths_, "ReLU", "LeakyReLU(0.01)"))
    no_bn = [x["prev"] for x in layers if x["prev"] and not prof.has_batchnorm_after(x["prev"])]
    if no_bn:
        remedies.append(rx.add_batchnorm(no_bn, prof))
    evidence = {
        "dead_fraction": w["dead_fraction"],
        "dead_units": w["dead_units"],
        "units": w["units"],
        "examples": w["examples"],
        "window_steps": [w["start_step"], w["end_step"]],
        "died_at_step": w["died_at_step"],
        "dead_from_start": w["never_alive"],
        "per_channel": bool(w.get("per_channel")),
        "first_layer": any(x["prev"] == (prof.layers[0] if prof.layers else None) for x in layers),
        "by_layer": {
            x["path"]: {
                "dead_fraction": x["w"]["dead_fraction"],
                "dead_units": x["w"]["dead_units"],
                "units": x["w"]["units"],
                "died_at_step": x["w"]["died_at_step"],
                "dead_from_start": x["w"]["never_alive"],
                "severity": x["severity"],
                "dead_unit_indices": x["w"]["dead_unit_indices"][:50],
            }
            for x in layers
        },
    }
    step = min(died) if died else min(x["w"]["start_step"] for x in layers)
    return [
        _finding(
            "dead_relu", severity, ", ".join(paths_), step, trace, evidence, explanation, remedies
        )  # fmt: skip
    ]


def _zero_dropout_before(prof: ModelProfile, path: str) -> str | None:
    """A Dropout with rate 1.0 called before module ``path`` (it zeroes the input)."""
    i = prof.order.index(path) if path in prof.order else -1
    for p in prof.order[: max(i, 0)]:
        if prof.dropouts.get(p, 0.0) >= 1.0:
            return p
    return None


def detect_saturation(trace: Trace, prof: ModelProfile, th: Thresholds) -> list[Finding]:
    """Sigmoid/tanh layers whose units sit on an asymptote for nearly every example: one
    finding for all of them, whose remedies name every affected layer."""
    layers: list[dict[str, Any]] = []
    for path, stats in trace.activations.items():
        if stats.kind not in ("sigmoid", "tanh") or stats.is_output:
            continue
        w = _latest_window(stats, th)
        if w is None:
            continue
        levels = [
            _severity(w["pinned_fraction"], th.saturated_info, th.saturated_warning,
                      th.saturated_critical),
            _severity(w["saturated_fraction"], th.saturated_output_info,
                      th.saturated_output_warning, 2.0),
        ]  # fmt: skip
        ranks = [r for r in levels if r is not None]
        if ranks:
            severity = max(ranks, key=severity_rank)
            layers.append({"path": path, "w": w, "severity": severity, "kind": stats.kind})
    if not layers:
        return []
    severity = max((x["severity"] for x in layers), key=severity_rank)
    worst = max(layers, key=lambda x: x["w"]["saturated_fraction"])
    w, path = worst["w"], worst["path"]
    owner = trace.activations[path].inside  # the gates of a recurrent layer: no module
    name = (
        f"{prof.types.get(owner, '')} gate".strip()
        if owner
        else prof.types.get(path, worst["kind"])
    )
    bound = (
        f"within {th.sigmoid_margin} of 0 or 1"
        if worst["kind"] == "sigmoid"
        else f"beyond +-{th.tanh_limit}"
    )
    paths_ = [x["path"] for x in layers]
    others = [p for p in paths_ if p != path]
    explanation = (
        f"{w['saturated_fraction']:.0%} of the outputs of the {w['units']} {name} {_units(w)} at "
        f"{path} are {bound} over the {w['examples']} examples of the latest window, and "
        f"{w['pinned_fraction']:.0%} of the units are pinned there (for at least "
        f"{th.pinned_unit:.0%} of the examples)"
        + (f"; {rx.paths(others)} likewise" if others else "")
        + ". There the derivative is nearly 0, so these units barely learn or pass gradient back."
    )
    modules = [p for p in paths_ if trace.activations[p].inside is None]
    owners = list(dict.fromkeys(o for p in paths_ if (o := trace.activations[p].inside)))
    prevs = [q for q in (prof.layer_before(p) for p in modules) if q]
    remedies = _to_relu(prof, modules)
    no_bn = [q for q in prevs if not prof.has_batchnorm_after(q)]
    if no_bn:
        remedies.append(rx.add_batchnorm(no_bn, prof))
    if owners:  # gates cannot be swapped for ReLU: bring their weights back to scale
        remedies.append(rx.reinitialise(owners, "default", " and check the scale of its inputs"))
    remedies.append(rx.lower_lr(prof, starting_update_ratio(trace, prof), diverged_lr(trace, th)))
    evidence = {
        "pinned_fraction": w["pinned_fraction"],
        "pinned_units": w["pinned_units"],
        "units": w["units"],
        "saturated_output_fraction": w["saturated_fraction"],
        "examples": w["examples"],
        "window_steps": [w["start_step"], w["end_step"]],
        "first_layer": (prof.layers[0] if prof.layers else None) in prevs,
        "by_layer": {
            x["path"]: {
                "pinned_fraction": x["w"]["pinned_fraction"],
                "saturated_output_fraction": x["w"]["saturated_fraction"],
                "units": x["w"]["units"],
                "severity": x["severity"],
            }
            for x in layers
        },
    }
    # it began at the first window that saw it: the onset the live line printed
    step = min(_first_saturated_step(trace.activations[x["path"]], th) for x in layers)
    return [
        _finding(
            "saturated_activations",
            severity,
            ", ".join(paths_),
            step,
            trace,
            evidence,
            explanation,
            remedies,
        )  # fmt: skip
    ]


def _first_saturated_step(stats: ActivationStats, th: Thresholds) -> int:
    """The start of the first full window in which the layer was saturated."""
    for w in stats.windows:
        if w["examples"] >= th.min_window_examples and (
            w["pinned_fraction"] >= th.saturated_info
            or w["saturated_fraction"] >= th.saturated_output_info
        ):
            return int(w["start_step"])
    return int(stats.windows[-1]["start_step"])


# --- learning rate ----------------------------------------------------------------------


def _blocks(loss: np.ndarray) -> tuple[np.ndarray, int]:
    n = loss.size
    size = max(3, min(50, n // 10))
    k = n // size
    if k == 0:
        return np.array([]), size
    return row_medians(loss[: k * size].reshape(k, size)), size


def _median_update_ratio(trace: Trace, prof: ModelProfile, idx: list[int]) -> float:
    """The median update ratio of the weights over samples ``idx`` (consecutive ones: a
    window, or one sample)."""
    weights = [
        n
        for n in trace.update_ratio
        if prof.param_module.get(n) in prof.layers or n.endswith("weight")
    ]
    if not weights:
        return math.nan
    run = slice(idx[0], idx[-1] + 1) if idx else slice(0, 0)  # a slice: no index array
    vals = [np.asarray(trace.update_ratio[n], dtype=np.float64)[run] for n in weights]
    return finite_median(np.concatenate(vals))


def detect_learning_rate(trace: Trace, prof: ModelProfile, th: Thresholds) -> list[Finding]:
    """Loss diverging or giving back its progress (too high); loss barely moving while
    the weights barely change (too low)."""
    raw = trace.loss_array()
    if raw.size < 6:
        return []
    bad = trace.first_nonfinite_loss()
    went_nonfinite = bad >= 0
    loss = raw[:bad] if went_nonfinite else raw
    m, size = _blocks(loss)
    out: list[Finding] = []
    lr_text = rx.fmt_num(prof.lrs[0]) if prof.lrs else "?"
    if m.size >= 1 and math.isfinite(raw[0]):
        # The starting level: the first loss, unless the first block sits higher (a noisy
        # first batch of an already trained model must not make every later batch look bad).
        first = float(raw[0])
        L0 = max(first, median(loss[: min(size, loss.size)]))
        best = float(m.min())
        last = float(m[-1])
        prev = float(m[-2]) if m.size >= 2 else last
        # (``loss`` is finite: its max is the finite peak)
        peak_finite = float(loss.max()) if loss.size and went_nonfinite else math.nan
        diverged = m.size >= 2 and last >= th.diverge_factor * L0 and prev >= th.diverge_factor * L0
        grew_then_nan = went_nonfinite and peak_finite >= th.diverge_factor * L0
        gave_back = (
            m.size >= 3
            and L0 > best
            and all(
                v >= th.giveback_factor * best and v - best >= th.giveback_share * (L0 - best)
                for v in (last, prev)
            )
        )
        spike_level = th.loss_spike_factor * max(first, trace.finite_loss_median())
        # counted (as the other detectors count): where the first was, only for a finding
        spikes = int(np.count_nonzero(loss >= spike_level))
        spiked = spikes >= 2
        too_high = diverged or grew_then_nan or gave_back or spiked
        no_lower = m.size >= 3 and last >= 0.9 * L0
        # (the update ratio, dearer than the loss's tests, only where it is used)
        ratio = (
            _median_update_ratio(trace, prof, trace.window(th.min_samples))
            if too_high or no_lower
            else math.nan
        )
        stalled_huge = no_lower and math.isfinite(ratio) and ratio >= th.update_ratio_high
        if too_high or stalled_huge:
            peak_finite = float(loss.max()) if loss.size else math.nan
            if went_nonfinite or last >= th.diverge_critical_factor * L0:
                severity = "critical"
            else:
                severity = "warning"
            if grew_then_nan:
                k = int(np.argmax(loss >= th.diverge_factor * L0))
                step = k
                how = (
                    f"the loss grew from {_sci(L0)} to {_sci(peak_finite)} and then became "
                    f"{_sci(float(raw[bad]))} at step {bad}"
                )
            elif diverged:
                k = int(np.flatnonzero(m >= th.diverge_factor * L0)[0])
                step = k * size
                how = f"the loss rose from {_sci(L0)} at the start to {_sci(last)} recently"
            elif spiked:
                step = int(np.argmax(loss >= spike_level))
                top = int(np.argmax(loss))
                how = (
                    f"the loss spiked {spikes} times to over {_sci(spike_level)}, up to "
                    f"{_sci(float(loss[top]))} at step {top} "
                    f"({_sci(float(loss[top]) / first)} times its first value {_sci(first)})"
                )
            elif gave_back:
                k = int(np.argmin(m))
                step = (k + 1) * size
                how = (
                    f"the loss fell from {_sci(L0)} to {_sci(best)}, then climbed back to "
                    f"{_sci(last)}"
                )
            else:
                step = 0
                how = (
                    f"the loss is no lower than at the start ({_sci(L0)} -> {_sci(last)}) "
                    f"while each update changes the weights by {ratio:.0%}"
                )
            explanation = (
                f"With learning rate {lr_text}, {how}: each step overshoots the minimum it "
                f"is heading for."
            )
            evidence = {
                "lr": prof.lrs,
                "loss_start": L0,
                "loss_best": best,
                "loss_recent": last,
                "loss_peak": peak_finite,
                "went_nonfinite": went_nonfinite,
                "loss_spikes": spikes,
                "median_update_ratio": ratio,
                "block_size": size,
            }
            out.append(
                _finding(
                    "learning_rate_too_high",
                    severity,
                    "optimizer",
                    step,
                    trace,
                    evidence,
                    explanation,
                    [
                        rx.lower_lr(
                            prof, starting_update_ratio(trace, prof), diverged_lr(trace, th)
                        ),
                        *_batch_remedy(trace),
                        rx.find_lr(),
                    ],
                )  # fmt: skip
            )
            return out
        # Progress from the medians of the first and last thirds of the run: single batches,
        # and even short blocks of them, are too noisy to judge "barely moving".
        third = max(loss.size // 3, 1)
        start = median(loss[:third])
        end = median(loss[-third:])
        progress = (start - end) / abs(start) if start != 0 else math.inf
        # the cheap tests first: most runs progress, and need no update ratio
        if (
            not went_nonfinite
            and loss.size >= th.min_steps_for_stall
            and m.size >= 3
            and progress < th.stalled_progress
            and math.isfinite(
                all_ratio := _median_update_ratio(trace, prof, trace.window(th.min_samples, 200))
            )
            and all_ratio < th.update_ratio_low
            and not math.isfinite(diverged_lr(trace, th))  # never raise a rate that diverged
        ):
            moved = (
                f"fell only {progress:.1%}"
                if progress >= 0
                else f"rose {-progress:.1%} instead of falling"
            )
            explanation = (
                f"With learning rate {lr_text}, the loss {moved} in "
                f"{loss.size} steps ({_sci(start)} -> {_sci(end)}, medians of the first and "
                f"last thirds) and each update changes the "
                f"weights by {_sci(all_ratio)} of their size (about 1e-3 is typical of a "
                f"well-tuned run)."
            )
            evidence = {
                "lr": prof.lrs,
                "loss_first_third": start,
                "loss_last_third": end,
                "relative_progress": progress,
                "median_update_ratio": all_ratio,
                "steps": int(loss.size),
            }
            out.append(
                _finding(
                    "learning_rate_too_low",
                    "warning",
                    "optimizer",
                    0,
                    trace,
                    evidence,
                    explanation,
                    [rx.raise_lr(prof, all_ratio), rx.find_lr()],
                )
            )
    return out


def _batch_remedy(trace: Trace) -> list[rx.Remedy]:
    """A larger batch, when the run's batches are tiny (their gradients are noise)."""
    batch = trace.setup.get("batch_size")
    return [rx.set_batch_size(batch, 32)] if batch is not None and batch <= 8 else []


def starting_update_ratio(trace: Trace, prof: ModelProfile) -> float:
    """The median update-to-weight ratio of the first sampled steps (before any blow-up
    moved the weights far): what sizes a lower learning rate."""
    n = min(len(trace.samples), 3)
    for i in range(n):
        r = _median_update_ratio(trace, prof, [i])
        if math.isfinite(r) and r > 0:
            return r
    return math.nan


def diverged_lr(trace: Trace, th: Thresholds) -> float:
    """The learning rate at the first step where the loss rose to ``diverge_critical_factor``
    times its starting level or became non-finite after growing (NaN when it never did)."""
    loss = trace.loss_array()
    if loss.size < 2 or not math.isfinite(loss[0]):
        return math.nan
    head = loss[: min(5, loss.size)]
    start = median(head[np.isfinite(head)])
    if not start > 0:
        return math.nan
    with np.errstate(invalid="ignore"):
        blown = ~(loss < th.diverge_critical_factor * start)
    if not blown.any():
        return math.nan
    k = int(np.argmax(blown))
    if not math.isfinite(loss[k]) and not (loss[:k] >= th.diverge_factor * start).any():
        return math.nan  # NaN without growth: an op's domain, not the step size
    lr = trace.lr
    return float(lr[k]) if len(lr) > k else math.nan


# --- the loss curve: stalled or oscillating ------------------------------------------------


def _chance_level(trace: Trace) -> float:
    """The loss of the best constant prediction, when the pre-flight check measured the
    targets (class entropy for cross-entropy, the target variance for MSE)."""
    t = trace.setup.get("targets") or {}
    v = t.get("constant_loss")
    return float(v) if v is not None else math.nan


def detect_stalled(trace: Trace, prof: ModelProfile, th: Thresholds) -> list[Finding]:
    """The loss has not improved for the last third of the run while it is still about as
    high as at the start (or as the best constant prediction): the run has stopped learning.
    The cause is looked for in the measurements (dead units, saturation, updates too small
    to move the weights, an earlier blow-up); the other findings link to it as causes."""
    raw = trace.loss_array()
    if raw.size < th.min_steps_for_stall or trace.first_nonfinite_loss() >= 0:
        return []
    # epoch means when there are enough epochs (they average the batch noise away), else
    # medians of blocks of steps, judged with a margin for their noise
    epochs = [e["loss"] for e in trace.epochs if e.get("loss") is not None]
    if len(epochs) >= 4 and all(map(math.isfinite, epochs)):
        m, size = np.asarray(epochs, dtype=np.float64), 0
        margin = th.stall_improvement
        k = max(2, m.size // 3)
        window = int(raw.size - 1 - trace.epochs[-k - 1]["end_step"])
    elif trace.epochs:
        return []  # wait for 4 epochs: fewer are too short a window to call a stall
    else:
        m, size = _blocks(raw)
        if m.size < 6:
            return []
        margin = 4 * th.stall_improvement
        k = max(m.size // 3, 2)
        window = k * size
    recent, before = m[-k:], m[:-k]
    best_before = float(before.min())
    start = max(float(raw[0]), float(m[0]))
    chance = _chance_level(trace)
    # at its starting level, or no better than predicting a constant (chance)
    level = min(chance, start) if math.isfinite(chance) and chance > 0 else start
    improving = float(recent.min()) < (1 - margin) * best_before
    far_from_good = float(np.median(recent)) >= th.stall_level * level
    if improving or not far_from_good:
        return []
    ratio = _median_update_ratio(trace, prof, trace.window(th.min_samples))
    dead, dead_at = _latest_windows(trace, ("relu",), "dead_fraction", th.dead_warning)
    pinned, pinned_at = _latest_windows(
        trace, ("sigmoid", "tanh"), "pinned_fraction", th.saturated_warning
    )
    div_lr = diverged_lr(trace, th)
    causes = []
    remedies: list[rx.Remedy] = []
    if math.isfinite(div_lr):  # first: a blow-up is what kills or pins units
        causes.append(f"the loss blew up earlier at learning rate {rx.fmt_num(div_lr)}")
        remedies.append(rx.lower_lr(prof, starting_update_ratio(trace, prof), div_lr))
    if dead_at:
        causes.append(f"{dead:.0%} of the units of ReLU layer {rx.paths(dead_at)} are dead")
        remedies.append(rx.replace_activation(dead_at, "ReLU", "LeakyReLU(0.01)"))
    if pinned_at:
        causes.append(f"{pinned:.0%} of the units at {rx.paths(pinned_at)} are pinned")
        remedies += _to_relu(prof, pinned_at)
    if math.isfinite(ratio) and ratio < th.update_ratio_low and not causes:
        causes.append(f"each update moves the weights by only {_sci(ratio)} of their size")
        remedies.append(rx.raise_lr(prof, ratio))
    # without a mechanism the run may just be on a hard plateau: a note, not a warning
    severity = "warning" if causes else "info"
    if not causes:
        causes.append("no dead or saturated units, no tiny updates and no blow-up were measured")
        if prof.optimizer != "Adam":
            remedies.append(rx.set_optimizer("Adam", 1e-3, " (robust to a badly chosen rate)"))
        remedies.append(rx.find_lr())
    vs = "the best constant prediction" if level == chance else "where it started"
    explanation = (
        f"The loss has not improved in the last {window} steps and stays at "
        f"{_sci(float(np.median(recent)))}, about as high as {vs} ({_sci(level)}): the run "
        f"has stopped learning. Measured: {'; '.join(causes)}."
    )
    evidence = {
        "loss_start": start,
        "loss_recent": float(np.median(recent)),
        "best_before_window": best_before,
        "constant_prediction_loss": chance,
        "window_steps": window,
        "median_update_ratio": ratio,
        "max_dead_fraction": dead,
        "max_pinned_fraction": pinned,
        "diverged_at_lr": div_lr,
    }
    step = int(raw.size - window)
    return [
        _finding(
            "stalled_training", severity, "model", step, trace, evidence, explanation, remedies
        )  # fmt: skip
    ]


def _latest_windows(
    trace: Trace, kinds: tuple[str, ...], key: str, level: float
) -> tuple[float, list[str]]:
    """The largest ``key`` of the latest windows of the hidden activation layers of
    ``kinds``, and the layers where it is at ``level`` or above."""
    vals = {p: a.windows[-1][key] for p, a in trace.activations.items()
            if a.kind in kinds and a.windows and not a.is_output}  # fmt: skip
    return max(vals.values(), default=0.0), [p for p, v in vals.items() if v >= level]


def _spike_swings(trace: Trace, th: Thresholds) -> tuple[int, float]:
    """(separate episodes in which the step loss jumped to ``th.loss_spike_factor`` times its
    typical level and came back down, the spike level). An episode ends when the loss is
    back under the geometric middle of the two levels, so one slow spike counts once."""
    loss = trace.loss_array()
    if loss.size < 6 or trace.first_nonfinite_loss() >= 0:
        return 0, math.nan
    typical = max(float(loss[0]), trace.finite_loss_median())
    if not typical > 0:
        return 0, math.nan
    level = th.loss_spike_factor * typical
    back = math.sqrt(level * typical)
    # the steps above or back under, in order (1: up, 0: down), from a start that is down;
    # an episode begins where a down is followed by an up (vectorised: runs of millions of
    # steps are diagnosed every epoch)
    states = np.concatenate([[0], (loss[(loss >= level) | (loss <= back)] >= level)])
    episodes = int(np.count_nonzero(np.diff(states.astype(np.int8)) == 1))
    # the last one must have come back down: a loss that ends at its spike has diverged
    return episodes - int(states[-1]), level


def detect_oscillating(trace: Trace, prof: ModelProfile, th: Thresholds) -> list[Finding]:
    """The loss swings up and down without a trend: the epoch loss by a large share of its
    starting level (lr slightly too high), or the step loss by orders of magnitude again and
    again, recovering each time (momentum SGD on single examples: the velocity carries each
    step past the minimum and back). Epoch means average the mini-batch noise away, so what
    is left swings for a cause; spikes of 100x the typical loss are no batch noise either."""
    loss = [e["loss"] for e in trace.epochs if e.get("loss") is not None]
    if len(loss) < 2 or not all(map(math.isfinite, loss)):
        return []
    start = max(float(trace.loss[0]) if len(trace.loss) else 0.0, float(loss[0]))
    if not start > 0:
        return []
    evidence: dict[str, Any] = {}
    spikes, level = _spike_swings(trace, th)
    if spikes >= th.oscillation_spikes:
        how = (
            f"The step loss jumped to over {_sci(level)} ({th.loss_spike_factor:.0f} times its "
            f"typical level) and came back down {spikes} separate times"
        )
        evidence.update(spike_swings=spikes, spike_level=level)
    elif len(loss) >= 6:
        tail = np.asarray(loss[1:], dtype=np.float64)  # past the first epoch's descent
        d = np.diff(tail)
        flips = float(np.mean(np.sign(d[1:]) != np.sign(d[:-1])))
        swing = float(np.median(np.abs(d))) / start
        trend = _kendall_tau(tail)
        if flips < th.oscillation_flips or swing < th.oscillation_swing or abs(trend) > 0.5:
            return []
        how = (
            f"The epoch loss swings up and down by a median {swing:.0%} of its starting level "
            f"({_sci(start)}) from one epoch to the next, changing direction {flips:.0%} of the "
            f"time, without a trend (Kendall's tau {trend:+.2f})"
        )
        evidence.update(swing=swing, direction_changes=flips, trend=trend)
    else:
        return []
    batch = trace.setup.get("batch_size")
    small_batch = batch is not None and batch <= 8
    spiky = "spike_swings" in evidence
    if spiky:  # orders of magnitude: the rate is sized from where the loss blew up
        lower = rx.lower_lr(prof, starting_update_ratio(trace, prof), diverged_lr(trace, th))
    else:
        lower = rx.change_lr(
            prof, 0.3, " (the loss swings without trending: each step overshoots a little)"
        )
    if small_batch:  # a tiny batch's noise is the likelier cause of gentle swings
        bigger = rx.set_batch_size(batch, 32)
        remedies = [lower, bigger] if spiky else [bigger, lower]
    elif batch is not None:
        remedies = [lower, rx.set_batch_size(batch, max(32, 4 * batch))]
    else:
        remedies = [lower]
    if prof.optimizer != "Adam":
        remedies.append(rx.set_optimizer("Adam", 1e-3))
    explanation = f"{how}: the steps overshoot back and forth."
    evidence.update(
        epoch_losses=[float(v) for v in loss],
        batch_size=batch,
        momentum=prof.momentum,
        lr=prof.lrs,
    )
    # the epoch swings judged began after epoch 2; the spikes, at the first one
    step = (
        int(np.argmax(trace.loss_array() >= level))
        if spiky
        else int(trace.epochs[1]["end_step"]) + 1
    )
    return [
        _finding(
            "oscillating_loss", "warning", "optimizer", step, trace, evidence, explanation, remedies
        )  # fmt: skip
    ]


# --- setup: features and dropout ------------------------------------------------------------


@dataclass(frozen=True)
class ColumnScale:
    """The numbers that judge a column's scale: finite min, max, 1st and 99th percentiles."""

    min: float
    max: float
    p01: float
    p99: float


def column_scales(X: np.ndarray, names: Sequence[str]) -> dict[str, ColumnScale]:
    """Per-column scale numbers in a few vectorised passes (non-finite values ignored);
    constant and empty columns are left out."""
    work = np.asarray(X, dtype=np.float64)
    if not np.isfinite(work).all():
        work = np.where(np.isfinite(work), work, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        lo, hi = np.nanmin(work, axis=0), np.nanmax(work, axis=0)
        p01, p99 = np.nanpercentile(work, [1, 99], axis=0)
    return {
        n: ColumnScale(float(lo[j]), float(hi[j]), float(p01[j]), float(p99[j]))
        for j, n in enumerate(names)
        if np.isfinite(lo[j]) and lo[j] != hi[j]
    }


def unscaled_columns(
    scales: dict[str, ColumnScale], th: Thresholds
) -> tuple[dict[str, float], dict[str, float], list[str]]:
    """(columns off scale -> magnitude, columns with far outliers -> magnitude, messages
    about column spans differing by more than ``th.feature_range_ratio``)."""
    bulk_mag = {n: max(abs(c.p01), abs(c.p99)) for n, c in scales.items()}
    scale: dict[str, float] = {n: m for n, m in bulk_mag.items() if m > th.feature_magnitude}
    ratio_msgs = []
    spans = {n: c.p99 - c.p01 for n, c in scales.items() if c.p99 > c.p01}
    if len(spans) >= 2:
        ref = min(spans, key=lambda n: spans[n])
        widest = max(spans.values())
        for n, r in spans.items():
            if r > th.feature_range_ratio * spans[ref]:
                ratio_msgs.append(
                    f"{n!r} spans {_sci(r)} (1st-99th percentile), {r / spans[ref]:.0f}x the "
                    f"span of {ref!r} ({_sci(spans[ref])})"
                )
            # The squeezed side is flagged, every squeezed column at once (one a round leaves
            # the next narrowest to be flagged after it). The wide side only when it is off
            # unit scale itself (the rule above): a standardised column, skewed (1st-99th
            # percentiles up to about +-6), is the scale the others must be brought to.
            if r < 0.2 and widest > th.feature_range_ratio * r:
                scale.setdefault(n, bulk_mag[n])
    outliers = {
        n: max(abs(c.min), abs(c.max))
        for n, c in scales.items()
        if n not in scale and max(abs(c.min), abs(c.max)) > th.feature_magnitude
    }
    return scale, outliers, ratio_msgs


def detect_unscaled(
    report: Any, th: Thresholds, scales: dict[str, ColumnScale] | None = None
) -> Finding | None:
    """Input columns far from [-1, 1] or far from each other in scale (warning), or within
    scale but with outliers far beyond it (info).

    Scale is judged on the bulk of each column (its 1st to 99th percentiles), so a
    z-scored column with a few extreme values is an outlier matter, not a scale one.
    ``scales`` (from :func:`column_scales`) covers every column; ``report`` is the
    preprocessing audit of at least the flagged ones (for the recommended chains).
    Without ``scales`` they are read from ``report``.
    """
    if report is None and scales is None:
        return None
    if scales is None:
        scales = {
            c.name: ColumnScale(c.min, c.max, c.p01, c.p99)
            for c in report.columns
            if c.count > 0 and c.min != c.max
        }
    scale, outliers, ratio_msgs = unscaled_columns(scales, th)
    flagged = scale or outliers
    if not flagged:
        return None
    severity = "warning" if scale else "info"
    order = sorted(flagged, key=lambda n: -flagged[n])
    chains = {}
    details = {}
    for name in order:
        c = report[name]
        chains[name] = c.chain_string if c.chain_string != "none" else "linear"
        details[name] = {
            "min": c.min,
            "max": c.max,
            "p01": c.p01,
            "p99": c.p99,
            "mean": c.mean,
            "std": c.std,
            "skewness": c.skewness,
            "outlier_fraction": c.outlier_fraction,
            "recommended": c.chain_string,
            "reason": c.reason,
        }
    worst = report[order[0]]
    s = "s" if len(order) > 1 else ""
    if scale:
        explanation = (
            f"{len(order)} input column{s} {'are' if s else 'is'} far from [-1, 1] or from the "
            f"other columns' scale (worst: {order[0]}, 1st-99th percentiles "
            f"{_sci(worst.p01)}..{_sci(worst.p99)}). No single learning rate suits weights that "
            f"see such different scales: gradient descent crawls, saturates units, or diverges "
            f"into the NaN trap."
        )
    else:
        explanation = (
            f"{len(order)} input column{s} {'are' if s else 'is'} scaled, but with outliers far "
            f"beyond [-1, 1] (worst: {order[0]} reaches {_sci(flagged[order[0]])}); clipping "
            f"them keeps single examples from dominating the gradient."
        )
    remedies = [
        rx.scale_columns(chains),
        rx.Remedy(
            f"or z-score every column: {say('zscore')}",
            {"action": "scale_features", "chains": dict.fromkeys(report.names, "zscore")},
        ),
    ]
    for msg in ratio_msgs:
        col = msg.split("'")[1] if msg.count("'") >= 2 else None
        if col in details:
            details[col].setdefault("scale_ratio_warnings", []).append(msg)
    evidence = {
        "summary": (
            f"{len(order)} column{s} flagged; worst {order[0]}: 1st-99th percentiles "
            f"{_sci(worst.p01)}..{_sci(worst.p99)}"
        ),
        "worst": order[0],
        "columns_flagged": len(order),
        "rows_audited": report.n_rows,
        "columns_audited": len(scales),
        "columns": details,  # per column: range, percentiles, recommended chain, why
    }
    return Finding(
        "unscaled_features",
        severity,
        ", ".join(order),
        None,
        None,
        evidence,
        explanation,
        *rx.remedy_lists(remedies),
    )


def detect_dropout(trace: Trace, prof: ModelProfile, th: Thresholds) -> list[Finding]:
    """Dropout that drops everything (rate 1.0) or nearly so, or is active while evaluating:
    one finding, whose remedies name every affected Dropout."""
    high = {p: r for p, r in prof.dropouts.items() if r >= th.dropout_high}
    in_eval = dict(trace.dropout_in_eval)
    if not high and not in_eval:
        return []
    eval_fix = rx.Remedy(
        f"call model.eval() before evaluating and model.train() after ({say('eval_mode')})",
        {"action": "eval_mode"},
    )
    remedies: list[rx.Remedy] = []
    evidence: dict[str, Any] = {}
    texts = []
    severity = "warning"
    if high:
        where = list(high)
        rates = set(high.values())
        old = rates.pop() if len(rates) == 1 else None
        all_of = max(high.values()) >= 1.0
        severity = "critical" if all_of else "warning"
        evidence["rate"] = max(high.values())
        evidence["rates"] = high
        rate_text = (
            rx.fmt_num(old) if old is not None else "up to " + rx.fmt_num(max(high.values()))
        )
        if all_of:
            texts.append(
                f"Dropout at {rx.paths(where)} has rate {rate_text}: in training it replaces "
                f"every value with 0, so the output does not depend on the input and nothing "
                f"before it learns. The rate is the fraction dropped (Keras convention), not the "
                f"fraction kept."
            )
            remedies += [rx.set_dropout(where, old, 0.0), rx.set_dropout(where, old, 0.2)]
        else:
            texts.append(
                f"Dropout at {rx.paths(where)} drops {max(high.values()):.0%} of its inputs in "
                f"training: almost no signal gets through. The rate is the fraction dropped, not "
                f"kept."
            )
            remedies += [rx.set_dropout(where, old, 0.2), rx.set_dropout(where, old, 0.5)]
    if in_eval:
        evidence["evaluation_calls_with_dropout_active"] = sum(in_eval.values())
        evidence["evaluation_calls_by_module"] = in_eval
        texts.append(
            f"Dropout at {rx.paths(list(in_eval))} was active during evaluation "
            f"({sum(in_eval.values())} forward passes without gradient recording while the "
            f"module was in training mode), so evaluation results are noisy and too pessimistic."
        )
        remedies.append(eval_fix)
    places = list(dict.fromkeys([*high, *in_eval]))
    return [
        _finding(
            "dropout_misconfigured",
            severity,
            ", ".join(places),
            None,
            trace,
            evidence,
            " ".join(texts),
            remedies,
        )  # fmt: skip
    ]


# --- overfitting ---------------------------------------------------------------------------


def _kendall_tau(values: np.ndarray) -> float:
    """Share of increasing minus decreasing pairs (i < j): 1 for a steady rise."""
    n = values.size
    if n < 2:
        return 0.0
    d = np.sign(values[None, :] - values[:, None])
    return float(np.triu(d, 1).sum()) / (n * (n - 1) / 2)


def detect_overfitting(trace: Trace, prof: ModelProfile, th: Thresholds) -> Finding | None:
    """Validation loss persistently above its best while the training loss kept falling."""
    rows = [
        e
        for e in trace.epochs
        if e.get("val_loss") is not None
        and math.isfinite(e["val_loss"])
        and e.get("loss") is not None
        and math.isfinite(e["loss"])
    ]
    if len(rows) < th.overfit_patience + 2:
        return None
    val = np.array([e["val_loss"] for e in rows])
    train = np.array([e["loss"] for e in rows])
    best = int(np.argmin(val))
    if len(rows) - 1 - best < th.overfit_patience:
        return None
    # The best level is judged on the median-of-3 smoothed curve: one lucky epoch of a noisy
    # validation loss is not a level the model reached.
    padded = np.concatenate([val[:1], val, val[-1:]])
    smooth = np.median(np.stack([padded[:-2], padded[1:-1], padded[2:]]), axis=0)
    best_level = float(smooth[: len(rows) - th.overfit_patience].min())
    recent = val[-th.overfit_patience :]
    scale = abs(best_level) if best_level != 0 else 1.0
    rise = float(recent.min() - best_level) / scale
    fell = (train[best] - train[-1]) / abs(train[best]) if train[best] != 0 else 0.0
    if rise < th.overfit_info_rise or fell < th.overfit_train_fall:
        return None
    # A rising trend, not a noisy plateau: Kendall's tau of the epochs after the best. Or a
    # rise far beyond the epoch-to-epoch noise once the training set is memorised (training
    # loss far under the best validation loss): that leaves the validation loss on a smooth
    # plateau high above its best, whose slight drift down spoils the trend but not the rise.
    after = val[best:]
    trend = _kendall_tau(after[1:])
    noise = float(np.median(np.abs(np.diff(after))))
    memorised = train[-1] <= th.overfit_memorised * val[best]
    clear_rise = memorised and rise * scale >= th.overfit_noise_multiple * noise
    if trend < th.overfit_trend and not clear_rise:
        return None
    severity = "warning" if rise >= th.overfit_rise else "info"
    best_epoch = int(rows[best]["epoch"])
    explanation = (
        f"Validation loss was lowest at epoch {best_epoch + 1} ({_sci(float(val[best]))}) and "
        f"has risen in the {len(rows) - 1 - best} epochs since (the last "
        f"{th.overfit_patience} are at least {rise:.0%} above its best level), while the "
        f"training loss kept falling ({_sci(float(train[best]))} -> {_sci(float(train[-1]))}): "
        f"the model is memorising the training set."
    )
    remedies = [rx.early_stopping(best_epoch, float(val[best]))]
    low = {p: r for p, r in prof.dropouts.items() if r < 0.5}
    if low:
        r0 = min(low.values())
        remedies.append(rx.set_dropout(list(low), r0, float(f"{min(0.5, r0 + 0.2):.2g}")))
    elif not prof.dropouts:
        acts = [a for a in (prof.activation_after(p) for p in prof.hidden_layers) if a]
        if acts:
            remedies.append(
                rx.Remedy(
                    f"add Dropout(0.2) after {rx.every(acts)}",
                    {"action": "add_dropout", "after": acts, "rate": 0.2},
                )
            )
    if prof.weight_decay == 0:
        remedies.append(rx.weight_decay(prof))
    evidence = {
        "best_epoch": best_epoch,
        "best_val_loss": float(val[best]),
        "recent_val_loss": float(val[-1]),
        "rise": rise,
        "trend_after_best": trend,
        "noise_after_best": noise,
        "train_loss_at_best": float(train[best]),
        "train_loss_recent": float(train[-1]),
        "train_loss_fall": float(fell),
    }
    step = rows[best].get("end_step")
    f = _finding("overfitting", severity, "model", step, trace, evidence, explanation, remedies)
    f.epoch = best_epoch + 1 if best_epoch + 1 < len(trace.epochs) else best_epoch
    return f
