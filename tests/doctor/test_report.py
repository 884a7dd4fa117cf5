"""Findings as records; the text, JSON and HTML reports; prescriptions phrased for the run."""

from __future__ import annotations

import json
import math
import os
import re

import numpy as np
import pytest
from doctor.kit import dataset, mlp, optimizer, train

import gradwell as gw
from gradwell.doctor import KINDS, Finding
from gradwell.doctor import prescriptions as rx
from gradwell.doctor.profile import ModelProfile
from gradwell.doctor.report import fmt_value


@pytest.fixture(scope="module")
def sick_doctor():
    """A run with several problems: unscaled inputs, a deep sigmoid stack, dropout 0.95."""
    X, y, C = dataset("blobs", 0)
    X = X.copy()
    X[:, 0] *= 500
    model = mlp(X.shape[1], [16] * 6, C, "Sigmoid", seed=0)
    model = gw.nn.Sequential(*list(model)[:-1], gw.nn.Dropout(0.95, rng=0), list(model)[-1])
    names = [f"feature_{i}" for i in range(X.shape[1])]
    doctor = gw.doctor.Doctor(verbose=False, raise_errors=True, feature_names=names)
    train(model, X, y, optimizer("sgd", model, 0.5), epochs=3, doctor=doctor,
          validation=(X[:100], y[:100]))  # fmt: skip
    return doctor


# --------------------------------------------------------------------------- Finding


def test_finding_validates_kind_and_severity_and_round_trips():
    f = Finding("dead_relu", "warning", "layers.1, layers.3", 40, 2, {"dead_fraction": 0.5,
                "peak": math.inf, "a": np.float32(1.5)}, "Half are dead. More text.",
                ["lower the learning rate from 0.5 to 0.05"], [{"action": "scale_lr"}])  # fmt: skip
    d = f.to_dict()
    assert d["evidence"] == {"dead_fraction": 0.5, "peak": "inf", "a": 1.5}
    json.dumps(d, allow_nan=False)  # strict JSON
    assert Finding.from_dict(d).to_dict() == d
    assert f.locations == ["layers.1", "layers.3"]
    assert f.headline() == (
        "[warning] dead_relu at layers.1, layers.3 (epoch 3, step 40): Half are dead -> "
        "lower the learning rate from 0.5 to 0.05"
    )
    with pytest.raises(ValueError, match="kind must be one of"):
        Finding("dead_units", "warning", "x", None, None, {}, "", [])
    with pytest.raises(ValueError, match="severity must be one of"):
        Finding("dead_relu", "error", "x", None, None, {}, "", [])
    assert len(KINDS) == 17
    linked = Finding("stalled_training", "warning", "model", 9, 1, {}, "Flat.", [], [],
                     caused_by=["dead_relu"])  # fmt: skip
    assert Finding.from_dict(linked.to_dict()).caused_by == ["dead_relu"]
    assert linked.id == "stalled_training" and "(caused by dead_relu)" in linked.headline()


# --------------------------------------------------------------------------- prescriptions


def test_remedies_name_the_actual_values():
    prof = ModelProfile(lrs=[0.5])
    assert rx.change_lr(prof, 0.1).text == "lower the learning rate from 0.5 to 0.05"
    assert rx.change_lr(prof, 100).text == "raise the learning rate from 0.5 to 50"
    two = ModelProfile(lrs=[0.1, 0.01])
    assert rx.change_lr(two, 0.1).text == (
        "lower the learning rates: 0.1 to 0.01 (group 0), 0.01 to 0.001 (group 1)"
    )
    assert rx.replace_activation(["layers.1", "layers.3"], "Sigmoid", "Tanh").text.startswith(
        "replace Sigmoid at layers.1, layers.3 with Tanh and use Glorot (Xavier) init"
    )
    assert rx.add_batchnorm(["layers.0"]).text.startswith("add BatchNorm1d after layers.0")
    assert rx.clip_grad_norm(1.0).text.startswith("clip the gradient norm at 1 ")
    assert rx.chain_sentence("population", "log -> linear") == (
        "log-scale column population, then linear-scale it"
    )
    assert rx.chain_sentence("income", "clip(q=0,0.99) -> log -> linear") == (
        "cap column income at the 99th percentile, then log-scale it, then linear-scale it"
    )
    assert rx.chain_sentence("age", "zscore") == "z-score column age"
    assert [rx.nice(x) for x in (0.013, 1.7, 2.9, 4.2, 8.0, 180.0)] == [
        0.01, 2.0, 2.0, 5.0, 10.0, 200.0
    ]  # fmt: skip


# --------------------------------------------------------------------------- reports


def test_text_report_has_every_finding_with_evidence_and_remedies(sick_doctor):
    text = sick_doctor.report()
    kinds = {f.kind for f in sick_doctor.findings}
    assert {"unscaled_features", "vanishing_gradients", "dropout_misconfigured"} <= kinds
    for f in sick_doctor.findings:
        assert f"{f.kind} at {f.where}" in text
        assert f.remedies[0][:60] in text.replace("\n        ", " ")
    assert "per-parameter gradients" in text and "feature audit" in text
    assert "feature_0" in text


def test_json_is_strict_and_complete(sick_doctor, tmp_path):
    path = tmp_path / "doctor.json"
    text = sick_doctor.to_json(path)
    data = json.loads(path.read_text())
    assert data == json.loads(text)
    assert [f["kind"] for f in data["findings"]] == [f.kind for f in sick_doctor.findings]
    assert data["trace"]["samples"] == list(sick_doctor.trace.samples)
    assert data["audit"]["columns"][0]["name"] == "feature_0"
    assert not re.search(r"[:\[,]\s*(NaN|-?Infinity)\b", text)  # strict JSON numbers


