"""The feature audit: per-column statistics and a recommended scaling chain for each.

The rules follow the practical advice for feature scaling: features should be
roughly zero-centred and about [-1, 1]; a heavy right tail of positive values
calls for log scaling, extreme outliers for clipping, and columns whose ranges
differ by orders of magnitude slow gradient descent down.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ._input import as_matrix, require_rows
from ._table_input import as_columns, is_text
from .base import Scaler, from_config
from .levels import RARE_FREQUENCY, CategoricalAudit, audit_levels
from .pipeline import Pipeline
from .scalers import Clip, LinearScaler, LogScaler, ZScoreScaler

#: A column whose range is more than this many times another's is flagged.
SCALE_RATIO_LIMIT = 100.0
#: Skewness above which positive values count as heavily right-tailed.
HEAVY_SKEW = 1.0
#: How many times farther than the 1st/99th percentile an extreme value lies.
EXTREME_TAIL = 5.0
#: Fraction of values outside the 1.5 IQR fences above which z-score beats min-max.
MILD_OUTLIER_FRACTION = 0.01


@dataclass(frozen=True)
class ColumnAudit:
    """Statistics of one column (over its finite values) and the recommended chain."""

    name: str
    index: int
    count: int
    nan_count: int
    inf_count: int
    min: float
    max: float
    mean: float
    std: float
    median: float
    q1: float
    q3: float
    p01: float
    p99: float
    skewness: float
    outlier_fraction: float
    far_outlier_fraction: float
    zero_fraction: float
    negative_fraction: float
    chain: tuple[dict[str, Any], ...]
    chain_string: str
    reason: str

    @property
    def range(self) -> float:
        return self.max - self.min

    @property
    def missing_fraction(self) -> float:
        """The share of cells that are NaN (missing)."""
        rows = self.count + self.nan_count + self.inf_count
        return self.nan_count / rows if rows else 0.0

    def make_chain(self) -> Pipeline:
        """A fresh unfitted :class:`Pipeline` of the recommended steps."""
        return Pipeline([from_config(spec) for spec in self.chain])

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["chain"] = [dict(spec) for spec in self.chain]
        for key, value in out.items():
            if isinstance(value, float) and not math.isfinite(value):
                out[key] = None  # strict JSON has no NaN
        return out


@dataclass(frozen=True)
class ScaleWarning:
    """A column whose range is far larger than another column's."""

    column: str
    column_range: float
    reference: str
    reference_range: float
    ratio: float

    @property
    def message(self) -> str:
        return (
            f"{self.column!r} spans {self.column_range:.4g}, {self.ratio:.0f}x the range of "
            f"{self.reference!r} ({self.reference_range:.4g})"
        )

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "message": self.message}


@dataclass(frozen=True)
class AuditReport:
    """What :func:`audit` found: one :class:`ColumnAudit` per number column, scale
    warnings, and one :class:`CategoricalAudit` per text column (``categorical``).

    Index it by column name (either kind) or position (a number column);
    ``str(report)`` is an aligned table.
    """

    n_rows: int
    columns: tuple[ColumnAudit, ...]
    scale_ratio_warnings: tuple[ScaleWarning, ...] = field(default=())
    categorical: tuple[CategoricalAudit, ...] = field(default=())

    def __getitem__(self, key: str | int) -> Any:
        if isinstance(key, str):
            every: list[Any] = [*self.columns, *self.categorical]
            found = [c for c in every if c.name == key]
            if found:
                return found[0]
            known = [*self.names, *(c.name for c in self.categorical)]
            raise KeyError(f"audit report: no column {key!r}; columns are {known}")
        return self.columns[key]

    def __len__(self) -> int:
        return len(self.columns)

    def __iter__(self):
        return iter(self.columns)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def recommendations(self) -> dict[str, str]:
        """Column name -> recommended chain string."""
        return {c.name: c.chain_string for c in self.columns}

    def column_scaler(self, nan_policy: str | None = None):
        """An unfitted :class:`ColumnScaler` applying each column's recommended chain."""
        from .column import ColumnScaler

        return ColumnScaler({c.index: c.make_chain() for c in self.columns}, nan_policy=nan_policy)

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_rows": self.n_rows,
            "columns": [c.to_dict() for c in self.columns],
            "scale_ratio_warnings": [w.to_dict() for w in self.scale_ratio_warnings],
            "categorical": [c.to_dict() for c in self.categorical],
        }

    def to_json(self, **kwargs: Any) -> str:
        """Strict JSON (non-finite statistics become ``null``)."""
        kwargs.setdefault("indent", 2)
        return json.dumps(self.to_dict(), allow_nan=False, **kwargs)

    def __str__(self) -> str:
        headers = [
            "column",
            "count",
            "nan",
            "inf",
            "miss%",
            "min",
            "max",
            "mean",
            "std",
            "median",
            "skew",
            "outl%",
            "zero%",
            "neg%",
            "recommended",
        ]
        rows = []
        for c in self.columns:
            rows.append(
                [c.name, str(c.count), str(c.nan_count), str(c.inf_count)]
                + [f"{100 * c.missing_fraction:.1f}"]
                + [_num(v) for v in (c.min, c.max, c.mean, c.std, c.median)]
                + [f"{c.skewness:.2f}" if math.isfinite(c.skewness) else "-"]
                + [
                    f"{100 * v:.1f}"
                    for v in (c.outlier_fraction, c.zero_fraction, c.negative_fraction)
                ]
                + [c.chain_string]
            )
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
        left = {0, len(headers) - 1}

        def line(cells: Sequence[str]) -> str:
            return "  ".join(
                cell.ljust(w) if i in left else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
            ).rstrip()

        kinds = f"{len(self.columns)} number columns" + (
            f", {len(self.categorical)} categorical" if self.categorical else ""
        )
        out = [f"feature audit: {self.n_rows} rows, {kinds}"]
        if self.columns:
            out += [line(headers), line(["-" * w for w in widths])]
            out += [line(r) for r in rows]
            out.append("")
            out.append("why:")
            out += [f"  {c.name}: {c.reason}" for c in self.columns]
        if self.scale_ratio_warnings:
            out.append("")
            out.append(
                "scale warnings (unscaled, no single learning rate suits columns whose "
                "ranges differ this much; gradient descent slows down or diverges):"
            )
            out += [f"  {w.message}" for w in self.scale_ratio_warnings]
        if self.categorical:
            out += ["", *_categorical_table(self.categorical)]
        return "\n".join(out)


