"""gradwell doctor --tour: every classic failure is diagnosed, and repair() repairs it."""

from __future__ import annotations

import re

import pytest

from gradwell.cli import main
from gradwell.doctor.tour import CASES, run_tour


@pytest.fixture(scope="module")
def tour():
    lines: list[str] = []
    return run_tour(print_fn=lines.append), lines


def test_every_case_is_diagnosed_as_built(tour):
    results, _ = tour
    assert [r["expect"] for r in results] == [c.expect for c in CASES]
    for r in results:
        assert r["expect"] in r["found"], r["case"]


def test_every_case_is_repaired(tour):
    results, _ = tour
    for r in results:
        result = r["result"]
        assert result.outcome == "healthy" and result.final.findings == [], r["case"]
        before, after = result.first, result.final
        if after.metric == "val_accuracy":
            assert after.score >= 0.85 and after.score > before.score + 0.2, r["case"]
        else:
            assert after.metric == "val_r2" and after.score > 0.8, r["case"]  # -inf before


def test_the_tour_prints_diagnosis_change_metric_and_repaired_config(tour):
    _, lines = tour
    text = "\n".join(lines)
    assert text.count("change: ") >= len(CASES)
    assert "change: replace Sigmoid at" in text
    assert "change: lower the learning rate from 3 to " in text  # sized from the evidence
    assert "change: set the Dropout rate at 2" in text
    assert "z-score column proline" in text
    assert "val_accuracy 0.4917 -> 1 (kept)" in text  # the metric before and after
    assert text.count("outcome: healthy") == len(CASES)
    assert re.search(r"'lr': [0-9.e-]+,  # was 3.0", text)  # the changed configuration as code


def test_cli(capsys):
    assert main(["doctor"]) == 2
    assert "--tour" in capsys.readouterr().out
    assert main(["doctor", "--tour", "--cases", "dropout_misconfigured"]) == 0
    out = capsys.readouterr().out
    assert "1/1  Dropout rate 1.0" in out and "doctor: no problems found" in out
    assert main(["doctor", "--tour", "--cases", "nope"]) == 2


def test_cli_writes_html_reports(tmp_path, capsys):
    assert main(["doctor", "--tour", "--cases", "nan_trap", "--html", str(tmp_path)]) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["1-nan_trap-after.html", "1-nan_trap-before.html"]
    assert "nan_trap" in (tmp_path / "1-nan_trap-before.html").read_text()