def test_html_report_is_self_contained(sick_doctor, tmp_path):
    path = tmp_path / "report.html"
    assert sick_doctor.save_html(path) == str(path)
    html = path.read_text()
    assert html.startswith("<!DOCTYPE html>")
    # no network: every image is embedded, nothing is fetched
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert "<script" not in html
    assert len(re.findall(r'src="data:image/png;base64,', html)) >= 4  # loss, heatmap, ...
    for f in sick_doctor.findings:
        assert f"<strong>{f.kind}</strong>" in html
    assert "Feature audit" in html and "feature_0" in html
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]  # no temporary left


def test_failed_write_leaves_nothing_behind(sick_doctor, tmp_path, monkeypatch):
    import gradwell.doctor.doctor as doctor_module

    def boom(report):
        raise RuntimeError("plotting failed")

    monkeypatch.setattr(doctor_module, "html_report", boom)
    target = tmp_path / "report.html"
    target.write_text("the previous report")
    with pytest.raises(RuntimeError, match="plotting failed"):
        sick_doctor.save_html(target)
    assert target.read_text() == "the previous report"
    assert os.listdir(tmp_path) == ["report.html"]


def test_healthy_report_says_so(tmp_path):
    X, y, C = dataset("blobs", 0)
    model = mlp(X.shape[1], [16], C, seed=0)
    history = train(model, X, y, optimizer("adam", model, 0.01), epochs=2)
    html = open(history.doctor.save_html(tmp_path / "ok.html")).read()
    assert "No problems found." in html
    assert "findings: none" in history.doctor.report()


# --------------------------------------------------------------------------- report details


def _section(text: str, title: str) -> list[str]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].strip()), len(lines))
    return lines[start + 3 : end]  # past the title, the header and the rule


def test_tables_print_a_dash_where_a_number_does_not_apply(sick_doctor):
    text = sick_doctor.report()
    params = _section(text, "per-parameter gradients")
    biases = [line.split() for line in params if line.split()[0].endswith(".bias")]
    weights = [line.split() for line in params if line.split()[0].endswith(".weight")]
    assert biases and weights
    # the update ratio is measured on weight matrices only: a bias shows "-", never "nan"
    assert all(row[-1] == "-" for row in biases)
    assert all(math.isfinite(float(row[-1])) for row in weights)
    acts = _section(text, "activations")
    assert acts and all("nan" not in line.split() for line in acts)
    assert all(line.split()[3] == "-" for line in acts)  # "dead" does not apply to Sigmoid


def test_onsets_at_nearby_steps_share_one_label():
    from gradwell.doctor.plots import onsets

    def at(kind, step, severity="warning"):
        return Finding(kind, severity, "x", step, 0, {}, "", [])

    findings = [at("dead_relu", 11), at("exploding_gradients", 10, "critical"),
                at("overfitting", 12, "info"), at("vanishing_gradients", 60),
                at("unscaled_features", None, "critical"), at("nan_trap", 400)]  # fmt: skip
    # 2% of 100 steps: 10 and 11 are one group (the worse severity wins); info, no step, or
    # past the end of the run are not marked
    assert onsets(findings, 100) == [
        (10, ["exploding_gradients", "dead_relu"], "critical"),
        (60, ["vanishing_gradients"], "warning"),
    ]
    assert [s for s, _, _ in onsets(findings, 2000)] == [10, 60, 400]  # 40 steps apart at most
    assert [s for s, _, _ in onsets(findings, 20)] == [10]  # one step apart at most


def test_html_audit_shows_the_percentiles_the_scaling_finding_quotes(sick_doctor):
    from gradwell.doctor.html import html_report

    html = html_report(sick_doctor)
    col = sick_doctor.audit_report.columns[0]
    (finding,) = [f for f in sick_doctor.findings if f.kind == "unscaled_features"]
    quoted = finding.evidence["columns"]["feature_0"]
    assert quoted["p01"] == pytest.approx(col.p01) and quoted["p99"] == pytest.approx(col.p99)
    assert "<th>1st pct</th>" in html and "<th>99th pct</th>" in html
    audit = html.split("<h2>Feature audit</h2>")[1]  # (the findings' evidence names it too)
    row = re.search(r"<td>feature_0</td>(.*?)</tr>", audit).group(1)
    cells = re.findall(r'<td class="num">([^<]*)</td>', row)
    assert cells[1:3] == [fmt_value(col.p01), fmt_value(col.p99)]


def test_metric_curves_are_recorded_per_epoch_and_plotted():
    X, y, C = dataset("blobs", 0)
    model = mlp(X.shape[1], [16], C, seed=0)
    doctor = gw.doctor.Doctor(verbose=False, raise_errors=True)
    history = gw.fit(model, (X, y), loss="cross_entropy", optimizer=optimizer("adam", model, 0.01),
                     epochs=2, verbose=0, metrics=["accuracy"], validation=(X[:64], y[:64]),
                     doctor=doctor, seed=0)  # fmt: skip
    recorded = [e["metrics"] for e in doctor.trace.epochs]
    assert [m["accuracy"] for m in recorded] == pytest.approx(history.history["accuracy"])
    assert [m["val_accuracy"] for m in recorded] == pytest.approx(history.history["val_accuracy"])
    from gradwell.doctor.html import html_report

    assert 'alt="metric curves"' in html_report(doctor)
