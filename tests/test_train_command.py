"""gradwell train / predict through the CLI entry point, on a mixed CSV with missing cells."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

import gradwell as gw
from gradwell.cli import main


def mixed_csv(path, n=160, seed=0):
    rng = np.random.default_rng(seed)
    lines = ["age,city,member,label,price"]
    for _ in range(n):
        age = rng.uniform(18, 80)
        city = rng.choice(["paris", "rome", "oslo"])
        member = rng.choice(["yes", "no"])
        label = "high" if (age - 50) / 15 + (city == "rome") * 2 + rng.normal(0, 0.3) > 0 else "low"
        price = 3 * age + 100 * (city == "paris") + rng.normal(0, 5)
        shown_age = "" if rng.random() < 0.1 else f"{age:.1f}"
        shown_city = "?" if rng.random() < 0.05 else city
        lines.append(f"{shown_age},{shown_city},{member},{label},{price:.2f}")
    path.write_text("\n".join(lines) + "\n")
    return path


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize(
    ("target", "metric", "least"), [("label", "test_accuracy", 0.8), ("price", "test_r2", 0.5)]
)
def test_train_then_predict(tmp_path, capsys, target, metric, least):
    data = mixed_csv(tmp_path / "mixed.csv")
    out = tmp_path / "run"
    assert main(["train", str(data), "--target", target, "--epochs", "25", "--quiet", "--out",
                 str(out), "--weight-decay", "1e-5", "--clip-grad-norm", "5"]) == 0  # fmt: skip
    assert "report: " in capsys.readouterr().out
    for name in ("model.safetensors", "report.html", "metrics.json", "config.json"):
        assert (out / name).is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics[metric] > least
    report = (out / "report.html").read_text()
    assert "Data audit" in report and "Trainable params" in report
    assert "Curves per epoch" in report and "data:image/png;base64," in report
    preds = tmp_path / "preds.csv"
    assert main(["predict", str(out / "model.safetensors"), str(data), "--out", str(preds),
                 "--mc-dropout", "5"]) == 0  # fmt: skip
    predicted = rows(preds)
    assert len(predicted) == 160
    if target == "label":
        assert set(predicted[0]) == {"prediction", "p_high", "p_low", "entropy"}
        truth = [r["label"] for r in rows(data)]
        agree = np.mean([p["prediction"] == t for p, t in zip(predicted, truth, strict=True)])
        assert agree > 0.8
    else:
        assert set(predicted[0]) == {"prediction", "std"}
    # the config comes back: a second run with --config and one flag changed
    again = tmp_path / "again"
    assert main(["train", str(data), "--config", str(out / "config.json"), "--epochs", "1",
                 "--quiet", "--out", str(again)]) == 0  # fmt: skip
    saved = json.loads((again / "config.json").read_text())
    assert saved["target"] == target and saved["epochs"] == 1
    assert (saved["weight_decay"], saved["clip_grad_norm"]) == (1e-5, 5.0)


def test_the_model_loads_by_itself(tmp_path):
    data = mixed_csv(tmp_path / "mixed.csv", n=60)
    assert main(["train", str(data), "--target", "label", "--epochs", "2", "--quiet",
                 "--out", str(tmp_path / "r")]) == 0  # fmt: skip
    model, preprocessing, metadata = gw.load(tmp_path / "r" / "model.safetensors")
    assert metadata["classes"] == ["high", "low"] and metadata["columns"][0] == "age"
    frame = gw.data.load_csv(data, target="label").frame()
    assert gw.predict_proba(model, preprocessing.transform(frame)).shape == (60, 2)


@pytest.mark.parametrize(
    ("text", "args", "message"),
    [
        ("", ["--target", "y"], "empty file"),
        ("a,y\n1,2\n", ["--target", "z"], "expected target column 'z'"),
        ("a,y\n1,5\n2,5\n3,5\n", ["--target", "y", "--task", "regression"], "'y' is constant"),
        ("a,y\n1,x\n2,x\n3,x\n", ["--target", "y"], "only 'x'"),
        ("a,y\n1,2\n", [], "expected --target"),
    ],
)
def test_refusals_name_the_problem(tmp_path, capsys, text, args, message):
    path = tmp_path / "t.csv"
    path.write_text(text)
    assert main(["train", str(path), *args, "--out", str(tmp_path / "o")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_not_a_csv_and_mismatched_columns(tmp_path, capsys):
    binary = tmp_path / "img.csv"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    assert main(["train", str(binary), "--target", "y"]) == 2
    assert "img.csv: line 1 holds the byte 0x89" in capsys.readouterr().err
    data = mixed_csv(tmp_path / "mixed.csv", n=40)
    assert main(["train", str(data), "--target", "label", "--epochs", "1", "--quiet",
                 "--out", str(tmp_path / "r")]) == 0  # fmt: skip
    other = tmp_path / "other.csv"
    other.write_text("age,town,member\n30,paris,yes\n")
    assert main(["predict", str(tmp_path / "r" / "model.safetensors"), str(other)]) == 2
    err = capsys.readouterr().err
    assert "missing ['city', 'price']" in err and "unexpected ['town']" in err


def test_version_and_python_dash_m(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"gradwell {gw.__version__}"
    done = subprocess.run(
        [sys.executable, "-m", "gradwell", "--version"], capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stdout.strip() == f"gradwell {gw.__version__}"


def test_help_is_plain_text(capsys):
    for argv in (["--help"], ["demo", "--help"], ["train", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        text = capsys.readouterr().out
        assert "``" not in text
    assert "--epochs" in text and "--validation-split" in text
