"""Diagnosis: the detectors as a registry, and the links from causes to consequences.

Each :class:`Detector` declares the kind it finds, its priority (its place in the
registry), whether the places it is found at add up over the run, and which kinds it
can cause. Every detector returns at most one finding: a problem at several places is
one finding naming them all. The registry's order is the order of mechanisms, root
causes first: a setup problem (the loss, the layers, the data, the initialisation, the
learning rate) before what it does to the gradients, and that before what it leaves
behind (dead units, a stalled run). :func:`diagnose` runs every detector on the Trace
and :func:`relate` links each finding to the earlier findings that can cause it, then
orders them: root causes first, by mechanism, then onset.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import detectors as d
from . import detectors_setup as s
from .detectors_batchnorm import detect_batchnorm_statistics
from .findings import Finding
from .profile import ModelProfile
from .thresholds import Thresholds
from .trace import Trace

Run = Callable[[Trace, ModelProfile, Thresholds], Any]


@dataclass(frozen=True)
class Detector:
    """One kind of finding: how it is found, and what it can lead to."""

    kind: str
    run: Run  # (trace, profile, thresholds) -> Finding, list of Findings or None
    #: the places it is found at add up over the run: one finding names every layer it was
    #: seen at (vanishing, exploding). (Every detector returns at most one finding, naming
    #: every place it affects now: dead units, saturation, dropout are merged there.)
    merges: bool
    causes: tuple[str, ...]  # the kinds it can cause
    setup: bool = False  # judged before training (gw.doctor.check runs these)


def _features_audited_elsewhere(trace: Trace, prof: ModelProfile, th: Thresholds) -> None:
    """The feature audit needs the inputs themselves: it runs once, where they are seen
    (``Doctor.audit``, ``check``), and its finding joins the others there."""
    return None


_BLOCKED = ("stalled_training", "learning_rate_too_low")
_GRADIENTS = ("exploding_gradients", "nan_trap", "learning_rate_too_high")

#: Every detector, in the order of mechanisms (root causes first). A finding can only be
#: caused by one whose kind comes earlier here.
REGISTRY: tuple[Detector, ...] = (
    Detector("output_loss_mismatch", s.detect_output_loss_mismatch, False,
             ("dead_relu", "vanishing_gradients", *_BLOCKED), setup=True),
    Detector("missing_nonlinearity", s.detect_missing_nonlinearity, False, _BLOCKED, setup=True),
    Detector("dropout_misconfigured", d.detect_dropout, False,
             ("dead_relu", "vanishing_gradients", "oscillating_loss", *_BLOCKED), setup=True),
    Detector("unscaled_targets", s.detect_unscaled_targets, False,
             (*_GRADIENTS, "dead_relu", "saturated_activations", "oscillating_loss", *_BLOCKED),
             setup=True),
    Detector("unscaled_features", _features_audited_elsewhere, False,
             (*_GRADIENTS, "dead_relu", "saturated_activations", "oscillating_loss", *_BLOCKED,
              "batchnorm_statistics_mismatch"), setup=True),
    Detector("bad_initialization", s.detect_bad_initialization, False,
             (*_GRADIENTS, "vanishing_gradients", "saturated_activations", "dead_relu",
              *_BLOCKED), setup=True),
    Detector("learning_rate_too_high", d.detect_learning_rate, False,
             ("exploding_gradients", "nan_trap", "dead_relu", "saturated_activations",
              "oscillating_loss", "stalled_training")),
    Detector("exploding_gradients", d.detect_exploding, True,
             ("nan_trap", "dead_relu", "saturated_activations", *_BLOCKED)),
    # after a NaN the weights are NaN: units look dead and the loss stays flat
    Detector("nan_trap", d.detect_nan, False, ("dead_relu", *_BLOCKED)),
    Detector("saturated_activations", d.detect_saturation, False,
             ("vanishing_gradients", *_BLOCKED)),
    Detector("vanishing_gradients", d.detect_vanishing, True, ("dead_relu", *_BLOCKED)),
    Detector("dead_relu", d.detect_dead_relu, False, _BLOCKED),
    Detector("oscillating_loss", d.detect_oscillating, False, ()),
    # after what can flatten the loss for other reasons (then it is demoted to info)
    Detector("learning_rate_too_low", d.detect_learning_rate, False, ("stalled_training",)),
    Detector("stalled_training", d.detect_stalled, False, ()),
    # evaluation with running statistics that miss the activations: a gap that looks like
    # overfitting (the validation loss high above the training loss)
    Detector("batchnorm_statistics_mismatch", detect_batchnorm_statistics, False,
             ("overfitting",)),
    Detector("overfitting", d.detect_overfitting, False, ()),
)  # fmt: skip
BY_KIND = {det.kind: det for det in REGISTRY}
ORDER = {det.kind: i for i, det in enumerate(REGISTRY)}
#: The static detector of the learning rate (its range for the optimizer) runs in the check.
SETUP_EXTRA: tuple[Run, ...] = (s.detect_lr_range,)

#: Consequences that only block the loss: demoted to info when a cause explains them.
DEMOTED_WHEN_CAUSED = ("learning_rate_too_low",)
#: Short words for "fix the cause first" remedies.
_FIX_FIRST = {
    "unscaled_features": "scale the input features",
    "unscaled_targets": "scale the targets",
    "bad_initialization": "fix the initialisation",
    "output_loss_mismatch": "fix the output layer and loss",
    "missing_nonlinearity": "add the missing activation",
    "dropout_misconfigured": "fix the dropout",
    "learning_rate_too_high": "lower the learning rate",
    "learning_rate_too_low": "raise the learning rate",
    "exploding_gradients": "stop the explosion",
    "nan_trap": "remove the source of the NaN",
    "saturated_activations": "fix the saturated layers",
    "vanishing_gradients": "fix the vanishing gradients",
    "dead_relu": "fix the dead units",
    "batchnorm_statistics_mismatch": "fix the batch-norm statistics",
}


def _as_list(found: Any) -> list[Finding]:
    if found is None:
        return []
    return [found] if isinstance(found, Finding) else list(found)


def diagnose(
    trace: Trace,
    prof: ModelProfile,
    th: Thresholds | None = None,
    audit_report: Any = None,
    setup_only: bool = False,
) -> list[Finding]:
    """Every detector of the registry, related and ordered: root causes first.
    ``audit_report``: a preprocessing audit of the inputs, for the feature detector.
    ``setup_only``: only what can be judged before training (the pre-flight check)."""
    return relate(detect_all(trace, prof, th, audit_report, setup_only))


def detect_all(
    trace: Trace,
    prof: ModelProfile,
    th: Thresholds | None = None,
    audit_report: Any = None,
    setup_only: bool = False,
) -> list[Finding]:
    """The findings of every detector of the registry (each function once), unrelated."""
    th = th or Thresholds()
    found: list[Finding] = []
    seen: set[Any] = set()
    with trace.diagnosing():  # the detectors share their views of the trace
        for det in REGISTRY:
            if det.run in seen or (setup_only and not det.setup):
                continue
            seen.add(det.run)
            found += _as_list(det.run(trace, prof, th))
    if audit_report is not None:
        found += _as_list(d.detect_unscaled(audit_report, th))
    if setup_only:
        for run in SETUP_EXTRA:
            found += _as_list(run(trace, prof, th))
    return found


def _onset(f: Finding) -> int:
    return -1 if f.step is None else f.step


def _can_cause(cause: Finding, effect: Finding) -> bool:
    """Whether ``cause`` probably led to ``effect``: its kind can cause that kind, it was
    serious, and it began no later. Unscaled inputs reach sigmoid, tanh and ReLU units
    through the first layer only."""
    det = BY_KIND.get(cause.kind)
    if det is None or effect.kind not in det.causes or cause.rank < 1:
        return False
    if ORDER[cause.kind] >= ORDER.get(effect.kind, len(ORDER)):
        return False
    if _onset(cause) > _onset(effect):
        return False
    if cause.kind == "unscaled_features" and effect.kind in ("dead_relu", "saturated_activations"):
        return bool(effect.evidence.get("first_layer", True))
    return True


def relate(findings: list[Finding]) -> list[Finding]:
    """Link causes and consequences (``caused_by``/``consequences``, by id) and order the
    findings root causes first; returns the ordered list (the findings are changed in place).

    - A consequence's first remedy becomes its root cause's (so whichever finding a user
      reads, the first remedy fixes the cause); the root takes the severity of its worst
      consequence.
    - ``learning_rate_too_low`` with a cause is demoted to info: the loss is flat for
      that reason, not because of the rate.
    """
    for f in findings:
        f.caused_by, f.consequences = [], []
    ids = _unique_ids(findings)
    for f in findings:
        f.id = ids[id(f)]
    by_id = {f.id: f for f in findings}
    # effects in the order of mechanisms: a cause is settled (demoted or not) before the
    # findings it may cause are linked to it
    ordered = sorted(findings, key=lambda f: ORDER.get(f.kind, len(ORDER)))
    for effect in ordered:
        for cause in ordered:
            if cause is not effect and _can_cause(cause, effect):
                effect.caused_by.append(cause.id)
                cause.consequences.append(effect.id)
        if effect.kind in DEMOTED_WHEN_CAUSED and effect.caused_by and effect.rank >= 1:
            effect.severity = "info"
            note = (
                f" Probably a consequence of {', '.join(sorted(effect.caused_by))} (see those "
                "findings), not of the learning rate itself."
            )
            if note not in effect.explanation:
                effect.explanation += note
    _widest_change_first(findings)
    for f in findings:
        roots = _roots(f, by_id)
        if not roots:
            continue
        root = min(roots, key=lambda r: (ORDER.get(r.kind, 99), _onset(r)))
        if root.remedies and root.actions and (not f.actions or f.actions[0] != root.actions[0]):
            words = _FIX_FIRST.get(root.kind, "fix " + root.kind)
            first = f"{words} first (see {root.kind}): {root.remedies[0]}"
            if first not in f.remedies:
                f.remedies.insert(0, first)
                f.actions.insert(0, dict(root.actions[0]))
    for f in findings:  # the root cause is as serious as what it caused
        worst = max((by_id[c].rank for c in f.consequences), default=-1)
        if not f.caused_by and worst > f.rank:
            f.severity = ("info", "warning", "critical")[worst]
        if f.consequences:
            names = ", ".join(f"{c} at {by_id[c].where}" for c in f.consequences)
            note = f" In this run it probably led to: {names}."
            if " In this run it probably led to: " not in f.explanation:
                f.explanation += note
    findings.sort(key=_rank_key)
    return findings


def _widens(wide: dict[str, Any], narrow: dict[str, Any]) -> bool:
    """Whether action ``wide`` makes the change ``narrow`` makes, at more modules (replace
    Sigmoid with ReLU at 1, 3, 5 rather than at 5)."""
    keys = set(wide) | set(narrow)
    if "modules" not in wide or "modules" not in narrow:
        return False
    same = all(wide.get(k) == narrow.get(k) for k in keys - {"modules", "layers"})
    return same and set(narrow["modules"]) < set(wide["modules"])


def _widest_change_first(findings: list[Finding]) -> None:
    """When another finding's first remedy makes this finding's first change at more places
    (a deep sigmoid stack: one layer saturated, every layer starving the first ones), the
    wider change comes first: it treats both, where the narrow one leaves the other."""
    own = [(f, f.actions[0] if f.actions else None) for f in findings]
    for f, narrow in own:
        wide = next(((g, a) for g, a in own if a and narrow and _widens(a, narrow)), None)
        if wide is not None:
            g, action = wide
            f.remedies.insert(0, f"treat the {g.kind} with the same change: {g.remedies[0]}")
            f.actions.insert(0, dict(action))


def _roots(f: Finding, by_id: dict[str, Finding]) -> list[Finding]:
    """The findings at the start of every chain of causes that leads to ``f``."""
    out, stack, seen = [], list(f.caused_by), set()
    while stack:
        c = stack.pop()
        if c in seen or c not in by_id:
            continue
        seen.add(c)
        cause = by_id[c]
        if cause.caused_by:
            stack += cause.caused_by
        else:
            out.append(cause)
    return out


def _rank_key(f: Finding) -> tuple[int, int, int, int, int]:
    """Serious findings first; among them root causes first, by mechanism, then onset."""
    return (f.rank < 1, bool(f.caused_by), ORDER.get(f.kind, 99), _onset(f), -f.rank)


def _unique_ids(findings: list[Finding]) -> dict[int, str]:
    """One id per finding: its kind, or kind@place when a kind occurs more than once."""
    counts: dict[str, int] = {}
    for f in findings:
        counts[f.kind] = counts.get(f.kind, 0) + 1
    ids: dict[int, str] = {}
    used: set[str] = set()
    for f in findings:
        base = f.kind if counts[f.kind] == 1 else f"{f.kind}@{f.where}"
        name, n = base, 2
        while name in used:
            name, n = f"{base}#{n}", n + 1
        used.add(name)
        ids[id(f)] = name
    return ids


#: Kinds judged on the whole run so far: the latest verdict replaces earlier ones.
CURRENT_STATE = ("overfitting", "stalled_training", "oscillating_loss",
                 "batchnorm_statistics_mismatch")  # fmt: skip


class Ledger:
    """The findings of a run, one per kind: each kept at its worst, with the earliest onset
    (when the problem began: what the live line printed); the places of the kinds whose
    detector declares ``merges`` add up over the run. :attr:`findings` is the related view, root
    causes first.
    """

    def __init__(self) -> None:
        self.raw: dict[str, Finding] = {}

    def update(self, found: list[Finding], order: list[str]) -> None:
        """A full diagnosis: the run-wide verdicts are replaced, the rest merged."""
        for kind in CURRENT_STATE:
            self.raw.pop(kind, None)
        self.merge(found, order)

    def merge(self, new: list[Finding], order: list[str] | None = None) -> None:
        """Add findings; ``order``: module paths in forward order (for merged places)."""
        for f in new:
            old = self.raw.get(f.kind)
            if old is not None and f.rank < old.rank:
                continue
            if old is not None:
                if old.step is not None and (f.step is None or old.step < f.step):
                    f.step, f.epoch = old.step, old.epoch
                if BY_KIND[f.kind].merges:
                    _union_places(old, f, order or [])
            self.raw[f.kind] = f

    @property
    def findings(self) -> list[Finding]:
        """Copies of the findings, related and ordered root causes first."""
        view = [Finding.from_dict(f.to_dict()) for f in self.raw.values()]
        for v, f in zip(view, self.raw.values()):
            v.evidence = dict(f.evidence)  # keep raw numbers (to_dict stringifies non-finite)
        return relate(view)


def _union_places(old: Finding, f: Finding, order: list[str]) -> None:
    """``f`` names the places affected at any time in the run, in forward order."""
    seen = set(old.locations) | set(f.locations)
    places = [p for p in order if p in seen]
    places += sorted(seen - set(places))
    f.where = ", ".join(places)
    f.evidence["layers_over_the_run"] = places
    for key in ("ratio_to_strongest_later_layer", "growth_by_layer"):
        if key in old.evidence and key in f.evidence:
            merged = dict(old.evidence[key])
            pick = min if key.startswith("ratio") else max
            for p, v in f.evidence[key].items():
                merged[p] = pick(v, merged.get(p, v))
            f.evidence[key] = merged
