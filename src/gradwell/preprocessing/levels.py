"""The audit of a categorical (text) column: missing cells, levels, rare levels."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ._table_input import missing_mask

#: The share of rows under which a level counts as rare (OneHotEncoder's default cut-off).
RARE_FREQUENCY = 0.01
#: The most frequent levels a report shows.
TOP_LEVELS = 5


@dataclass(frozen=True)
class CategoricalAudit:
    """One text column: how many cells are missing, its levels and which are rare."""

    name: str
    rows: int
    missing_count: int
    levels: int
    rare_levels: tuple[str, ...]
    top: tuple[tuple[str, int], ...]
    recommended: str

    @property
    def missing_fraction(self) -> float:
        return self.missing_count / self.rows if self.rows else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["rare_levels"] = list(self.rare_levels)
        out["top"] = [list(t) for t in self.top]
        out["missing_fraction"] = self.missing_fraction
        return out


def audit_levels(
    name: str, column: np.ndarray, min_frequency: float = RARE_FREQUENCY, max_levels: int = 50
) -> CategoricalAudit:
    """The levels of ``column`` (missing: None, NaN or ""), and those seen in fewer than
    ``min_frequency`` of the rows; the recommendation is what :class:`OneHotEncoder`
    with these settings would keep."""
    missing = missing_mask(column)
    counts = Counter(str(v) for v, m in zip(column, missing, strict=True) if not m)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    rare = tuple(level for level, n in ranked if n < min_frequency * len(column))
    kept = min(len(ranked) - len(rare), max_levels)
    recommended = f"one-hot ({kept} level{'s' * (kept != 1)} + other)"
    return CategoricalAudit(
        name=name,
        rows=len(column),
        missing_count=int(missing.sum()),
        levels=len(ranked),
        rare_levels=rare,
        top=tuple(ranked[:TOP_LEVELS]),
        recommended=recommended,
    )
