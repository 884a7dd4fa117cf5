"""What a playground run is made of: its points, features, network, optimizer and loss.

Each is built from the :class:`~gradwell.playground.config.Config` alone, with the seed
in it, so the same settings give the same run (:mod:`.export` writes the same steps as
a script).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import nn
from .config import Config

N_CLASSIFY, N_REGRESS = 500, 1200  # the Playground's numbers of points
DATASET_FUNCTIONS = {"circle": "circle", "xor": "xor", "gauss": "gaussians", "spiral": "spiral",
                     "plane": "plane", "multigauss": "multi_gaussian"}  # fmt: skip
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "linear": nn.Identity
}  # fmt: skip
#: How each init choice is written for nn.Linear (the export writes the same).
INIT_CODE = {
    "zero": "gw.nn.init.zeros_",
    "small": "functools.partial(gw.nn.init.normal_, std=0.01)",
    "default": '"kaiming"',
    "large": "functools.partial(gw.nn.init.normal_, std=3.0)",
    "xavier": '"xavier"',
    "he": '"kaiming"',
}
INITS: dict[str, Any] = {
    "zero": nn.init.zeros_,
    "small": functools.partial(nn.init.normal_, std=0.01),
    "default": "kaiming",
    "large": functools.partial(nn.init.normal_, std=3.0),
    "xavier": "xavier",
    "he": "kaiming",
}


# ------------------------------------------------------------------------------- data
def points(config: Config) -> tuple[np.ndarray, np.ndarray]:
    """The data set's raw points (n, 2) in about [-6, 6]^2 and their targets."""
    from ..data import datasets

    fn = getattr(datasets, DATASET_FUNCTIONS[config.dataset])
    n = N_REGRESS if config.problem == "regression" else N_CLASSIFY
    kwargs = {"classes": config.classes} if config.dataset == "gauss" else {}
    ds = fn(n=n, noise=config.noise / 100, seed=config.seed, **kwargs)
    return ds.X, ds.y


def split(n: int, train_ratio: int, seed: int) -> np.ndarray:
    """Boolean mask of the training points: a seeded permutation's first part."""
    order = np.random.default_rng(seed).permutation(n)
    train = np.zeros(n, dtype=bool)
    train[order[: max(1, round(n * train_ratio / 100))]] = True
    return train


FEATURE_FUNCTIONS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "x1": lambda a, b: a,
    "x2": lambda a, b: b,
    "x1sq": lambda a, b: a * a,
    "x2sq": lambda a, b: b * b,
    "x1x2": lambda a, b: a * b,
    "sinx1": lambda a, b: np.sin(a),
    "sinx2": lambda a, b: np.sin(b),
}


def features(config: Config, X: np.ndarray) -> np.ndarray:
    """The network's inputs from raw points: the chosen features, then the blown-up column."""
    F = np.column_stack([FEATURE_FUNCTIONS[f](X[:, 0], X[:, 1]) for f in config.features])
    if config.blowup_column in config.features:
        j = config.features.index(config.blowup_column)
        F[:, j] = F[:, j] * config.blowup_scale + config.blowup_offset
    return F.astype(np.float32)


@dataclass(frozen=True)
class Data:
    """A run's examples: raw points ``X`` (n, 2), their labels or values ``y``, the
    ``train`` mask, the network's inputs ``F`` (features, blown up, scaled by ``scaler``
    when asked) and the ``targets`` as the loss takes them."""

    config: Config
    X: np.ndarray
    y: np.ndarray
    train: np.ndarray
    F: np.ndarray
    targets: np.ndarray
    scaler: Any

    def inputs(self, X: np.ndarray) -> np.ndarray:
        """The network's inputs for other raw points (the heatmap's grid)."""
        F = features(self.config, X)
        return F if self.scaler is None else self.scaler.transform(F).astype(np.float32)


def make_data(config: Config, custom: dict[str, np.ndarray] | None) -> Data:
    """The points of the data set (or the page's own, ``custom``), split and featurised."""
    if config.dataset == "custom":
        if custom is None:
            raise ValueError("dataset 'custom': no points yet; upload a CSV or add points")
        X, y, train = custom["X"], custom["y"], custom["train"]
    else:
        X, y = points(config)
        train = split(len(X), config.train_ratio, config.seed)
    X = X.astype(np.float32)
    F = features(config, X)
    scaler = None
    if config.scaling == "scaled":
        from ..preprocessing import AutoScaler

        scaler = AutoScaler(feature_names=list(config.features)).fit(F[train])
        F = scaler.transform(F).astype(np.float32)
    if config.problem == "regression":
        targets = y.astype(np.float32).reshape(-1, 1)
    elif config.loss == "mse":
        targets = np.eye(config.n_classes, dtype=np.float32)[y]  # one-hot
    else:
        targets = y.astype(np.int64)
    return Data(config, X, np.asarray(y), train, F, targets, scaler)


# ------------------------------------------------------------------------------ model
def build_model(config: Config, n_in: int, n_out: int) -> nn.Sequential:
    """Linear -> [BatchNorm1d] -> activation -> [Dropout] per hidden layer, then Linear."""
    rng = np.random.default_rng(config.seed)
    init = INITS[config.init]
    modules: list[nn.Module] = []
    width = n_in
    for i, units in enumerate(config.layers):
        modules.append(nn.Linear(width, units, init=init, rng=rng))
        if config.batchnorm:
            modules.append(nn.BatchNorm1d(units))
        modules.append(ACTIVATIONS[config.activation]())
        if config.dropout[i] > 0:
            modules.append(nn.Dropout(config.dropout[i], rng=rng))
        width = units
    modules.append(nn.Linear(width, n_out, init=init, rng=rng))
    return nn.Sequential(*modules)


def build_optimizer(config: Config, model: nn.Module) -> Any:
    from .. import optim

    params = model.parameters()
    if config.optimizer == "adam":
        return optim.Adam(params, lr=config.lr)
    return optim.SGD(params, lr=config.lr, momentum=0.9 if config.optimizer == "momentum" else 0.0)


class Regularized:
    """The data loss plus the Playground's penalty on the weights (not the biases):
    ``rate * sum |w|`` (L1) or ``rate * sum w^2 / 2`` (L2). ``kind`` and ``rate`` may
    change between steps."""

    def __init__(self, base: Any, weights: list[Any], kind: str, rate: float) -> None:
        self.base, self.weights, self.kind, self.rate = base, weights, kind, rate

    def __call__(self, outputs: Any, targets: Any) -> Any:
        loss = self.base(outputs, targets)
        if self.kind == "none" or self.rate == 0:
            return loss
        for w in self.weights:
            loss = loss + self.rate * (abs(w).sum() if self.kind == "l1" else (w * w).sum() / 2)
        return loss
