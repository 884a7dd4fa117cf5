"""The doctor's findings and measurements as text (the summary after fit, the report).

Every report (text here, HTML and plots beside it) reads a :class:`Report`: a frozen
value the Doctor hands out (``doctor.snapshot()``), never the Doctor itself.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from typing import Any

import numpy as np

from .findings import Finding
from .profile import ModelProfile
from .trace import Trace, finite_median


@dataclass(frozen=True)
class Report:
    """What a report shows: the findings (root causes first), the measurements, the
    model's profile, the feature audit (or None) and the sampling interval."""

    findings: tuple[Finding, ...]
    trace: Trace
    profile: ModelProfile
    audit_report: Any = None
    sample_every: int = 1


def fmt_value(v: Any, depth: int = 0) -> str:
    """Short text for an evidence value: floats to 3 significant digits, long lists cut."""
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if not math.isfinite(v):
            return str(v)
        return f"{v:.3g}"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, dict):
        if depth >= 1:
            items = list(v.items())
            body = ", ".join(f"{k}={fmt_value(x, depth + 1)}" for k, x in items[:6])
            return "{" + body + (", ..." if len(items) > 6 else "") + "}"
        return "; ".join(f"{k}: {fmt_value(x, depth + 1)}" for k, x in v.items())
    if isinstance(v, (list, tuple)):
        body = ", ".join(fmt_value(x, depth + 1) for x in list(v)[:8])
        return "[" + body + (", ..." if len(v) > 8 else "") + "]"
    return str(v)


def table_cell(v: Any) -> str:
    """A table cell: text as it is, None (does not apply, not measured) as "-"."""
    if v is None:
        return "-"
    return v if isinstance(v, str) else fmt_value(v)


def evidence_lines(ev: dict[str, Any]) -> list[str]:
    return [f"{k}: {fmt_value(v, 1)}" for k, v in ev.items()]


def chain_text(f: Finding) -> str:
    """'caused by: a; led to: b, c' (empty when the finding stands alone)."""
    parts = []
    if f.caused_by:
        parts.append("caused by: " + ", ".join(f.caused_by))
    if f.consequences:
        parts.append("led to: " + ", ".join(f.consequences))
    return "; ".join(parts)


def finding_text(f: Finding, number: int | None = None, width: int = 96) -> str:
    when = []
    if f.epoch is not None:
        when.append(f"epoch {f.epoch + 1}")
    if f.step is not None:
        when.append(f"step {f.step}")
    head = f"[{f.severity}] {f.kind} at {f.where}" + (f" ({', '.join(when)})" if when else "")
    if number is not None:
        head = f"{number}. {head}"
    wrap = textwrap.TextWrapper(width=width, initial_indent="   ", subsequent_indent="   ")
    lines = [head]
    if chain_text(f):
        lines.append(f"   ({chain_text(f)})")
    lines += [wrap.fill(f.explanation), "   evidence:"]
    ev_wrap = textwrap.TextWrapper(width=width, initial_indent="     ", subsequent_indent="       ")
    lines += [ev_wrap.fill(line) for line in evidence_lines(f.evidence)]
    if f.remedies:
        lines.append("   remedies (most promising first):")
        rw = textwrap.TextWrapper(width=width, subsequent_indent="        ")
        lines += [rw.fill(f"     {i}. {r}") for i, r in enumerate(f.remedies, 1)]
    return "\n".join(lines)


def _counts(findings: list[Finding]) -> str:
    parts = []
    for sev in ("critical", "warning", "info"):
        n = sum(f.severity == sev for f in findings)
        if n:
            parts.append(f"{n} {sev}")
    return ", ".join(parts) if parts else "none"


def summary_lines(report: Report) -> list[str]:
    """What fit prints at the end: a verdict, then one line per warning/critical root
    cause, each followed by the problems it led to."""
    findings = list(report.findings)
    serious = [f for f in findings if f.rank >= 1]
    n = report.trace.n_samples
    if not serious:
        info = sum(f.severity == "info" for f in findings)
        extra = f" ({info} informational note{'s' if info != 1 else ''})" if info else ""
        return [f"doctor: no problems found in {n} sampled steps{extra}."]
    lines = [
        f"doctor: {len(serious)} problem{'s' if len(serious) > 1 else ''} found "
        f"({_counts(findings)}), root causes first:"
    ]
    by_id = {f.id: f for f in findings}
    shown: set[str] = set()

    def show(f: Finding, depth: int) -> None:
        shown.add(f.id)
        if depth == 0:
            lines.append("  " + f.headline())
        else:
            when = (
                f" (epoch {f.epoch + 1}, step {f.step})"
                if f.step is not None and f.epoch is not None
                else ""
            )
            lines.append(
                "  " + "    " * depth + f"which led to: [{f.severity}] {f.kind} at {f.where}{when}"
            )
        for c in f.consequences:
            if c in by_id and c not in shown and by_id[c].rank >= 1:
                show(by_id[c], depth + 1)

    for f in serious:
        if f.id not in shown and not any(c in by_id and by_id[c].rank >= 1 for c in f.caused_by):
            show(f, 0)
    for f in serious:  # (a consequence whose causes are all mild stands on its own)
        if f.id not in shown:
            show(f, 0)
    lines.append(
        "  details: history.findings, history.doctor.report(), "
        "history.doctor.save_html('report.html')"
    )
    return lines


