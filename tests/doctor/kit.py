"""Small models and runs for the doctor's tests: each pathology built on purpose."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

import gradwell as gw
from gradwell.data import datasets


def mlp(
    n_in: int,
    widths: list[int],
    n_out: int,
    act: str = "ReLU",
    *,
    seed: int = 0,
    dropout: float | None = None,
    batchnorm: bool = False,
    init: str | None = None,
) -> Any:
    """Linear -> [BatchNorm1d] -> act -> [Dropout] blocks, then a last Linear."""
    nn = gw.nn
    if init is None:
        init = "xavier" if act in ("Sigmoid", "Tanh") else "kaiming"
    layers: list[Any] = []
    d = n_in
    for i, w in enumerate(widths):
        layers.append(nn.Linear(d, w, init=init, rng=seed * 100 + i))
        if batchnorm:
            layers.append(nn.BatchNorm1d(w))
        layers.append(getattr(nn, act)())
        if dropout is not None:
            layers.append(nn.Dropout(dropout, rng=seed * 100 + 50 + i))
        d = w
    layers.append(nn.Linear(d, n_out, init=init, rng=seed * 100 + 99))
    return nn.Sequential(*layers)


def dataset(name: str, seed: int = 0, n: int = 512) -> tuple[np.ndarray, np.ndarray, int]:
    """(X, y, n_classes) of a small classification set, features about [-1, 1] or z-scored."""
    if name in ("circle", "xor", "gaussians", "spiral"):
        ds = getattr(datasets, name)(n=n, noise=0.1, seed=seed)
        X = ds.X / 5.0  # the Playground sets span about [-5, 5]
    elif name == "blobs":
        rng = np.random.default_rng(seed)
        centers = rng.normal(size=(3, 6)) * 2
        y = rng.integers(0, 3, size=n)
        X = (centers[y] + rng.normal(size=(n, 6))).astype(np.float32) / 3
        return X.astype(np.float32), y.astype(np.int64), 3
    else:
        ds = getattr(datasets, f"load_{name}")()
        X = (ds.X - ds.X.mean(0)) / (ds.X.std(0) + 1e-8)
    y = ds.y.astype(np.int64)
    return X.astype(np.float32), y, int(y.max()) + 1


def images(name: str, seed: int = 0, n: int = 512) -> tuple[np.ndarray, np.ndarray, int]:
    """(X, y, n_classes) of small images, (n, channels, 8, 8): "digits" (scikit-learn's
    8x8 digits, pixels in [0, 1]) or "bars" (2 channels of noise with one bright row or
    column; the class is the orientation and the channel it is in)."""
    if name == "digits":
        ds = datasets.load_digits()
        rows = np.random.default_rng(seed).permutation(len(ds.y))[:n]
        X = (ds.X[rows] / 16.0).reshape(-1, 1, 8, 8)
        return X.astype(np.float32), ds.y[rows].astype(np.int64), 10
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, size=n)
    X = rng.normal(0, 0.3, size=(n, 2, 8, 8))
    at = rng.integers(1, 7, size=n)
    for i in range(n):
        if y[i] < 2:
            X[i, y[i] % 2, at[i], :] += 1.0
        else:
            X[i, y[i] % 2, :, at[i]] += 1.0
    return X.astype(np.float32), y.astype(np.int64), 4


def cnn(
    c_in: int,
    n_out: int,
    act: str = "ReLU",
    *,
    depth: int = 2,
    channels: int = 8,
    seed: int = 0,
    batchnorm: bool = False,
    pool: bool = False,
) -> Any:
    """Conv2d(3x3, same) -> [BatchNorm2d] -> act blocks on 8x8 images ([MaxPool2d(2)]
    after the first), then Flatten and a Linear."""
    nn = gw.nn
    init = "xavier" if act in ("Sigmoid", "Tanh") else "kaiming"
    layers: list[Any] = []
    c, side = c_in, 8
    for i in range(depth):
        layers.append(nn.Conv2d(c, channels, 3, padding=1, init=init, rng=seed * 100 + i))
        if batchnorm:
            layers.append(nn.BatchNorm2d(channels))
        layers.append(getattr(nn, act)())
        if pool and i == 0:
            layers.append(nn.MaxPool2d(2))
            side = 4
        c = channels
    classifier = nn.Linear(channels * side * side, n_out, init=init, rng=seed * 100 + 99)
    return nn.Sequential(*layers, nn.Flatten(), classifier)


def optimizer(name: str, model: Any, lr: float) -> Any:
    if name == "sgd":
        return gw.optim.SGD(model.parameters(), lr=lr)
    if name == "momentum":
        return gw.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    if name == "adam":
        return gw.optim.Adam(model.parameters(), lr=lr)
    if name == "rmsprop":
        return gw.optim.RMSprop(model.parameters(), lr=lr)
    raise ValueError(name)


def train(
    model: Any,
    X: np.ndarray,
    y: np.ndarray,
    opt: Any,
    *,
    epochs: int = 4,
    batch_size: int = 32,
    seed: int = 0,
    validation: Any = None,
    doctor: Any = None,
) -> Any:
    """fit with a quiet Doctor; returns the History (findings in history.findings)."""
    doctor = doctor if doctor is not None else gw.doctor.Doctor(verbose=False, raise_errors=True)
    with warnings.catch_warnings():  # the pathologies overflow on purpose
        warnings.simplefilter("ignore", RuntimeWarning)
        return gw.fit(
            model,
            (X, y),
            loss=gw.nn.CrossEntropyLoss(),
            optimizer=opt,
            epochs=epochs,
            batch_size=batch_size,
            seed=seed,
            verbose=0,
            validation=validation,
            doctor=doctor,
        )


def serious(history: Any) -> list[Any]:
    """Findings of severity warning or critical."""
    return [f for f in history.findings if f.severity in ("warning", "critical")]


def kinds(history: Any) -> dict[str, list[str]]:
    """kind -> the `where` of each serious finding of that kind."""
    out: dict[str, list[str]] = {}
    for f in serious(history):
        out.setdefault(f.kind, []).append(f.where)
    return out
