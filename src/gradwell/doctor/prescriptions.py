"""Remedies, phrased for this run: real module paths, real learning rates, real columns.

Each function returns a :class:`Remedy`: the sentence a person reads and the same
advice as a machine-readable action (``gradwell doctor --tour`` applies actions to
repair the runs it breaks).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .phrasing import say
from .profile import ModelProfile


@dataclass(frozen=True)
class Remedy:
    text: str
    action: dict[str, Any] = field(default_factory=dict)


def fmt_num(x: float) -> str:
    """A short human form: 0.05, 1e-05, 3.2e+04, 12."""
    if not math.isfinite(x):
        return str(x)
    return f"{x:.3g}"  # 0 -> "0", 0.05 -> "0.05", 1e-05 -> "1e-05"


def nice(x: float) -> float:
    """Round a positive number to 1, 2 or 5 times a power of ten (for clip values)."""
    if not (x > 0 and math.isfinite(x)):
        return 1.0
    exp = math.floor(math.log10(x))
    base = x / 10**exp
    step = 1 if base < 1.5 else 2 if base < 3.5 else 5 if base < 7.5 else 10
    return float(f"{step * 10.0**exp:.3g}")


def paths(items: Sequence[str], limit: int = 6) -> str:
    """'layers.1, layers.3 and 4 more' (for explanations; a remedy names them all, with
    :func:`every`, so that following it literally changes every one)."""
    items = list(items)
    if len(items) <= limit:
        return ", ".join(items)
    return ", ".join(items[:limit]) + f" and {len(items) - limit} more"


def every(items: Sequence[str]) -> str:
    """'layers.1, layers.3, layers.5': every place, as a remedy must name them."""
    return ", ".join(items)


def change_lr(prof: ModelProfile, factor: float, why: str = "") -> Remedy:
    """Multiply every parameter group's learning rate by ``factor``; the new rates are
    rounded to three significant digits. ``why`` says what sized the change."""
    verb = "lower" if factor < 1 else "raise"
    action: dict[str, Any] = {"action": "scale_lr", "factor": factor}
    if not prof.lrs:
        how = f"{fmt_num(1 / factor)}-fold" if factor < 1 else f"{fmt_num(factor)}-fold"
        return Remedy(f"{verb} the learning rate {how}{why}", action)
    new = [float(f"{lr * factor:.3g}") for lr in prof.lrs]
    action["lr"] = new
    if len(set(prof.lrs)) == 1:
        how = say("new_lr", name=prof.optimizer or "SGD", lr=fmt_num(new[0]))
        return Remedy(
            f"{verb} the learning rate from {fmt_num(prof.lrs[0])} to {fmt_num(new[0])}{why}{how}",
            action,
        )
    pairs = ", ".join(
        f"{fmt_num(a)} to {fmt_num(b)} (group {i})" for i, (a, b) in enumerate(zip(prof.lrs, new))
    )
    return Remedy(f"{verb} the learning rates: {pairs}{why}", action)


#: The update-to-weight ratio a sized learning-rate change aims at: about 1e-3 per step is
#: typical of a well-tuned run, and a run above 1e-2 per step is on the edge of overshooting.
TARGET_UPDATE_RATIO = 1e-3
HIGHEST_HEALTHY_UPDATE_RATIO = 1e-2


def lower_lr(prof: ModelProfile, ratio: float = math.nan, diverged_at: float = math.nan) -> Remedy:
    """Lower the learning rate by what the run shows: to bring the update-to-weight ratio
    ``ratio`` measured before the trouble down to 1e-2, and below a tenth of the rate
    ``diverged_at`` at which the loss diverged; ten-fold when nothing was measured."""
    factor, why = 0.1, ""
    lr = prof.lrs[0] if prof.lrs else math.nan
    if math.isfinite(ratio) and ratio > HIGHEST_HEALTHY_UPDATE_RATIO:
        factor = min(factor, HIGHEST_HEALTHY_UPDATE_RATIO / ratio)
        why = (
            f" (each update moved the weights by {fmt_num(ratio)} of their size; 1e-2 or "
            "less is safe)"
        )
    if math.isfinite(diverged_at) and lr > 0 and diverged_at <= lr:
        factor = min(factor, 0.1 * diverged_at / lr)
    return change_lr(prof, nice_factor(max(factor, 1e-5)), why)


def raise_lr(prof: ModelProfile, ratio: float, ceiling: float = math.inf) -> Remedy:
    """Raise the learning rate so that the update-to-weight ratio ``ratio`` reaches about
    1e-3, never to ``ceiling`` (a rate at which this run's loss already diverged) or above."""
    factor = min(TARGET_UPDATE_RATIO / max(ratio, 1e-12), 1e4)
    lr = prof.lrs[0] if prof.lrs else math.nan
    if math.isfinite(ceiling) and lr > 0:
        factor = min(factor, 0.5 * ceiling / lr)
    why = (
        f" (each update moves the weights by {fmt_num(ratio)} of their size; about 1e-3 is typical)"
    )
    return change_lr(prof, nice_factor(max(factor, 1.0)), why)


def nice_factor(x: float) -> float:
    """``x`` rounded down to 1, 2 or 5 times a power of ten (so a change never overshoots
    what was asked; 1 stays 1)."""
    if not (x > 0 and math.isfinite(x)):
        return 1.0
    exp = math.floor(math.log10(x) + 1e-9)
    base = x / 10**exp
    step = 5 if base >= 5 else 2 if base >= 2 else 1
    return float(f"{step * 10.0**exp:.3g}")


def set_optimizer(name: str, lr: float, why: str = "") -> Remedy:
    return Remedy(
        f"use {name} with lr {fmt_num(lr)}: {say('optimizer', name=name, lr=fmt_num(lr))}{why}",
        {"action": "set_optimizer", "optimizer": name, "lr": lr},
    )


def set_batch_size(old: int | None, new: int) -> Remedy:
    was = f" from {old}" if old else ""
    return Remedy(
        f"raise the batch size{was} to {new} ({say('batch_size', n=new)}): each step then "
        "averages over more examples",
        {"action": "set_batch_size", "batch_size": new},
    )


def positive_output(module: str, op: str, inside: bool) -> Remedy:
    """Keep the value that feeds ``op`` (log, sqrt, pow) positive: inside ``module`` when the
    op is in its forward, else at the model's output (``module`` is then the output layer)."""
    if inside:
        text = (
            f"keep the input of the {op} inside module {module} positive: take the {op} of "
            f"softplus(x) or of {say('clamp', x='x')} there"
        )
        how = "clamp"
    else:
        text = (
            f"keep the model's output positive before the {op}: put a Softplus after {module} "
            f"(or exp of its output), or clamp it ({say('clamp', x='y')})"
        )
        how = "softplus"
    return Remedy(text, {"action": "positive_output", "module": module, "how": how, "op": op})


def guard_division(where_op: str, code: str) -> Remedy:
    return Remedy(
        f"guard the division in {where_op} ({code}): its denominator reached 0; divide by "
        "(d + 1e-8 * sign(d)) or clamp |d| away from 0",
        {"action": "guard_division", "where": where_op, "code": code, "eps": 1e-8},
    )


def remove_module(modules: Sequence[str], why: str) -> Remedy:
    return Remedy(
        f"remove {every(modules)} {why}",
        {"action": "remove_module", "modules": list(modules)},
    )


def replace_loss(loss: str, text: str) -> Remedy:
    return Remedy(text, {"action": "replace_loss", "loss": loss})


def scale_targets(method: str, why: str) -> Remedy:
    words = {"standardize": "standardise the target (subtract its mean, divide by its std)",
             "log": "log-transform the target (log1p), then standardise it"}[method]  # fmt: skip
    return Remedy(
        f"{words}{why}: {say('target_scaler', method=method)}",
        {"action": "scale_targets", "method": method},
    )


def find_lr() -> Remedy:
    return Remedy(
        f"run {say('lr_find')} to pick the learning rate from a range test",
        {"action": "lr_find"},
    )


#: The initialisation that suits each activation family ("he" for the ReLU family).
INIT_FOR = {"ReLU": "he", "LeakyReLU": "he", "ELU": "he", "GELU": "he", "Sigmoid": "xavier",
            "Tanh": "xavier"}  # fmt: skip
_INIT_WORDS = {"he": "He (Kaiming) init", "xavier": "Glorot (Xavier) init",
               "default": "its default init"}  # fmt: skip


def init_for(activation: str | None) -> str:
    """'he' for the ReLU family (and unknown activations), 'xavier' for tanh and sigmoid."""
    base = re.sub(r"\(.*\)$", "", activation or "ReLU")
    return INIT_FOR.get(base, "he")


def replace_activation(
    where: Sequence[str], old: str, new: str, layers: Sequence[str] = ()
) -> Remedy:
    """Swap the activation modules ``where``; the Linear ``layers`` feeding them are
    re-initialised for the new activation."""
    init = init_for(new)
    text = f"replace {old} at {every(where)} with {new} and use {init_words(init)}"
    if layers:
        text += f" for {every(layers)}"
    return Remedy(
        text,
        {"action": "replace_activation", "modules": list(where), "from": old, "to": new,
         "init": init, "layers": list(layers)},
    )  # fmt: skip


def init_words(init: str) -> str:
    if init not in _INIT_WORDS:
        return init
    return f"{_INIT_WORDS[init]}: {say('init_' + init)}"


def reinitialise(layers: Sequence[str], init: str, why: str = "") -> Remedy:
    return Remedy(
        f"re-initialise {every(layers)} with {init_words(init)}{why}",
        {"action": "reinitialise", "modules": list(layers), "init": init},
    )


def add_batchnorm(after: Sequence[str], prof: ModelProfile | None = None) -> Remedy:
    """Batch norm after each layer of ``after``: BatchNorm2d after a Conv2d, else
    BatchNorm1d (the edit picks the class the same way)."""
    by_class: dict[str, list[str]] = {}
    for layer in after:
        by_class.setdefault(prof.batchnorm_for(layer) if prof else "BatchNorm1d", []).append(layer)
    where = " and ".join(f"{cls} after {every(layers)}" for cls, layers in by_class.items())
    return Remedy(
        f"add {where} (between each layer and its activation)",
        {"action": "add_batchnorm", "after": list(after)},
    )


def clip_grad_norm(max_norm: float) -> Remedy:
    v = fmt_num(max_norm)
    return Remedy(
        f"clip the gradient norm at {v} ({say('clip_grad_norm', v=v)} between backward and "
        "the optimizer step)",
        {"action": "clip_grad_norm", "max_norm": max_norm},
    )


def set_dropout(where: Sequence[str], old: float | None, new: float) -> Remedy:
    was = f" from {fmt_num(old)}" if old is not None else ""
    return Remedy(
        f"set the Dropout rate at {every(where)}{was} to {fmt_num(new)}",
        {"action": "set_dropout", "modules": list(where), "rate": new},
    )


def weight_decay(prof: ModelProfile, value: float = 1e-2) -> Remedy:
    if prof.optimizer in ("Adam", None):
        text = f"add weight decay: use AdamW(..., weight_decay={fmt_num(value)})"
    else:
        how = say("weight_decay", optimizer=prof.optimizer, v=fmt_num(value))
        text = f"add weight decay: {how}"
    return Remedy(text, {"action": "weight_decay", "value": value})


def early_stopping(best_epoch: int, best_val: float) -> Remedy:
    return Remedy(
        f"stop at the best epoch: {say('early_stopping')} (the best was epoch "
        f"{best_epoch + 1}, val_loss {fmt_num(best_val)})",
        {"action": "early_stopping", "patience": 3},
    )


_STEP_WORDS = {
    "log": "log-scale",
    "linear": "linear-scale",
    "zscore": "z-score",
    "robust": "robust-scale",
}


def _step_words(step: str) -> str:
    m = re.fullmatch(r"clip\(q=([0-9.e-]+),([0-9.e-]+)\)", step)
    if m:
        lo, hi = float(m.group(1)), float(m.group(2))
        pct = [f"{_ordinal(round(100 * q))} percentile" for q in (lo, hi)]
        if lo <= 0:
            return f"cap at the {pct[1]}"
        if hi >= 1:
            return f"floor at the {pct[0]}"
        return f"clip to the {pct[0]}..{pct[1]}"
    head = step.split("(")[0]
    return _STEP_WORDS.get(head, step)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def chain_sentence(column: str, chain: str) -> str:
    """'log -> linear' for column population -> 'log-scale column population, then
    linear-scale it'."""
    steps = [s.strip() for s in chain.split("->") if s.strip() and s.strip() != "none"]
    if not steps:
        return f"leave column {column} as it is"
    words = [_step_words(s) for s in steps]
    first = words[0]
    if first.startswith(("cap ", "floor ", "clip ")):
        verb, _, rest = first.partition(" ")
        head = f"{verb} column {column} {rest}"
    else:
        head = f"{first} column {column}"
    return ", then ".join([head] + [f"{w} it" for w in words[1:]])


def scale_columns(chains: dict[str, str], limit: int = 4) -> Remedy:
    """One sentence for the worst columns, plus the AutoScaler that does all of them."""
    items = list(chains.items())
    parts = [chain_sentence(c, ch) for c, ch in items[:limit]]
    more = f"; and {len(items) - limit} more columns" if len(items) > limit else ""
    text = "; ".join(parts) + more
    text += f" ({say('auto_scaler')})"
    return Remedy(text, {"action": "scale_features", "chains": dict(chains)})


def remedy_lists(remedies: Sequence[Remedy]) -> tuple[list[str], list[dict[str, Any]]]:
    """Split remedies into the texts and the actions of a Finding (duplicates dropped)."""
    texts: list[str] = []
    actions: list[dict[str, Any]] = []
    for r in remedies:
        if r.text in texts:
            continue
        texts.append(r.text)
        actions.append(r.action)
    return texts, actions
