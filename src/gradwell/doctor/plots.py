"""Matplotlib figures for the doctor's reports, embedded as base64 PNG (no network, no files).

matplotlib is imported only here, and only when a plot is drawn: importing gradwell
stays fast. Figures are built with ``matplotlib.figure.Figure`` (no pyplot), so no
global backend or window is touched.
"""

from __future__ import annotations

import base64
import io
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from .findings import severity_rank

if TYPE_CHECKING:
    from .report import Report

#: Severity colours shared by the HTML and the plots.
COLORS = {"critical": "#c0392b", "warning": "#d68910", "info": "#2874a6"}


def new_figure(width: float = 7.5, height: float = 3.2) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    return fig


def png_base64(fig: Any) -> str:
    """The figure as a data URI (PNG, base64)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _finite(a: Any) -> np.ndarray:
    x = np.asarray(a, dtype=np.float64)
    return np.where(np.isfinite(x), x, np.nan)


def loss_figure(doctor: Report) -> Any | None:
    tr = doctor.trace
    if not tr.loss:
        return None
    fig = new_figure()
    ax = fig.add_subplot()
    steps = np.arange(len(tr.loss))
    loss = _finite(tr.loss)
    ax.plot(steps, loss, color="#95a5a6", lw=0.8, label="loss per step")
    ends = [e["end_step"] for e in tr.epochs if e.get("loss") is not None]
    if ends:
        ax.plot(
            ends,
            [e["loss"] for e in tr.epochs if e.get("loss") is not None],
            "o-",
            color="#2c3e50",
            label="training loss (epoch)",
        )
    vals = [(e["end_step"], e["val_loss"]) for e in tr.epochs if e.get("val_loss") is not None]
    if vals:
        ax.plot(*zip(*vals), "s-", color="#8e44ad", label="validation loss (epoch)")
    for step, kinds, severity in onsets(doctor.findings, len(tr.loss)):
        ax.axvline(step, color=COLORS[severity], ls=":", lw=1)
        ax.annotate(", ".join(kinds), (step, 1.0), xycoords=("data", "axes fraction"),
                    xytext=(2, -2), textcoords="offset points", rotation=90, va="top",
                    ha="left", fontsize=7, color=COLORS[severity])  # fmt: skip
    bad = [i for i, v in enumerate(tr.loss) if not math.isfinite(v)]
    if bad:
        ax.axvline(bad[0], color=COLORS["critical"], ls="--", label=f"first non-finite ({bad[0]})")
    positive = loss[np.isfinite(loss)]
    if positive.size and positive.min() > 0 and positive.max() / positive.min() > 50:
        ax.set_yscale("log")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    outside_legend(ax)
    ax.set_title("Loss")
    return fig


def onsets(findings: Any, n_steps: int) -> list[tuple[int, list[str], str]]:
    """Where the warning/critical problems began: (step, kinds, worst severity), one entry per
    group of onsets closer than 2% of the run, so that their labels never overprint."""
    marks = sorted(
        (f.step, f.kind, f.severity)
        for f in findings
        if f.rank >= 1 and f.step is not None and 0 <= f.step < n_steps
    )
    gap = max(1, n_steps // 50)
    groups: list[tuple[int, list[str], str]] = []
    for step, kind, severity in marks:
        if groups and step - groups[-1][0] <= gap:
            first, kinds, worst = groups[-1]
            if kind not in kinds:
                kinds.append(kind)
            if severity_rank(severity) > severity_rank(worst):
                groups[-1] = (first, kinds, severity)
        else:
            groups.append((step, [kind], severity))
    return groups


def outside_legend(ax: Any, max_entries: int = 10) -> None:
    """The legend beside the axes, never over the lines; past ``max_entries`` the rest are
    summed up in a last entry."""
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return
    if len(handles) > max_entries:
        from matplotlib.lines import Line2D

        extra = len(handles) - (max_entries - 1)
        handles = handles[: max_entries - 1] + [Line2D([], [], ls="none")]
        labels = labels[: max_entries - 1] + [f"and {extra} more"]
    ax.legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0),
              borderaxespad=0.0, frameon=False)  # fmt: skip


def metrics_figure(doctor: Report) -> Any | None:
    """Each metric per epoch (training solid, validation dashed), with the onsets marked."""
    epochs = [e for e in doctor.trace.epochs if e.get("metrics")]
    if not epochs:
        return None
    names = sorted({k.removeprefix("val_") for e in epochs for k in e["metrics"]})
    fig = new_figure(7.5, 2.8)
    ax = fig.add_subplot()
    for i, name in enumerate(names):
        color = f"C{i % 10}"
        for key, style, what in ((name, "o-", "training"), (f"val_{name}", "s--", "validation")):
            pts = [(e["end_step"], e["metrics"][key]) for e in epochs if key in e["metrics"]]
            if pts:
                ax.plot(*zip(*pts), style, color=color, lw=1, ms=3, label=f"{name} ({what})")
    n_steps = len(doctor.trace.loss)
    for step, _, severity in onsets(doctor.findings, n_steps):
        ax.axvline(step, color=COLORS[severity], ls=":", lw=1)
    ax.set_xlim(-0.5, max(n_steps - 0.5, 0.5))
    ax.set_xlabel("optimizer step (end of each epoch)")
    ax.set_ylabel("metric")
    ax.set_title("Metrics per epoch")
    outside_legend(ax)
    return fig


def grad_heatmap_figure(doctor: Report) -> Any | None:
    tr = doctor.trace
    if not tr.grad_norm or not tr.samples:
        return None
    names = list(tr.grad_norm)
    m = np.array([tr.grad_norm[n] for n in names], dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        logm = np.log10(m)
    logm[~np.isfinite(logm)] = np.nan
    fig = new_figure(7.5, max(2.0, 0.28 * len(names) + 1.2))
    ax = fig.add_subplot()
    im = ax.imshow(logm, aspect="auto", interpolation="nearest", cmap="viridis")
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ticks = np.linspace(0, len(tr.samples) - 1, min(8, len(tr.samples))).astype(int)
    ax.set_xticks(ticks, [str(tr.samples[i]) for i in ticks], fontsize=7)
    ax.set_xlabel("sampled step")
    fig.colorbar(im, ax=ax, label="log10 gradient norm")
    ax.set_title("Gradient norm per parameter (input at the top)")
    return fig


def signal_figure(doctor: Report) -> Any | None:
    tr, prof = doctor.trace, doctor.profile
    layers = [p for p in prof.layers if p in tr.signal]
    if len(layers) < 2:
        return None
    med = []
    for p in layers:
        v = _finite(tr.signal[p])
        v = v[np.isfinite(v) & (v > 0)]
        med.append(float(np.median(v)) if v.size else np.nan)
    fig = new_figure(7.5, 2.8)
    ax = fig.add_subplot()
    ax.plot(range(len(layers)), med, "o-", color="#16a085")
    ax.set_yscale("log")
    ax.set_xticks(range(len(layers)), layers, fontsize=7, rotation=30)
    ax.set_ylabel("gradient RMS at layer output")
    ax.set_title("Back-propagated gradient by depth (median over sampled steps)")
    return fig


def activation_figure(doctor: Report) -> Any | None:
    acts = doctor.trace.activations
    if not acts:
        return None
    fig = new_figure(7.5, 3.0)
    ax = fig.add_subplot()
    for path, a in acts.items():
        if not a.steps:
            continue
        if a.kind == "relu":
            ax.plot(a.steps, a.silent_fraction, lw=1, label=f"{path} silent on batch")
            if a.windows:
                ax.plot(
                    [w["end_step"] for w in a.windows],
                    [w["dead_fraction"] for w in a.windows],
                    "o--",
                    label=f"{path} dead in window",
                )
        else:
            ax.plot(a.steps, a.saturated_fraction, lw=1, label=f"{path} saturated")
            if a.windows:
                ax.plot(
                    [w["end_step"] for w in a.windows],
                    [w["pinned_fraction"] for w in a.windows],
                    "o--",
                    label=f"{path} pinned in window",
                )
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("fraction of units")
    ax.set_title("Dead (ReLU) and saturated (sigmoid/tanh) units per layer")
    outside_legend(ax)
    return fig


def update_ratio_figure(doctor: Report) -> Any | None:
    tr = doctor.trace
    if not tr.update_ratio or not tr.samples:
        return None
    fig = new_figure(7.5, 2.8)
    ax = fig.add_subplot()
    drawn = False
    for name, series in tr.update_ratio.items():
        v = _finite(series)
        if np.isfinite(v).any() and np.nanmax(v) > 0:
            ax.plot(tr.samples[: len(v)], v, lw=1, label=name)
            drawn = True
    if not drawn:
        return None
    ax.set_yscale("log")
    ax.axhline(1e-3, color="#7f8c8d", ls=":", lw=1)
    ax.set_xlabel("sampled step")
    ax.set_ylabel("|update| / |weight|")
    ax.set_title("Update-to-weight ratio (about 1e-3 is typical)")
    outside_legend(ax)
    return fig