def _categorical_table(columns: Sequence[CategoricalAudit]) -> list[str]:
    headers = ["categorical", "miss%", "levels", "rare", "most frequent", "recommended"]
    rows = []
    for c in columns:
        top = ", ".join(f"{level} {n / c.rows:.0%}" for level, n in c.top[:3])
        rare = str(len(c.rare_levels)) + (f" ({', '.join(c.rare_levels[:3])}"
                                          f"{', ...' if len(c.rare_levels) > 3 else ''})"
                                          if c.rare_levels else "")  # fmt: skip
        rows.append(
            [c.name, f"{100 * c.missing_fraction:.1f}", str(c.levels), rare, top, c.recommended]
        )
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
        for r in [headers, ["-" * w for w in widths], *rows]
    ]


def _num(v: float) -> str:
    return f"{v:.4g}" if math.isfinite(v) else "-"


def _column_stats(values: np.ndarray) -> dict[str, np.ndarray]:
    """All per-column statistics in a handful of vectorised float64 passes."""
    work = values.astype(np.float64)
    nan = np.isnan(work)
    inf = np.isinf(work)
    finite = ~(nan | inf)
    count = finite.sum(axis=0)
    has_bad = bool((~finite).any())
    if has_bad:
        work[~finite] = np.nan
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        # All-NaN columns warn here; they are reported with count 0 instead.
        warnings.simplefilter("ignore", RuntimeWarning)
        if has_bad:
            mins, maxs = np.nanmin(work, axis=0), np.nanmax(work, axis=0)
            mean = np.nanmean(work, axis=0)
            qs = np.nanquantile(work, [0.01, 0.25, 0.5, 0.75, 0.99], axis=0)
        else:
            mins, maxs = work.min(axis=0), work.max(axis=0)
            mean = work.mean(axis=0)
            qs = np.quantile(work, [0.01, 0.25, 0.5, 0.75, 0.99], axis=0)
        centred = work - mean
        m2 = np.nanmean(centred**2, axis=0)
        m3 = np.nanmean(centred**3, axis=0)
        std = np.sqrt(m2)
        skew = np.where(m2 > 0, m3 / np.where(m2 > 0, m2, 1.0) ** 1.5, 0.0)
        p01, q1, median, q3, p99 = qs
        iqr = q3 - q1
        n = np.maximum(count, 1)
        outliers = ((work < q1 - 1.5 * iqr) | (work > q3 + 1.5 * iqr)).sum(axis=0) / n
        far = ((work < q1 - 3 * iqr) | (work > q3 + 3 * iqr)).sum(axis=0) / n
        zeros = (work == 0).sum(axis=0) / n
        negatives = (work < 0).sum(axis=0) / n
        # How skewed the column would be after log1p, for columns where log applies.
        logs = np.log1p(np.where(work >= 0, work, np.nan))
        lmean = np.nanmean(logs, axis=0)
        lc = logs - lmean
        lm2 = np.nanmean(lc**2, axis=0)
        lm3 = np.nanmean(lc**3, axis=0)
        log_skew = np.where(lm2 > 0, lm3 / np.where(lm2 > 0, lm2, 1.0) ** 1.5, 0.0)
    return {
        "count": count,
        "nan_count": nan.sum(axis=0),
        "inf_count": inf.sum(axis=0),
        "min": mins,
        "max": maxs,
        "mean": mean,
        "std": std,
        "median": median,
        "q1": q1,
        "q3": q3,
        "p01": p01,
        "p99": p99,
        "skewness": skew,
        "outlier_fraction": outliers,
        "far_outlier_fraction": far,
        "zero_fraction": zeros,
        "negative_fraction": negatives,
        "log_skew": log_skew,
    }


