"""Acceptance: real networks on scikit-learn's bundled datasets (no network access; ~1 s each)."""

import numpy as np

import gradwell as gw
import gradwell.preprocessing as pp
from gradwell.cli import main, train_digits


def test_demo_mlp_reaches_97_percent_on_digits_within_30_epochs():
    history, accuracy = train_digits(epochs=30, seed=0, verbose=0)
    assert len(history.epoch) == 30
    assert accuracy >= 0.97
    assert len(history.findings) == 0 or all(f.rank < 1 for f in history.findings)


def test_mlp_reaches_96_percent_on_z_scored_breast_cancer():
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    X_train, X_test, y_train, y_test = gw.data.train_test_split(
        X, y, test_size=0.2, seed=0, stratify=y
    )
    scaler = pp.ZScoreScaler()
    X_train, X_test = scaler.fit_transform(X_train), scaler.transform(X_test)
    rng = np.random.default_rng(0)
    model = gw.nn.Sequential(
        gw.nn.Linear(30, 32, rng=rng), gw.nn.ReLU(), gw.nn.Dropout(0.2, rng=rng),
        gw.nn.Linear(32, 2, rng=rng),
    )  # fmt: skip
    gw.fit(
        model, (X_train, y_train), loss=gw.nn.CrossEntropyLoss(),
        optimizer=gw.optim.Adam(model.parameters(), lr=1e-3), epochs=30, seed=0, verbose=0,
    )  # fmt: skip
    accuracy = np.mean(gw.predict(model, X_test).argmax(axis=1) == y_test)
    assert accuracy >= 0.96


def test_gradwell_demo_command_prints_progress_accuracy_repair_and_report(capsys, tmp_path):
    assert main(["demo", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Epoch 30/30" in out
    line = next(x for x in out.splitlines() if x.startswith("test accuracy: "))
    assert float(line.removeprefix("test accuracy: ").rstrip("%")) >= 97.0
    assert "unscaled_features" in out and "outcome: healthy" in out
    assert out.strip().splitlines()[-1] == f"report of the digits run: {tmp_path / 'report.html'}"
    assert (tmp_path / "report.html").is_file()
