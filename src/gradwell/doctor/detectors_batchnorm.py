"""The train/eval gap of batch norm: running statistics that do not describe the activations.

In training a batch-norm layer normalises with the batch's own statistics; in evaluation
with its running statistics, an exponential average of past batches. When they differ,
the model trains well and evaluates badly. At a diagnosis (on a time budget:
``BATCHNORM_BUDGET``, and always at the first and the last) the probes run evenly spaced
rows of the training data through the model twice without gradients
(``Trace.batchnorm_loss``): with the running statistics, and with the rows' own batch
statistics; and per layer they
compare the running statistics with the input the layer sees in evaluation
(``Trace.batchnorm``). The finding needs both: a loss gap that undoes a real share of what
training gained, and layers whose running statistics miss their input. Its remedies follow
the cause the numbers show: a momentum too low for the number of batches, one so high that
only the last batch counts, or dropout before the layer inflating the variance it averages.
"""

from __future__ import annotations

import math
from typing import Any

from . import prescriptions as rx
from .findings import Finding
from .phrasing import say
from .profile import ModelProfile
from .thresholds import Thresholds
from .trace import Trace


def _latest(series: Any) -> float:
    return float(series[-1]) if series is not None and len(series) else math.nan


def _layer_numbers(trace: Trace, path: str) -> dict[str, float]:
    rec = trace.batchnorm[path]
    names = ("mean_shift", "var_ratio", "worst_var_ratio", "momentum", "batches_tracked",
             "rms_running_mean", "mean_running_var")  # fmt: skip
    return {name: _latest(rec.get(name)) for name in names}


def _off(v: dict[str, float], th: Thresholds, strict: float = 1.0) -> bool:
    """Whether a layer's running statistics miss its evaluation input (``strict`` scales the
    thresholds: 2 when no loss says whether the miss matters)."""
    shift, ratio = v["mean_shift"], v["var_ratio"]
    if not (math.isfinite(shift) and math.isfinite(ratio) and ratio > 0):
        return False
    return shift >= strict * th.bn_mean_shift or max(ratio, 1 / ratio) >= th.bn_var_ratio**strict


def _stale(v: dict[str, float]) -> float:
    """The weight the initial values (mean 0, variance 1) still have in the running statistics
    after ``batches_tracked`` updates with ``momentum`` (0 for a cumulative average)."""
    m, t = v["momentum"], v["batches_tracked"]
    if not (math.isfinite(m) and math.isfinite(t)):
        return 0.0
    return (1.0 - m) ** t


def _dropouts_feeding(prof: ModelProfile, path: str) -> list[str]:
    """The Dropouts (rate > 0) whose output reaches batch norm ``path`` without passing
    another batch norm: in training they scale what they keep by 1 / (1 - rate)."""
    if path not in prof.order:
        return []
    found = []
    for p in reversed(prof.order[: prof.order.index(path)]):
        if p in prof.batchnorm:
            break
        if prof.dropouts.get(p, 0.0) > 0:
            found.append(p)
    return found[::-1]


def _inflated(off: dict[str, dict[str, float]], prof: ModelProfile, th: Thresholds
              ) -> dict[str, list[str]]:  # fmt: skip
    """The layers whose running variance is too large and the Dropouts feeding them."""
    return {p: d for p in off for d in [_dropouts_feeding(prof, p)]
            if d and off[p]["var_ratio"] >= th.bn_var_ratio}  # fmt: skip


def set_momentum(layers: list[str], prof: ModelProfile, old: float, new: float | None, why: str
                 ) -> rx.Remedy:  # fmt: skip
    """The remedy that sets the layers' momentum to ``new`` (PyTorch's sense: the weight of
    each new batch; the text says it in the framework's own)."""
    names = " and ".join(f"{cls} at {rx.every(ps)}" for cls, ps in _by_class(layers, prof).items())
    value = say("bn_cumulative") if new is None else _momentum_text(new)
    return rx.Remedy(
        f"set momentum={value} on {names} (now {_momentum_text(old)}){why}",
        {"action": "set_batchnorm_momentum", "modules": list(layers), "momentum": new},
    )


def _by_class(layers: list[str], prof: ModelProfile) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in layers:
        out.setdefault(prof.types.get(p, "BatchNorm"), []).append(p)
    return out


def _momentum_text(m: float) -> str:
    """A momentum (PyTorch's sense) in the framework's words (Keras': 1 - it)."""
    if not math.isfinite(m):
        return "None"
    return say("bn_momentum", torch=rx.fmt_num(m), keras=rx.fmt_num(round(1.0 - m, 12)))


