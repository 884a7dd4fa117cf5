"""gradwell doctor --tour: every classic failure is diagnosed, and its top remedy repairs it."""

from __future__ import annotations

import pytest

from gradwell.cli import main
from gradwell.doctor.tour import CASES, Setup, apply, run_tour


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
        after = r["after"]
        assert [f for f in after.doctor.findings if f.rank >= 1] == [], r["case"]
        before = r["before"]
        if after.task == "classification":
            assert after.score >= 0.9 and after.score > before.score + 0.2, r["case"]
        else:
            assert after.score < 0.05, r["case"]  # validation MSE; it was NaN before


def test_the_tour_prints_diagnosis_remedy_and_repaired_run(tour):
    _, lines = tour
    text = "\n".join(lines)
    assert text.count("remedy applied: ") >= len(CASES)
    assert "remedy applied: replace Sigmoid at" in text
    assert "remedy applied: lower the learning rate from 3 to 0.3" in text
    assert "remedy applied: set the Dropout rate at 2, 5 from 1 to 0" in text  # one finding
    assert "z-score column proline" in text
    assert text.count("doctor: no problems found") == len(CASES)


def test_actions_map_onto_the_setup():
    s = Setup("circle", (8, 8), act="Sigmoid", lr=0.5, dropout=1.0, scaled=False)
    assert apply(s, {"action": "scale_lr", "factor": 0.1, "lr": [0.05]}).lr == 0.05
    assert apply(s, {"action": "replace_activation", "to": "LeakyReLU(0.01)"}).act == "LeakyReLU"
    assert apply(s, {"action": "set_dropout", "rate": 0.0}).dropout is None
    assert apply(s, {"action": "scale_features", "chains": {}}).scaled
    assert apply(s, {"action": "add_batchnorm", "after": ["0"]}).batchnorm
    assert apply(s, {"action": "clip_grad_norm", "max_norm": 1.0}).clip == 1.0
    assert apply(s, {"action": "early_stopping"}) is None


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
