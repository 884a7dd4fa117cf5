"""``gw.doctor.repair``: diagnose, apply the top remedy, retrain from scratch, repeat.

The loop a practitioner runs by hand, with the doctor's machine-readable actions:
train, read the root-cause finding, change one thing, train again from scratch and
keep the change only if the run got better. It changes no user file: it returns
(and prints) the changed configuration, and the model edits, as code to paste.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import phrasing
from .edits import NotApplicable, apply_edits, apply_to_config, is_model_edit, why_not
from .findings import Finding

#: History keys tried in order for the metric that judges a run, and whether higher is better.
METRICS = (("val_accuracy", True), ("val_r2", True), ("accuracy", True), ("r2", True),
           ("val_loss", False), ("loss", False))  # fmt: skip


@dataclass
class Run:
    """One training run: its findings (warning and worse), its metric, its config and edits."""

    config: dict[str, Any]
    edits: list[dict[str, Any]]
    history: Any
    findings: list[Finding]
    metric: str
    score: float
    seconds: float
    error: str | None = None  # training raised after a change (the change is undone)

    @property
    def healthy(self) -> bool:
        return not self.findings and self.error is None

    def score_text(self) -> str:
        return f"{self.metric} {_num(self.score)}"


@dataclass
class Round:
    """One repair round: the finding treated, the change made, the metric before and after."""

    finding: Finding
    remedy: str
    action: dict[str, Any]
    before: Run
    after: Run
    kept: bool
    not_applicable: list[str] = field(default_factory=list)


@dataclass
class RepairResult:
    """What :func:`repair` did. ``outcome``: "healthy", "nothing helps" or "rounds used up"."""

    first: Run
    final: Run
    rounds: list[Round]
    outcome: str
    reason: str
    #: the framework whose words :meth:`code` uses (the one the repair spoke)
    framework: str = "gradwell"

    @property
    def config(self) -> dict[str, Any]:
        return self.final.config

    @property
    def edits(self) -> list[dict[str, Any]]:
        return self.final.edits

    @property
    def repaired(self) -> bool:
        return self.outcome == "healthy"

    def code(self, original: dict[str, Any] | None = None) -> str:
        """The repaired configuration (and model edits) as Python to paste, in the words of
        the framework the repair ran in."""
        with phrasing.speaking(self.framework):
            return config_code(self.config, original or self.first.config, self.edits)


def _num(x: float) -> str:
    return f"{x:.4g}" if math.isfinite(x) else str(x)


def judge(history: Any, metric: str | None = None) -> tuple[str, float]:
    """(metric name, value) of a run: the last epoch's value; non-finite is the worst."""
    options = [(m, hi) for m, hi in METRICS if metric in (None, m)]
    if metric is not None and not options:
        options = [(metric, not metric.endswith("loss"))]
    for name, higher in options:
        if name in history and history[name]:
            value = float(history[name][-1])
            if not math.isfinite(value):
                value = -math.inf if higher else math.inf
            return name, value
    return options[0][0], math.nan


def _better(after: Run, before: Run, higher: bool, margin: float = 0.01) -> bool:
    """Whether ``after`` beats ``before`` by more than ``margin`` (absolute for a score such
    as accuracy, relative for a loss)."""
    if not math.isfinite(before.score):
        return math.isfinite(after.score)
    if higher:
        return after.score - before.score > margin
    return before.score - after.score > margin * abs(before.score)


def _key(action: dict[str, Any]) -> str:
    return json.dumps(action, sort_keys=True, default=str)


