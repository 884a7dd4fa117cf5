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
    """'layers.1, layers.3 and 4 more'."""
    items = list(items)
    if len(items) <= limit:
        return ", ".join(items)
    return ", ".join(items[:limit]) + f" and {len(items) - limit} more"


def change_lr(prof: ModelProfile, factor: float) -> Remedy:
    """Multiply every parameter group's learning rate by ``factor`` (0.1: lower ten-fold)."""
    verb = "lower" if factor < 1 else "raise"
    action = {"action": "scale_lr", "factor": factor}
    if not prof.lrs:
        how = f"{round(1 / factor)}-fold" if factor < 1 else f"{round(factor)}-fold"
        return Remedy(f"{verb} the learning rate {how}", action)
    new = [float(f"{lr * factor:.3g}") for lr in prof.lrs]
    action["lr"] = new
    if len(set(prof.lrs)) == 1:
        return Remedy(
            f"{verb} the learning rate from {fmt_num(prof.lrs[0])} to {fmt_num(new[0])}", action
        )
    pairs = ", ".join(
        f"{fmt_num(a)} to {fmt_num(b)} (group {i})" for i, (a, b) in enumerate(zip(prof.lrs, new))
    )
    return Remedy(f"{verb} the learning rates: {pairs}", action)


def find_lr() -> Remedy:
    return Remedy(
        "run gw.lr_find(model, train, loss, optimizer) to pick the learning rate from a range test",
        {"action": "lr_find"},
    )


def replace_activation(where: Sequence[str], old: str, new: str) -> Remedy:
    text = f"replace {old} at {paths(where)} with {new}"
    if new == "ReLU":
        text += " (with He initialisation, the default for gw.nn.Linear)"
    return Remedy(
        text, {"action": "replace_activation", "modules": list(where), "from": old, "to": new}
    )


def add_batchnorm(after: Sequence[str]) -> Remedy:
    return Remedy(
        f"add BatchNorm1d after {paths(after)} (between each Linear and its activation)",
        {"action": "add_batchnorm", "after": list(after)},
    )


def clip_grad_norm(max_norm: float) -> Remedy:
    v = fmt_num(max_norm)
    return Remedy(
        f"clip the gradient norm at {v} (gw.nn.utils.clip_grad_norm_(model.parameters(), {v}) "
        "between backward and the optimizer step)",
        {"action": "clip_grad_norm", "max_norm": max_norm},
    )


def set_dropout(where: Sequence[str], old: float, new: float) -> Remedy:
    return Remedy(
        f"set the Dropout rate at {paths(where)} from {fmt_num(old)} to {fmt_num(new)}",
        {"action": "set_dropout", "modules": list(where), "rate": new},
    )


def weight_decay(prof: ModelProfile, value: float = 1e-2) -> Remedy:
    if prof.optimizer in ("Adam", None):
        text = f"add weight decay: use AdamW(..., weight_decay={fmt_num(value)})"
    else:
        text = f"add weight decay: {prof.optimizer}(..., weight_decay={fmt_num(value)})"
    return Remedy(text, {"action": "weight_decay", "value": value})


def early_stopping(best_epoch: int, best_val: float) -> Remedy:
    return Remedy(
        f"stop at the best epoch: callbacks=[gw.callbacks.EarlyStopping(monitor='val_loss', "
        f"patience=3, restore_best_weights=True)] (the best was epoch {best_epoch + 1}, "
        f"val_loss {fmt_num(best_val)})",
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
    text += " (gw.preprocessing.AutoScaler() fitted on the training data applies these)"
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
