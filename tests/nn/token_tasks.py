"""Training on a token task, shared by the sequence-model tests: Adam on shuffled
mini-batches, then the test accuracy in evaluation mode."""

from __future__ import annotations

from typing import Any

import numpy as np

import gradwell as gw


def train_and_score(
    model: Any, train: tuple, test: tuple, rng: np.random.Generator, *, epochs: int,
    batch_size: int, lr: float,
) -> float:  # fmt: skip
    """Train ``model`` on ``train`` = (ids, labels) with cross-entropy; its accuracy on ``test``."""
    x, y = train
    optimizer = gw.optim.Adam(model.parameters(), lr=lr)
    loss_fn = gw.nn.CrossEntropyLoss()
    for _epoch in range(epochs):
        order = rng.permutation(len(x))
        for i in range(0, len(x), batch_size):
            batch = order[i : i + batch_size]
            optimizer.zero_grad()
            loss_fn(model(x[batch]), y[batch]).backward()
            optimizer.step()
    model.eval()
    with gw.no_grad():
        return float((model(test[0]).numpy().argmax(axis=1) == test[1]).mean())