def recommend(s: dict[str, float]) -> tuple[list[Scaler], str]:
    """The chain and one-line reason for one column's statistics (see :func:`audit`)."""
    lo, hi, skew = s["min"], s["max"], s["skewness"]
    if s["count"] == 0:
        return [], "no finite values: nothing to scale (impute or drop this column)"
    if lo == hi:
        return [], f"constant ({lo:.4g}): carries no information; consider dropping it"
    if -2.0 <= lo and hi <= 2.0 and hi - lo >= 0.5:
        return [], f"already about [-1, 1] (min {lo:.4g}, max {hi:.4g}): leave as is"
    log_skew = s["log_skew"]
    if lo >= 0 and skew > HEAVY_SKEW and abs(log_skew) < skew / 2:
        steps: list[Scaler] = [LogScaler(), LinearScaler()]
        reason = (
            f"heavy right tail of non-negative values (skew {skew:.2f}, max {hi:.4g} vs "
            f"median {s['median']:.4g}): log compresses it (skew after log {log_skew:.2f}), "
            f"linear maps to [-1, 1]"
        )
        if log_skew > HEAVY_SKEW:
            steps.insert(0, Clip(quantiles=(0.0, 0.99)))
            reason += "; still heavy after log, so cap at the 99th percentile first"
        return steps, reason
    iqr, med = s["q3"] - s["q1"], s["median"]
    # Extreme: beyond Tukey's far fences AND far beyond the bulk (the tail past the
    # 1st/99th percentile is over EXTREME_TAIL times longer than the bulk's half-width),
    # so a merely heavy-tailed distribution (Student t) is not clipped.
    low_far = lo < s["q1"] - 3 * iqr and med - lo > EXTREME_TAIL * (med - s["p01"])
    high_far = hi > s["q3"] + 3 * iqr and hi - med > EXTREME_TAIL * (s["p99"] - med)
    if iqr > 0 and (low_far or high_far):
        q = (0.01 if low_far else 0.0, 0.99 if high_far else 1.0)
        sides = " and ".join(t for t, on in (("1st", low_far), ("99th", high_far)) if on)
        return [Clip(quantiles=q), LinearScaler()], (
            f"extreme outliers ({100 * s['far_outlier_fraction']:.2f}% beyond 3 IQR; range "
            f"{lo:.4g}..{hi:.4g} vs 1st-99th percentiles {s['p01']:.4g}..{s['p99']:.4g}): "
            f"clip at the {sides} percentile, then linear"
        )
    if s["outlier_fraction"] > MILD_OUTLIER_FRACTION:
        return [ZScoreScaler()], (
            f"mild tails ({100 * s['outlier_fraction']:.1f}% outside 1.5 IQR, skew {skew:.2f}): "
            f"z-score centres on the mean and divides by the std"
        )
    return [LinearScaler()], (
        f"bounded, no notable outliers (range {lo:.4g}..{hi:.4g}): linear maps it to [-1, 1]"
    )


def _scale_warnings(cols: Sequence[ColumnAudit], limit: float) -> tuple[ScaleWarning, ...]:
    spans = [(c, c.range) for c in cols if c.count > 0 and c.range > 0]
    if len(spans) < 2:
        return ()
    ref, ref_range = min(spans, key=lambda t: t[1])
    return tuple(
        ScaleWarning(c.name, r, ref.name, ref_range, r / ref_range)
        for c, r in spans
        if r > limit * ref_range
    )


