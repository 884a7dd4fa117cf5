"""Finding: one diagnosis of a training run, with its evidence and ranked remedies."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

#: Every kind of finding the doctor can make.
KINDS = (
    "vanishing_gradients",
    "exploding_gradients",
    "nan_trap",
    "dead_relu",
    "saturated_activations",
    "unscaled_features",
    "learning_rate_too_high",
    "learning_rate_too_low",
    "dropout_misconfigured",
    "overfitting",
    "bad_initialization",
    "unscaled_targets",
    "stalled_training",
    "oscillating_loss",
    "output_loss_mismatch",
    "missing_nonlinearity",
    "batchnorm_statistics_mismatch",
)

#: Severities, mildest first. A healthy run has no "warning" or "critical" finding.
SEVERITIES = ("info", "warning", "critical")


def severity_rank(severity: str) -> int:
    """0 for info, 1 for warning, 2 for critical."""
    return SEVERITIES.index(severity)


@dataclass
class Finding:
    """One diagnosis.

    ``kind`` is one of :data:`KINDS`; ``severity`` one of :data:`SEVERITIES`;
    ``where`` names the place (module paths like ``"layers.3"``, a parameter,
    column names, ``"optimizer"`` or ``"model"``; several places are joined by
    ``", "``); ``step`` and ``epoch`` say when the problem began (optimizer steps
    and epochs are 0-based; None when it concerns the setup itself);
    ``evidence`` holds the numbers; ``explanation`` says what it means in one or
    two sentences; ``remedies`` are ranked, most promising first, and phrased
    for this configuration. ``actions`` are the same remedies in machine-readable
    form (dicts with an ``"action"`` key), aligned with ``remedies``: ``actions[0]``
    applies ``remedies[0]`` without reading the text.

    ``id`` names the finding within one report (``"dead_relu"``: one finding per kind);
    ``caused_by`` and ``consequences`` hold the ids of the findings that probably caused
    this one and that it probably caused. A report lists root causes first, so the
    first finding's first remedy is the one to apply first.

    >>> f = Finding("dead_relu", "warning", "layers.1", 40, 2, {"dead_fraction": 0.62},
    ...             "62% of the ReLU units at layers.1 output 0 for every example.",
    ...             ["lower the learning rate from 0.5 to 0.05"])
    >>> f.to_dict()["where"], f.locations
    ('layers.1', ['layers.1'])
    """

    kind: str
    severity: str
    where: str
    step: int | None
    epoch: int | None
    evidence: dict[str, Any]
    explanation: str
    remedies: list[str]
    actions: list[dict[str, Any]] = field(default_factory=list)
    id: str = ""
    caused_by: list[str] = field(default_factory=list)
    consequences: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Finding: kind must be one of {KINDS}; got {self.kind!r}")
        if self.severity not in SEVERITIES:
            raise ValueError(
                f"Finding: severity must be one of {SEVERITIES}; got {self.severity!r}"
            )
        if not self.id:
            self.id = self.kind

    @property
    def locations(self) -> list[str]:
        """``where`` split into its places."""
        return [w for w in self.where.split(", ") if w]

    @property
    def rank(self) -> int:
        return severity_rank(self.severity)

    def headline(self) -> str:
        """One line: severity, kind, place, when, and the top remedy."""
        when = []
        if self.epoch is not None:
            when.append(f"epoch {self.epoch + 1}")
        if self.step is not None:
            when.append(f"step {self.step}")
        at = f" ({', '.join(when)})" if when else ""
        first = self.explanation.split(". ")[0].rstrip(".")
        fix = f" -> {self.remedies[0]}" if self.remedies else ""
        if self.caused_by:
            fix = f" (caused by {', '.join(self.caused_by)})" + fix
        places = self.locations
        where = (
            self.where
            if len(places) <= 6
            else (", ".join(places[:6]) + f" and {len(places) - 6} more")
        )
        return f"[{self.severity}] {self.kind} at {where}{at}: {first}{fix}"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (non-finite numbers become strings "nan", "inf", "-inf")."""
        return {
            "kind": self.kind,
            "severity": self.severity,
            "where": self.where,
            "step": self.step,
            "epoch": self.epoch,
            "evidence": jsonable(self.evidence),
            "explanation": self.explanation,
            "remedies": list(self.remedies),
            "actions": jsonable(self.actions),
            "id": self.id,
            "caused_by": list(self.caused_by),
            "consequences": list(self.consequences),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Finding:
        return cls(
            kind=d["kind"],
            severity=d["severity"],
            where=d["where"],
            step=d.get("step"),
            epoch=d.get("epoch"),
            evidence=dict(d.get("evidence", {})),
            explanation=d.get("explanation", ""),
            remedies=list(d.get("remedies", [])),
            actions=list(d.get("actions", [])),
            id=d.get("id", ""),
            caused_by=list(d.get("caused_by", [])),
            consequences=list(d.get("consequences", [])),
        )


def jsonable(value: Any) -> Any:
    """``value`` with numpy scalars/arrays turned into Python data and non-finite floats
    into strings, so strict JSON can hold it."""
    import numpy as np

    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value