def layer_rows(report: Report) -> list[dict[str, Any]]:
    """One row per parameter: median gradient norm, update ratio, and its layer's signal."""
    tr, prof = report.trace, report.profile
    rows = []
    for name, series in tr.grad_norm.items():
        module = prof.param_module.get(name, "")
        rows.append(
            {
                "parameter": name,
                "module": module,
                "type": prof.types.get(module, ""),
                "grad_norm": finite_median(series),
                "grad_norm_last": series[-1] if series else math.nan,
                "signal": finite_median(tr.signal.get(module, [])),
                # measured on weight matrices only (a bias starts at 0): None, not nan
                "update_ratio": finite_median(tr.update_ratio[name])
                if name in tr.update_ratio
                else None,
            }
        )
    return rows


def activation_rows(report: Report) -> list[dict[str, Any]]:
    rows = []
    for path, a in report.trace.activations.items():
        w = a.windows[-1] if a.windows else None
        rows.append(
            {
                "module": path,
                "type": report.profile.types.get(path, a.kind),
                "units": a.units,
                # None where a column does not apply to this kind of unit (printed "-")
                "dead_fraction": w["dead_fraction"] if w and a.kind == "relu" else None,
                "pinned_fraction": w["pinned_fraction"] if w and a.kind != "relu" else None,
                "active_fraction": finite_median(a.active_fraction) if a.kind == "relu" else None,
                "saturated_fraction": finite_median(a.saturated_fraction),
                "windows": len(a.windows),
            }
        )
    return rows


def _table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> list[str]:
    if not rows:
        return []
    cells = [[table_cell(r[k]) for k, _ in columns] for r in rows]
    heads = [h for _, h in columns]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(heads)]
    out = [
        "  ".join(h.ljust(w) for h, w in zip(heads, widths)).rstrip(),
        "  ".join("-" * w for w in widths),
    ]
    out += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    return out


def text_report(report: Report) -> str:
    tr, prof = report.trace, report.profile
    findings = list(report.findings)
    lines = ["gradwell training doctor", "=" * 24]
    lr = ", ".join(f"{x:.3g}" for x in prof.lrs) if prof.lrs else "?"
    lines.append(
        f"run: {len(tr.loss)} steps, {len(tr.epochs)} epochs, {tr.n_samples} sampled steps "
        f"(every {report.sample_every}); optimizer: {prof.optimizer or '?'} (lr {lr}); "
        f"{len(prof.layers)} layer{'s' if len(prof.layers) != 1 else ''} with weights"
    )
    if tr.loss:
        finite = [x for x in tr.loss if math.isfinite(x)]
        if finite:
            lines.append(
                f"loss: first {tr.loss[0]:.4g}, best {min(finite):.4g}, last {tr.loss[-1]:.4g}"
            )
    lines += ["", f"findings: {_counts(findings)}", "-" * 40]
    if not findings:
        lines.append("none: no detector fired.")
    for i, f in enumerate(findings, 1):
        lines += [finding_text(f, i), ""]
    rows = layer_rows(report)
    if rows:
        lines += ["", "per-parameter gradients (medians over sampled steps)"]
        lines += _table(
            rows,
            [
                ("parameter", "parameter"),
                ("type", "layer"),
                ("grad_norm", "grad norm"),
                ("signal", "grad rms at output"),
                ("update_ratio", "update/weight"),
            ],
        )
    arows = activation_rows(report)
    if arows:
        lines += ["", "activations (latest window; medians over sampled steps)"]
        lines += _table(
            arows,
            [
                ("module", "module"),
                ("type", "type"),
                ("units", "units"),
                ("dead_fraction", "dead"),
                ("pinned_fraction", "pinned"),
                ("active_fraction", "active"),
                ("saturated_fraction", "saturated"),
            ],
        )
    if tr.batchnorm:
        lines += ["", "BatchNorm running statistics (at the last diagnosis)"]
        bn_rows = [
            {
                "module": p,
                "rms_running_mean": d["rms_running_mean"][-1],
                "mean_running_var": d["mean_running_var"][-1],
                "min_running_var": d["min_running_var"][-1],
                "mean_shift": d["mean_shift"][-1] if d.get("mean_shift") else float("nan"),
                "var_ratio": d["var_ratio"][-1] if d.get("var_ratio") else float("nan"),
            }
            for p, d in tr.batchnorm.items()
            if d["step"]
        ]
        lines += _table(
            bn_rows,
            [
                ("module", "module"),
                ("rms_running_mean", "RMS of running_mean"),
                ("mean_running_var", "mean running_var"),
                ("min_running_var", "min running_var"),
                ("mean_shift", "mean off (batch std)"),
                ("var_ratio", "running / batch var"),
            ],
        )
    audit = report.audit_report
    if audit is not None:
        lines += [""]
        if len(audit.columns) <= 40:
            lines.append(str(audit))
        else:
            lines.append(
                f"feature audit: {audit.n_rows} rows, {len(audit.columns)} columns "
                f"({len(audit.scale_ratio_warnings)} scale warnings)"
            )
    return "\n".join(lines).rstrip() + "\n"
