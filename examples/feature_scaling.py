"""Why feature scaling matters: the same network, the same learning rate, two inputs.

The wine data set has 13 chemical measurements on wildly different scales
(hue about 1, proline up to 1,680). We train one small MLP with plain SGD and a
fixed learning rate twice: on the raw features, and on the features scaled by the
chains the feature audit recommends (fitted on the training split only). The raw
run diverges or crawls; the scaled run learns. The fitted scaler is then saved as
JSON and reloaded, so prediction applies exactly the training-time transform.

    python examples/feature_scaling.py
"""

from __future__ import annotations

import json
import math

import numpy as np

import gradwell as gw
from gradwell.data.datasets import load_wine
from gradwell.preprocessing import AutoScaler, audit, from_config

LEARNING_RATE = 0.05
EPOCHS = 30
SEED = 0


def make_model(n_features: int, n_classes: int):
    # Identical initial weights for both runs: same layers, same seeds.
    return gw.nn.Sequential(
        gw.nn.Linear(n_features, 32, rng=SEED),
        gw.nn.ReLU(),
        gw.nn.Linear(32, n_classes, rng=SEED + 1),
    )


def train(name: str, X_train, y_train, X_test, y_test, n_classes: int) -> dict[str, float]:
    model = make_model(X_train.shape[1], n_classes)
    history = gw.fit(
        model,
        (X_train, y_train),
        loss="cross_entropy",
        optimizer=gw.optim.SGD(model.parameters(), lr=LEARNING_RATE),
        epochs=EPOCHS,
        batch_size=16,
        metrics=["accuracy"],
        seed=SEED,
        verbose=0,
    )
    losses = history["loss"]
    shown = ", ".join(
        f"{losses[e]:.3g}" if math.isfinite(losses[e]) else "nan" for e in (0, 1, 4, 9, 19, 29)
    )
    # Hidden units that output zero for every training example are dead: no gradient
    # reaches them again, whatever the learning rate.
    hidden = gw.predict(model[:2], X_train)
    dead = int((hidden.max(axis=0) <= 0).sum())
    test = gw.evaluate(model, (X_test, y_test), loss=gw.nn.CrossEntropyLoss(), metrics=["accuracy"])
    print(f"{name:<8} loss at epochs 1,2,5,10,20,30: {shown}")
    print(
        f"{'':<8} train accuracy {history['accuracy'][-1]:.3f}, "
        f"test accuracy {test['accuracy']:.3f}, test loss {test['loss']:.3g}, "
        f"dead ReLU units {dead}/{hidden.shape[1]}"
    )
    return {**test, "dead": dead}


def main() -> None:
    data = load_wine()
    train_set, test_set = data.split(test_fraction=0.25, seed=SEED)
    print(
        f"wine: {len(train_set)} training and {len(test_set)} test examples, "
        f"{data.n_features} features, {data.n_classes} classes"
    )
    print(f"same MLP (13-32-3, ReLU), SGD lr={LEARNING_RATE}, batch 16, {EPOCHS} epochs\n")

    report = audit(train_set.X, train_set.feature_names)
    print(report)
    print()

    raw = train("raw", train_set.X, train_set.y, test_set.X, test_set.y, data.n_classes)

    scaler = AutoScaler(feature_names=train_set.feature_names).fit(train_set.X)
    X_train, X_test = scaler.transform(train_set.X), scaler.transform(test_set.X)
    scaled = train("scaled", X_train, train_set.y, X_test, test_set.y, data.n_classes)

    # The fitted scaler travels as JSON (no pickle) and transforms identically after reload.
    restored = from_config(json.loads(json.dumps(scaler.to_config())))
    same = np.array_equal(restored.transform(test_set.X), X_test)
    print(
        f"\nscaler saved as {len(scaler.to_json())} bytes of JSON; reloaded transform identical: "
        f"{same}"
    )
    chance = math.log(data.n_classes)
    print(f"test accuracy: raw {raw['accuracy']:.3f} vs scaled {scaled['accuracy']:.3f}")
    if not math.isfinite(raw["loss"]):
        print("the raw run hit NaN: the NaN trap that unscaled inputs set")
    elif abs(raw["loss"] - chance) < 0.05:
        print(
            f"the raw run's loss sits at ln({data.n_classes}) = {chance:.3f}, chance level: its "
            f"first huge steps (proline ~ 1000) left {raw['dead']} of 32 ReLU units dead"
        )


if __name__ == "__main__":
    main()
