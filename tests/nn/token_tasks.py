"""Training on a token task, shared by the sequence-model tests: Adam on shuffled
mini-batches, then the test accuracy in evaluation mode.

With one BLAS thread: the products are small (a few hundred rows), and on a loaded
machine a second OpenBLAS thread mostly waits -- it made the transformer's steps about
fifteen times slower there.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

import gradwell as gw


def train_and_score(
    model: Any, train: tuple, test: tuple, rng: np.random.Generator, *, epochs: int,
    batch_size: int, lr: float,
) -> float:  # fmt: skip
    """Train ``model`` on ``train`` = (ids, labels) with cross-entropy; its accuracy on ``test``."""
    x, y = train
    optimizer = gw.optim.Adam(model.parameters(), lr=lr)
    loss_fn = gw.nn.CrossEntropyLoss()
    with threadpool_limits(limits=1, user_api="blas"):
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
