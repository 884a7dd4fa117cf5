"""The doctor's self-contained HTML report: one file, plots embedded, no network."""

from __future__ import annotations

import html
import math
from typing import Any

from . import plots
from .findings import Finding
from .report import Report, activation_rows, chain_text, fmt_value, layer_rows

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:980px;color:#222;line-height:1.45;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;
margin-top:1.8em} .muted{color:#666}
.finding{border:1px solid #ddd;border-left:6px solid #999;border-radius:4px;padding:.6em 1em;
margin:1em 0} .finding.critical{border-left-color:#c0392b} .finding.warning{border-left-color:
#d68910} .finding.info{border-left-color:#2874a6}
.badge{display:inline-block;color:#fff;border-radius:3px;padding:0 .45em;font-size:.8em;
font-weight:600;text-transform:uppercase;margin-right:.4em}
.badge.critical{background:#c0392b} .badge.warning{background:#d68910}
.badge.info{background:#2874a6} code{background:#f4f4f4;padding:0 .25em;border-radius:3px}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0} th,td{border:1px solid #ddd;
padding:.2em .5em;text-align:left;vertical-align:top} th{background:#f7f7f7}
td.num{text-align:right;font-variant-numeric:tabular-nums} img{max-width:100%}
ol.remedies li{margin:.2em 0} .ok{color:#1e8449;font-weight:600}
"""


def _e(x: Any) -> str:
    return html.escape(str(x))


def _num(v: Any) -> str:
    if v is None:  # does not apply, or not measured
        return "-"
    if isinstance(v, float) and not math.isfinite(v):
        return "-" if math.isnan(v) else str(v)
    return _e(fmt_value(v))


def _finding_html(f: Finding) -> str:
    when = []
    if f.epoch is not None:
        when.append(f"epoch {f.epoch + 1}")
    if f.step is not None:
        when.append(f"step {f.step}")
    ev_rows = "".join(
        f"<tr><th>{_e(k)}</th><td>{_e(fmt_value(v, 1))}</td></tr>" for k, v in f.evidence.items()
    )
    remedies = "".join(f"<li>{_e(r)}</li>" for r in f.remedies)
    return (
        f'<div class="finding {f.severity}"><div><span class="badge {f.severity}">'
        f"{f.severity}</span><strong>{_e(f.kind)}</strong> at <code>{_e(f.where)}</code> "
        f'<span class="muted">{_e(", ".join(when))}</span></div>'
        + (f'<p class="muted">{_e(chain_text(f))}</p>' if chain_text(f) else "")
        + f"<p>{_e(f.explanation)}</p>"
        f"<details><summary>evidence</summary><table>{ev_rows}</table></details>"
        + (
            f'<p><strong>Remedies</strong>, most promising first:</p><ol class="remedies">'
            f"{remedies}</ol>"
            if remedies
            else ""
        )
        + "</div>"
    )


def _table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    if not rows:
        return ""
    head = "".join(f"<th>{_e(h)}</th>" for _, h in columns)
    body = ""
    for r in rows:
        cells = "".join(
            f'<td class="num">{_num(r[k])}</td>'
            if not isinstance(r[k], str)
            else f"<td>{_e(r[k])}</td>"
            for k, _ in columns
        )
        body += f"<tr>{cells}</tr>"
    return f"<table><tr>{head}</tr>{body}</table>"


def _figure(fig: Any, alt: str) -> str:
    if fig is None:
        return ""
    return f'<p><img alt="{_e(alt)}" src="{plots.png_base64(fig)}"></p>'


def _audit_html(report: Any) -> str:
    cols = [
        ("name", "column"),
        ("min", "min"),
        ("p01", "1st pct"),  # the percentiles the unscaled_features finding quotes
        ("p99", "99th pct"),
        ("max", "max"),
        ("mean", "mean"),
        ("std", "std"),
        ("skewness", "skew"),
        ("outlier_fraction", "outliers"),
        ("chain_string", "recommended"),
        ("reason", "why"),
    ]
    rows = [{k: getattr(c, k) for k, _ in cols} for c in list(report.columns)[:200]]
    more = (
        f'<p class="muted">{len(report.columns) - 200} more columns not shown.</p>'
        if len(report.columns) > 200
        else ""
    )
    warnings = "".join(f"<li>{_e(w.message)}</li>" for w in report.scale_ratio_warnings[:20])
    return (
        f"<p>{report.n_rows} rows audited, {len(report.columns)} columns.</p>"
        + _table(rows, cols)
        + more
        + (f"<p>Scale warnings:</p><ul>{warnings}</ul>" if warnings else "")
    )


def html_report(report: Report) -> str:
    """The whole report as one HTML string."""
    tr, prof = report.trace, report.profile
    findings = list(report.findings)
    serious = [f for f in findings if f.rank >= 1]
    verdict = (
        '<p class="ok">No problems found.</p>'
        if not serious
        else f"<p><strong>{len(serious)} problem{'s' if len(serious) > 1 else ''}</strong> "
        f"found.</p>"
    )
    lr = ", ".join(f"{x:.3g}" for x in prof.lrs) or "?"
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width,initial-scale=1'>",
        f"<title>gradwell doctor report</title><style>{_CSS}</style></head><body>",
        "<h1>gradwell training doctor</h1>",
        f'<p class="muted">{len(tr.loss)} steps, {len(tr.epochs)} epochs, {tr.n_samples} '
        f"sampled steps (every {report.sample_every}); optimizer {_e(prof.optimizer or '?')} "
        f"(lr {_e(lr)}); {len(prof.layers)} layer{'s' if len(prof.layers) != 1 else ''} with "
        "weights.</p>",
        verdict,
        "<h2>Findings</h2>",
        "".join(_finding_html(f) for f in findings) or "<p>No detector fired.</p>",
        "<h2>Loss</h2>",
        _figure(plots.loss_figure(report), "loss curves"),
        _figure(plots.metrics_figure(report), "metric curves"),
        "<h2>Gradients</h2>",
        _figure(plots.grad_heatmap_figure(report), "gradient norm heatmap"),
        _figure(plots.signal_figure(report), "gradient by depth"),
        _figure(plots.update_ratio_figure(report), "update to weight ratio"),
        _table(
            layer_rows(report),
            [
                ("parameter", "parameter"),
                ("type", "layer"),
                ("grad_norm", "median grad norm"),
                ("signal", "grad RMS at output"),
                ("update_ratio", "update/weight"),
            ],
        ),
        "<h2>Activations</h2>",
        _figure(plots.activation_figure(report), "dead and saturated units"),
        _table(
            activation_rows(report),
            [
                ("module", "module"),
                ("type", "type"),
                ("units", "units"),
                ("dead_fraction", "dead"),
                ("pinned_fraction", "pinned"),
                ("active_fraction", "active"),
                ("saturated_fraction", "saturated"),
            ],
        ),
        "<h2>Feature audit</h2>",
        _audit_html(report.audit_report)
        if report.audit_report is not None
        else "<p>No feature audit (the inputs were not available as an array).</p>",
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p)
