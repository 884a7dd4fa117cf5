"""A small CNN on the MNIST test set (10k images): train on the first 8k, test on the last 2k.

    python examples/mnist_cnn.py PATH/TO/mnist-t10k   # the folder with the two idx files

The folder holds ``t10k-images-idx3-ubyte.gz`` and ``t10k-labels-idx1-ubyte.gz`` (gzipped
or not), the files of the MNIST distribution. Two conv blocks (conv 3x3 + BatchNorm2d +
ReLU + max-pool), a hidden layer and dropout; Adam with a cosine schedule.
"""

from __future__ import annotations

import argparse
import gzip
import time
from pathlib import Path

import numpy as np

import gradwell as gw

nn = gw.nn


def read_idx(path: Path) -> np.ndarray:
    """An idx file (the MNIST format): a magic number, the sizes, then unsigned bytes."""
    candidates = [path, path.with_name(path.name + ".gz")]
    found = next((p for p in candidates if p.exists()), None)
    if found is None:
        raise FileNotFoundError(f"mnist_cnn: neither {candidates[0]} nor {candidates[1]} exists")
    raw = (gzip.open if found.suffix == ".gz" else open)(found, "rb").read()
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def model(rng: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1, rng=rng), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1, rng=rng + 1), nn.BatchNorm2d(64), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64 * 7 * 7, 128, rng=rng + 2), nn.ReLU(),
        nn.Dropout(0.3, rng=rng + 3), nn.Linear(128, 10, rng=rng + 4),
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="folder with the t10k idx files")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    images = read_idx(args.data / "t10k-images-idx3-ubyte").astype(np.float32) / 255.0
    labels = read_idx(args.data / "t10k-labels-idx1-ubyte").astype(np.int64)
    x = ((images - 0.1307) / 0.3081)[:, None]  # (N, 1, 28, 28), MNIST's usual mean and std
    x_train, y_train, x_test, y_test = x[:8000], labels[:8000], x[8000:], labels[8000:]

    net = model(0)
    opt = gw.optim.Adam(net.parameters(), lr=2e-3)
    steps = args.epochs * (len(x_train) // args.batch)
    sched = gw.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    loss_fn = nn.CrossEntropyLoss()
    rng = np.random.default_rng(0)
    for epoch in range(args.epochs):
        net.train()
        start, order = time.perf_counter(), rng.permutation(len(x_train))
        for i in range(0, len(order) - args.batch + 1, args.batch):
            idx = order[i : i + args.batch]
            opt.zero_grad()
            loss = loss_fn(net(x_train[idx]), y_train[idx])
            loss.backward()
            opt.step()
            sched.step()
        net.eval()
        with gw.no_grad():
            pred = np.concatenate(
                [net(x_test[i : i + 500]).numpy().argmax(1) for i in range(0, len(x_test), 500)]
            )
        print(
            f"epoch {epoch + 1}: loss {float(loss.item()):.4f}, test accuracy "
            f"{(pred == y_test).mean():.4f} ({time.perf_counter() - start:.0f} s)"
        )


if __name__ == "__main__":
    main()