def _remedies(
    off: dict[str, dict[str, float]], trace: Trace, prof: ModelProfile, th: Thresholds
) -> list[rx.Remedy]:
    """Ranked: the cause the numbers show first (dropout inflating the variance, a momentum
    too low or too high, too few batches), then a larger batch when it is tiny, and always
    re-estimating the statistics after training."""
    remedies = []
    inflated = _inflated(off, prof, th)
    if inflated:
        drops = list(dict.fromkeys(d for ds in inflated.values() for d in ds))
        worst = max(inflated, key=lambda p: off[p]["var_ratio"])
        rate = max(prof.dropouts[d] for d in drops)
        remedies.append(
            rx.Remedy(
                f"remove the Dropout at {rx.every(drops)} (or move it after the last batch "
                f"norm): in training it scales the values it keeps by 1/(1 - "
                f"{rx.fmt_num(rate)}), so {worst} averaged a running variance "
                f"{off[worst]['var_ratio']:.2g}x what it sees in evaluation",
                {"action": "remove_module", "modules": drops},
            )
        )
    low = {p: v for p, v in off.items() if _stale(v) > th.bn_stale}
    slow = [p for p, v in low.items() if v["momentum"] < 0.1]
    if slow:
        v = low[slow[0]]
        remedies.append(
            set_momentum(slow, prof, v["momentum"], 0.1,
                         f": after {int(v['batches_tracked'])} batches the running statistics "
                         f"still hold {_stale(v):.0%} of their initial values (mean 0, "
                         "variance 1)"),
        )  # fmt: skip
    short = [p for p in low if p not in slow]
    if short:
        v = low[short[0]]
        remedies.append(
            set_momentum(short, prof, v["momentum"], None,
                         f", or train for more batches: after {int(v['batches_tracked'])} the "
                         f"running statistics still hold {_stale(v):.0%} of their initial "
                         "values"),
        )  # fmt: skip
    jumpy = [p for p, v in off.items() if v["momentum"] > th.bn_momentum_high]
    if jumpy:
        m = off[jumpy[0]]["momentum"]
        remedies.append(
            set_momentum(jumpy, prof, m, 0.1,
                         f": {say('bn_new_batch_weight')} is the weight of each new batch, so the "
                         f"running statistics are those of the last {max(1, round(1 / m))} "
                         f"batch(es){say('bn_momentum_note')}"),
        )  # fmt: skip
    batch = trace.setup.get("batch_size")
    if batch is not None and batch <= 8:
        remedies.append(rx.set_batch_size(batch, 32))
    remedies.append(
        rx.Remedy(
            f"re-estimate the running statistics after training: {say('update_bn')}",
            {"action": "recompute_batchnorm"},
        )
    )
    return remedies


def detect_batchnorm_statistics(trace: Trace, prof: ModelProfile, th: Thresholds) -> Finding | None:
    """Evaluation mode loses much of what training gained, and batch-norm layers' running
    statistics miss the input they see in evaluation."""
    if not trace.batchnorm:
        return None
    gap = trace.batchnorm_loss
    eval_loss, batch_loss = _latest(gap.get("eval_loss")), _latest(gap.get("batch_loss"))
    evidence: dict[str, Any] = {}
    finite_gap = math.isfinite(eval_loss) and math.isfinite(batch_loss)
    if finite_gap:
        probe = trace.setup.get("probe") or {}
        initial = probe.get("loss", trace.loss[0] if len(trace.loss) else math.nan)
        learnt = initial - batch_loss if math.isfinite(initial) else math.nan
        scale = learnt if learnt > 0 else max(abs(batch_loss), 1e-12)
        given_back = (eval_loss - batch_loss) / scale
        if given_back < th.bn_gap:
            return None
        severity = "critical" if given_back >= th.bn_gap_critical else "warning"
    # the layers' numbers (after the loss test: a healthy run's diagnosis needs none)
    paths = [p for p in prof.order if p in trace.batchnorm]
    paths += [p for p in trace.batchnorm if p not in paths]
    layers = {p: _layer_numbers(trace, p) for p in paths if len(trace.batchnorm[p]["step"])}
    if finite_gap:
        off = {p: v for p, v in layers.items() if _off(v, th)}
        evidence.update(eval_loss=eval_loss, batch_loss=batch_loss, initial_loss=initial,
                        share_given_back=given_back)  # fmt: skip
        rows = int(_latest(gap.get("rows")))
        lead = (
            f"In evaluation mode the loss of {rows} rows of the training data is "
            f"{rx.fmt_num(eval_loss)}, against {rx.fmt_num(batch_loss)} with their own batch "
            f"statistics: evaluation gives back {given_back:.0%} of what training gained"
            + (f" (from an initial {rx.fmt_num(initial)})" if learnt > 0 else "")
            + ". "
        )
    else:  # no loss to say whether it matters: only a clear miss counts
        off = {p: v for p, v in layers.items() if _off(v, th, strict=2.0)}
        severity = "warning"
        lead = ""
    if not off:
        return None
    # Only too few batches yet for an ordinary momentum: the statistics catch up as training
    # goes on (after the first epoch of a healthy run evaluation gives back up to a quarter)
    inflated = _inflated(off, prof, th)
    warming = all(
        _stale(v) > th.bn_stale and 0.1 <= v["momentum"] <= th.bn_momentum_high
        and p not in inflated
        for p, v in off.items()
    )  # fmt: skip
    if warming and evidence.get("share_given_back", 0.0) < th.bn_gap_critical:
        severity = "info"
    evidence["layers"] = off
    worst = max(off, key=lambda p: off[p]["mean_shift"] + abs(math.log(off[p]["var_ratio"])))
    w = off[worst]
    explanation = (
        lead + f"The running statistics of the batch norm at {rx.paths(list(off))} do not "
        f"describe what {'it sees' if len(off) == 1 else 'they see'} in evaluation: at "
        f"{worst} the running mean is {w['mean_shift']:.2g} standard deviations from the "
        f"batch's and the running variance {w['var_ratio']:.2g}x the batch's (momentum "
        f"{_momentum_text(w['momentum'])}, "
        f"{int(w['batches_tracked']) if math.isfinite(w['batches_tracked']) else '?'} batches). "
        "The model trains well and evaluates badly; this is not overfitting."
    )
    step = max(int(trace.batchnorm[worst]["step"][-1]) - 1, 0)  # the last step it trained
    texts, actions = rx.remedy_lists(_remedies(off, trace, prof, th))
    return Finding(
        "batchnorm_statistics_mismatch", severity, ", ".join(off), step, trace.epoch_of(step),
        evidence, explanation, texts, actions,
    )  # fmt: skip
