"""``gradwell demo``: a healthy run on real data, then a classic failure repaired.

1. scikit-learn's handwritten digits: a stratified train / validation / test split,
   features scaled on the training rows only, a ReLU MLP trained with the doctor
   watching; it prints the doctor's verdict and the test accuracy.
2. Unscaled features (wine: columns from 0.1 to 1680): the doctor diagnoses the run
   and :func:`gradwell.doctor.repair` applies its top remedy and retrains.
3. The digits run's report goes to ``OUT/report.html``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--epochs", type=int, default=30, help="digits epochs (default 30)")
    parser.add_argument("--seed", type=int, default=0, help="splits, weights, shuffling")
    parser.add_argument("--out", default="runs/demo", help="folder for report.html")


def train_digits(epochs: int = 30, seed: int = 0, verbose: int = 1) -> tuple[Any, float]:
    """A 64-128-64-10 ReLU MLP with BatchNorm and Dropout on scikit-learn's digits.

    Stratified 60/20/20 train / validation / test split, features scaled to [-1, 1]
    on the training part only, Adam, cross-entropy; the validation part guides
    training and the test part is seen once, at the end. Returns the History (the
    doctor's findings in ``history.findings``) and the test accuracy.
    """
    import numpy as np
    from sklearn.datasets import load_digits

    import gradwell as gw
    from gradwell import nn
    from gradwell.preprocessing import LinearScaler

    X, y = load_digits(return_X_y=True)
    X_rest, X_test, y_rest, y_test = gw.data.train_test_split(
        X, y, test_size=0.2, seed=seed, stratify=y
    )
    X_train, X_val, y_train, y_val = gw.data.train_test_split(
        X_rest, y_rest, test_size=0.25, seed=seed + 1, stratify=y_rest
    )
    scaler = LinearScaler().fit(X_train)
    X_train, X_val, X_test = (scaler.transform(a) for a in (X_train, X_val, X_test))
    rng = np.random.default_rng(seed)
    model = nn.Sequential(
        nn.Linear(64, 128, rng=rng), nn.BatchNorm1d(128), nn.ReLU(), nn.Dropout(0.2, rng=rng),
        nn.Linear(128, 64, rng=rng), nn.BatchNorm1d(64), nn.ReLU(), nn.Dropout(0.2, rng=rng),
        nn.Linear(64, 10, rng=rng),
    )  # fmt: skip
    if verbose:
        print(
            f"digits: {len(X_train)} training, {len(X_val)} validation and {len(X_test)} test "
            "images of 8x8 pixels, 10 classes\n"
            "model: 64-128-64-10 ReLU MLP, BatchNorm1d, Dropout(0.2), Adam(lr=1e-3)"
        )
    history = gw.fit(
        model, (X_train, y_train), loss=nn.CrossEntropyLoss(),
        optimizer=gw.optim.Adam(model.parameters(), lr=1e-3), epochs=epochs, batch_size=32,
        validation=(X_val, y_val), metrics=["accuracy"], seed=seed, verbose=verbose,
    )  # fmt: skip
    accuracy = float(np.mean(gw.predict(model, X_test).argmax(axis=1) == y_test))
    return history, accuracy


def run(args: argparse.Namespace) -> int:
    import gradwell as gw
    from gradwell.doctor import recipes

    history, accuracy = train_digits(args.epochs, args.seed)  # fit prints the doctor's verdict
    print(f"test accuracy: {accuracy:.2%}")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    report = history.doctor.save_html(Path(args.out) / "report.html")
    print("\nA classic failure: wine's features as they come (0.1 to 1680), SGD lr 0.05")
    config = {"data": "wine", "widths": [16], "lr": 0.05, "epochs": 20, "seed": args.seed}
    gw.doctor.repair(recipes.build, recipes.train, config, rounds=2)  # prints each round
    print(f"\nreport of the digits run: {report}")
    return 0