def audit(
    X: Any,
    feature_names: Sequence[str] | None = None,
    scale_ratio_limit: float = SCALE_RATIO_LIMIT,
    *,
    categorical: Sequence[str] = (),
    min_frequency: float = RARE_FREQUENCY,
) -> AuditReport:
    """Describe every column of ``X`` and recommend a scaling chain for it.

    ``X`` may be a table of mixed columns (a dict of columns such as ``Dataset.frame()``,
    or a DataFrame): its text columns, and those named in ``categorical``, get a
    :class:`CategoricalAudit` each (missing cells -- None, NaN, "" --, the number of
    levels, the levels seen in fewer than ``min_frequency`` of the rows, the most
    frequent ones, and the one-hot encoding that follows), the number columns the
    statistics below. Every column reports its missing fraction.

    Statistics are over each column's finite values (NaN and inf are counted
    separately). The recommendation, in order of precedence:

    - no finite values, or a constant column: nothing (consider dropping it);
    - values already within about [-1, 1]: nothing;
    - a heavy right tail of non-negative values (skew > 1, and log1p at least
      halves it): ``log -> linear`` (with ``clip(q=0,0.99)`` first if still skewed);
    - extreme outliers (beyond 3 IQR from the quartiles and over 5 times farther
      from the median than the 1st/99th percentile): ``clip(q=...) -> linear``,
      clipping only the side(s) that have them;
    - more than 1% of values outside the 1.5 IQR fences: ``zscore``;
    - otherwise: ``linear`` (min-max to [-1, 1]).

    Columns whose range is over ``scale_ratio_limit`` (100) times the smallest
    column range are listed in ``scale_ratio_warnings``.

    >>> import numpy as np
    >>> from gradwell.preprocessing import audit
    >>> rng = np.random.default_rng(0)
    >>> X = {"rooms": rng.lognormal(7, 1, 1000), "lat": rng.uniform(32, 42, 1000)}
    >>> report = audit(X)
    >>> report.recommendations
    {'rooms': 'log -> linear', 'lat': 'linear'}
    >>> len(report.scale_ratio_warnings)
    1
    """
    if categorical or _has_text(X):
        return _audit_table(X, categorical, scale_ratio_limit, min_frequency)
    m = as_matrix(X, "audit", feature_names)
    require_rows(m.values, "audit")
    names = m.names or tuple(f"x{j}" for j in range(m.values.shape[1]))
    stats = _column_stats(m.values)
    cols = []
    for j, name in enumerate(names):
        s = {k: float(v[j]) for k, v in stats.items()}
        steps, reason = recommend(s)
        pipe = Pipeline(steps)
        cols.append(
            ColumnAudit(
                name=name,
                index=j,
                count=int(s["count"]),
                nan_count=int(s["nan_count"]),
                inf_count=int(s["inf_count"]),
                min=s["min"],
                max=s["max"],
                mean=s["mean"],
                std=s["std"],
                median=s["median"],
                q1=s["q1"],
                q3=s["q3"],
                p01=s["p01"],
                p99=s["p99"],
                skewness=s["skewness"],
                outlier_fraction=s["outlier_fraction"],
                far_outlier_fraction=s["far_outlier_fraction"],
                zero_fraction=s["zero_fraction"],
                negative_fraction=s["negative_fraction"],
                chain=tuple(step.to_config() for step in steps),
                chain_string=pipe.spec() if steps else "none",
                reason=reason,
            )
        )
    return AuditReport(m.values.shape[0], tuple(cols), _scale_warnings(cols, scale_ratio_limit))


def _has_text(X: Any) -> bool:
    if hasattr(X, "dtypes") and hasattr(X, "columns"):  # a DataFrame
        return any(getattr(d, "kind", "O") in "OUS" for d in X.dtypes)
    return isinstance(X, dict) and any(is_text(np.asarray(v)) for v in X.values())


def _audit_table(
    X: Any, categorical: Sequence[str], scale_ratio_limit: float, min_frequency: float
) -> AuditReport:
    names, columns = as_columns(X, "audit")
    unknown = [n for n in categorical if n not in names]
    if unknown:
        raise KeyError(f"audit: categorical columns {unknown} are not in the table {names}")
    text = {n: c for n, c in zip(names, columns, strict=True) if n in categorical or is_text(c)}
    numbers = {n: c.astype(np.float64) for n, c in zip(names, columns, strict=True)
               if n not in text}  # fmt: skip
    if numbers:
        report = audit(numbers, scale_ratio_limit=scale_ratio_limit)
    else:
        require_rows(np.empty((len(columns[0]) if columns else 0, 1)), "audit")
        report = AuditReport(len(columns[0]), ())
    levels = tuple(audit_levels(n, c, min_frequency) for n, c in text.items())
    return AuditReport(report.n_rows, report.columns, report.scale_ratio_warnings, levels)