def repair(
    build: Callable[[dict[str, Any]], tuple[Any, Any]],
    train: Callable[[Any, Any, dict[str, Any]], Any],
    config: dict[str, Any],
    *,
    rounds: int = 3,
    metric: str | None = None,
    print_fn: Callable[[str], Any] | None = print,
    edit: Callable[..., tuple[Any, Any]] = apply_edits,
) -> RepairResult:
    """Diagnose a training setup, apply the top remedy, retrain from scratch; repeat.

    ``build(config) -> (model, optimizer)`` makes a fresh model and optimizer;
    ``train(model, optimizer, config) -> History`` trains them with the doctor on
    (``history.findings``). Each round takes the root-cause finding (the first of
    warning severity or worse) and the first of its remedies that can be applied
    (an action that cannot is reported with the reason, never skipped silently):
    a configuration action changes the config (see :mod:`gradwell.doctor.edits`
    for the keys), a model edit is applied by module path to every freshly built
    model. The run is retrained from scratch; the change is kept when the metric
    improves, or when the finding is gone and the metric is no worse. It stops when
    the run is healthy (no warnings), when no remedy is left to try ("nothing
    helps"), or after ``rounds`` retrainings. ``metric``: the History key that
    judges a run (default: the first of val_accuracy, val_r2, accuracy, r2,
    val_loss, loss). ``config`` is not modified; the repaired one is
    ``result.config``, ``result.code()`` is it as Python to paste. ``edit``: what
    applies model edits (another framework's, for its models).

    >>> import gradwell as gw
    >>> from gradwell.doctor import recipes
    >>> cfg = {"data": "circle", "widths": [16, 16], "lr": 0.1, "dropout": 1.0, "epochs": 6}
    >>> result = gw.doctor.repair(recipes.build, recipes.train, cfg, print_fn=None)
    >>> result.outcome, result.rounds[0].action["action"], result.edits[0]["rate"]
    ('healthy', 'set_dropout', 0.0)
    """
    if not isinstance(config, dict):
        raise TypeError(f"repair: config must be a dict; got {type(config).__name__}")
    if not isinstance(rounds, int) or rounds < 0:
        raise ValueError(f"repair: rounds must be an int >= 0; got {rounds!r}")
    say = print_fn or (lambda line: None)

    def run(cfg: dict[str, Any], edits: list[dict[str, Any]]) -> Run:
        started = time.perf_counter()
        model, optimizer = build(copy.deepcopy(cfg))
        model, optimizer = edit(model, optimizer, edits)
        history = train(model, optimizer, copy.deepcopy(cfg))
        if getattr(history, "doctor", None) is None:
            raise ValueError(
                "repair: train(model, optimizer, config) must return the History of a run the "
                f"doctor watched; got {type(history).__name__}"
                + (
                    " without a doctor (fit(..., doctor=False)?)"
                    if hasattr(history, "doctor")
                    else ""
                )
            )
        name, score = judge(history, metric)
        sick = [f for f in history.findings if f.rank >= 1]
        return Run(cfg, edits, history, sick, name, score, time.perf_counter() - started)

    current = first = run(copy.deepcopy(config), [])
    higher = dict(METRICS).get(current.metric, not current.metric.endswith("loss"))
    say(f"before: {current.score_text()}; " + _verdict(current))
    done: list[Round] = []
    tried: set[str] = set()  # changes tried on `current` and undone
    outcome, reason = "rounds used up", f"still not healthy after {rounds} rounds"
    for _ in range(rounds + 1):
        if current.healthy:
            outcome, reason = "healthy", "the doctor finds no problems"
            break
        if len(done) == rounds:
            break
        pick, skipped = _next_change(current, tried, build, edit)
        for line in skipped:
            say(f"  not applicable: {line}")
        if pick is None:
            outcome = "nothing helps"
            reason = (
                "no applied remedy improved the run, and none is left to try"
                if tried
                else "no remedy can be applied"
            )
            break
        finding, text, action, cfg, edits = pick
        tried.add(_key(action))
        try:
            after = run(cfg, edits)
        except Exception as e:  # the change broke training (a shape, a domain): undo it
            worst = -math.inf if higher else math.inf
            after = Run(cfg, edits, None, [], current.metric, worst, 0.0, error=f"{e!r}"[:200])
        gone = (finding.kind, finding.where) not in {(f.kind, f.where) for f in after.findings}
        kept = after.error is None and (
            _better(after, current, higher)
            or ((gone or after.healthy) and not _better(current, after, higher))
        )
        done.append(Round(finding, text, action, current, after, kept, skipped))
        say(f"round {len(done)}: {finding.headline()}")
        say(f"  change: {text}")
        if after.error is not None:
            say(f"  training failed after the change ({after.error}): undone")
        else:
            verdict = "kept" if kept else "undone: no better"
            say(f"  {current.score_text()} -> {_num(after.score)} ({verdict}); {_verdict(after)}")
        if kept:  # a new starting point: what failed before may work now
            current = after
            tried.clear()
    if outcome == "rounds used up" and current.healthy:
        outcome, reason = "healthy", "the doctor finds no problems"
    say(f"outcome: {outcome} ({reason}); {first.score_text()} -> {_num(current.score)}")
    result = RepairResult(first, current, done, outcome, reason, phrasing.framework())
    if current.config != first.config or current.edits:
        say("the repaired configuration, to paste:")
        for line in result.code(config).splitlines():
            say(line)
    return result


def _verdict(r: Run) -> str:
    if r.healthy:
        return "doctor: no problems found"
    return "doctor finds: " + ", ".join(f"{f.kind} at {f.where}" for f in r.findings)


Change = tuple[Finding, str, dict[str, Any], dict[str, Any], list[dict[str, Any]]]


def _next_change(
    current: Run, tried: set[str], build: Any, edit: Any
) -> tuple[Change | None, list[str]]:
    """The first applicable untried remedy, root cause first; and what could not be applied."""
    skipped: list[str] = []
    for f in current.findings:
        for i, action in enumerate(f.actions):
            text = f.remedies[i] if i < len(f.remedies) else str(action)
            if _key(action) in tried:
                continue
            reason = why_not(action)
            if reason is None:
                try:
                    if is_model_edit(action):
                        cfg, edits = current.config, [*current.edits, action]
                        model, optimizer = build(copy.deepcopy(cfg))
                        edit(model, optimizer, edits)  # raises if it cannot
                    else:
                        cfg, edits = apply_to_config(current.config, action), current.edits
                        if cfg == current.config:
                            raise NotApplicable("it changes nothing in the config")
                    return (f, text, action, cfg, edits), skipped
                except (NotApplicable, KeyError, TypeError, ValueError) as e:
                    reason = str(e)
            skipped.append(f"{f.kind}: {text} ({reason})")
    return None, skipped


def config_code(
    config: dict[str, Any], original: dict[str, Any], edits: list[dict[str, Any]]
) -> str:
    """``CONFIG = {...}`` with the changed keys marked, and ``EDITS`` when there are any."""
    lines = ["CONFIG = {"]
    for k, v in config.items():
        mark = ""
        if k not in original:
            mark = "  # added by the doctor"
        elif original[k] != v:
            mark = f"  # was {original[k]!r}"
        lines.append(f"    {k!r}: {v!r},{mark}")
    lines.append("}")
    if edits:
        lines.append("# model edits, by module path; apply them to each freshly built model:")
        lines.append("EDITS = [")
        lines += [f"    {e!r}," for e in edits]
        lines.append("]")
        lines.append("model, optimizer = build(CONFIG)")
        lines.append(f"model, optimizer = {phrasing.say('apply_edits')}(model, optimizer, EDITS)")
    return "\n".join(lines)
