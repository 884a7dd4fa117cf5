"""A ``gradwell train`` run from its settings: the table, the MLP, the fit.

The settings are the ``config.json`` that ``gradwell train`` writes (and ``--config``
reads back). :func:`build` and :func:`train_run` are the ``build(config)`` and
``train(model, optimizer, config)`` pair that :func:`gradwell.doctor.repair` takes,
so ``gradwell doctor --fix runs/NAME/config.json`` repairs a run of ``gradwell train``
and :func:`repaired_settings` writes its changes back into the settings.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .habits import OPTIMIZER_NAMES

#: What ``train`` uses where neither a flag nor ``--config`` says otherwise.
DEFAULTS: dict[str, Any] = {
    "data": None,
    "target": None,
    "task": "auto",
    "hidden": "64,32",
    "activation": "relu",
    "dropout": 0.1,
    "batchnorm": False,
    "epochs": 30,
    "batch_size": 32,
    "lr": 1e-3,
    "optimizer": "adam",
    "weight_decay": 0.0,
    "clip_grad_norm": None,
    "target_scaler": "standardize",
    "validation_split": 0.2,
    "test_split": 0.2,
    "seed": 0,
    "early_stopping": 0,
    "encoding": "utf-8-sig",
}
ACTIVATIONS = {
    "relu": "ReLU",
    "tanh": "Tanh",
    "gelu": "GELU",
    "elu": "ELU",
    "leaky_relu": "LeakyReLU",
    "sigmoid": "Sigmoid",
}
TARGET_SCALERS = ("standardize", "robust", "log", "log1p", "none")


class UsageError(ValueError):
    """Input the command cannot use; printed as one line, exit status 2."""


def settings(config: dict[str, Any], source: str = "config") -> dict[str, Any]:
    """``config`` over :data:`DEFAULTS`, checked: unknown keys and bad values name themselves."""
    if not isinstance(config, dict):
        raise UsageError(f"{source}: expected a JSON object of settings; got {config!r:.60}")
    unknown = sorted(set(config) - set(DEFAULTS))
    if unknown:
        raise UsageError(f"{source}: unknown settings {unknown}; known: {sorted(DEFAULTS)}")
    s = {**DEFAULTS, **config}
    if not s["target"]:
        raise UsageError("expected --target COLUMN (the column to predict)")
    for key in ("validation_split", "test_split"):
        if not 0.0 < s[key] < 1.0:
            raise UsageError(f"expected 0 < --{key.replace('_', '-')} < 1, got {s[key]}")
    s["optimizer"] = str(s["optimizer"]).lower()  # the doctor names optimizers as classes
    choices: dict[str, Any] = {"optimizer": OPTIMIZER_NAMES, "activation": ACTIVATIONS,
                               "target_scaler": TARGET_SCALERS}  # fmt: skip
    for key, known in choices.items():
        if s[key] not in known:
            raise UsageError(f"{source}: expected {key} in {sorted(known)}, got {s[key]!r}")
    return s


# ------------------------------------------------------------------ the table
@dataclass(frozen=True)
class Table:
    """The CSV read, split (test, then validation from the rest) and preprocessed."""

    data: Any
    train: Any
    validation: Any
    test: Any
    preprocessing: Any
    X: tuple[np.ndarray, np.ndarray, np.ndarray]  # train, validation, test

    @property
    def classification(self) -> bool:
        return bool(self.data.task == "classification")

    def y(self, part: Any) -> np.ndarray:
        return part.y if self.classification else part.y.reshape(-1, 1)


def prepare(s: dict[str, Any]) -> Table:
    """The table of settings ``s`` (kept for the same file, split and seed: a repair
    retrains on it several times)."""
    path = Path(s["data"])
    key = (str(path.resolve()), os.stat(path).st_mtime_ns, s["target"], s["task"], s["encoding"],
           s["test_split"], s["validation_split"], s["seed"])  # fmt: skip
    return _prepare(*key)


@functools.lru_cache(maxsize=4)
def _prepare(path: str, mtime: int, target: str, task: str, encoding: str,
             test_split: float, validation_split: float, seed: int) -> Table:  # fmt: skip
    from ..data.datasets import load_csv
    from ..preprocessing import TablePreprocessor

    data = load_csv(path, target=target, task=task, encoding=encoding)
    _check_target(data, Path(path).name)
    rest, test = data.split(test_split, seed=seed)
    train, validation = rest.split(validation_split, seed=seed + 1)
    pre = TablePreprocessor(categorical=list(data.categories))
    X_train = pre.fit_transform(train.frame())
    X = (X_train, pre.transform(validation.frame()), pre.transform(test.frame()))
    return Table(data, train, validation, test, pre, X)


def _check_target(data: Any, source: str) -> None:
    name = data.target_names[0] if data.task == "regression" else "the target"
    if data.task == "classification":
        counts = np.bincount(data.y, minlength=data.n_classes)
        if data.n_classes < 2:
            raise UsageError(
                f"{source}: expected at least two classes in {name}, got only "
                f"{data.target_names[0]!r} in all {len(data)} rows"
            )
        if counts.min() < 2:
            rare = data.target_names[int(counts.argmin())]
            raise UsageError(
                f"{source}: class {rare!r} has {int(counts.min())} row; a stratified split needs "
                "at least two rows per class"
            )
    elif np.ptp(data.y) == 0:
        raise UsageError(
            f"{source}: target column {name!r} is constant ({data.y[0]:g}): nothing to learn"
        )


# ------------------------------------------------------------------ the model and the fit
def mlp(inputs: int, outputs: int, s: dict[str, Any]) -> Any:
    """Linear -> [BatchNorm] -> activation -> [Dropout] per hidden width, then Linear."""
    from .. import nn

    try:
        widths = [int(w) for w in str(s["hidden"]).split(",") if w.strip()]
    except ValueError:
        raise UsageError(f"expected --hidden as widths like 64,32, got {s['hidden']!r}") from None
    if any(w < 1 for w in widths):
        raise UsageError(f"expected positive --hidden widths, got {s['hidden']!r}")
    rng = np.random.default_rng(s["seed"])
    layers: list[Any] = []
    for width in widths:
        layers.append(nn.Linear(inputs, width, rng=rng))
        if s["batchnorm"]:
            layers.append(nn.BatchNorm1d(width))
        layers.append(getattr(nn, ACTIVATIONS[s["activation"]])())
        if s["dropout"]:
            layers.append(nn.Dropout(s["dropout"], rng=rng))
        inputs = width
    layers.append(nn.Linear(inputs, outputs, rng=rng))
    return nn.Sequential(*layers)


def build(config: dict[str, Any]) -> tuple[Any, Any]:
    """The model and optimizer that settings describe."""
    from .. import optim

    s = settings(config)
    table = prepare(s)
    outputs = table.data.n_classes if table.classification else 1
    model = mlp(table.X[0].shape[1], outputs, s)
    options = {"lr": s["lr"]}
    if s["weight_decay"]:
        options["weight_decay"] = s["weight_decay"]
    optimizer = getattr(optim, OPTIMIZER_NAMES[s["optimizer"]][0])(model.parameters(), **options)
    return model, optimizer


def fit_run(model: Any, optimizer: Any, config: dict[str, Any], *, verbose: int = 0,
            doctor: Any = None, distributed: bool = False) -> Any:  # fmt: skip
    """``gw.fit`` as ``gradwell train`` runs it (``distributed``: as one rank of a job);
    returns the History."""
    from ..doctor import Doctor
    from ..preprocessing import TargetScaler
    from .callbacks import EarlyStopping
    from .fit import fit

    s = settings(config)
    table = prepare(s)
    names = table.preprocessing.get_feature_names_out().tolist()
    method = s["target_scaler"]
    return fit(
        model,
        (table.X[0], table.y(table.train)),
        loss="cross_entropy" if table.classification else "mse",
        optimizer=optimizer,
        epochs=s["epochs"],
        batch_size=s["batch_size"],
        validation=(table.X[1], table.y(table.validation)),
        metrics=["accuracy"] if table.classification else ["rmse", "r2"],
        callbacks=[EarlyStopping(patience=s["early_stopping"], restore_best_weights=True)]
        if s["early_stopping"]
        else [],
        seed=s["seed"],
        verbose=verbose,
        clip_grad_norm=s["clip_grad_norm"],
        doctor=doctor if doctor is not None else Doctor(verbose=False, feature_names=names),
        target_scaler=None if table.classification or method == "none" else TargetScaler(method),
        distributed=distributed,
    )


def train_run(model: Any, optimizer: Any, config: dict[str, Any]) -> Any:
    """Quietly, with the doctor watching: the ``train`` of :func:`gradwell.doctor.repair`."""
    return fit_run(model, optimizer, config)


# ------------------------------------------------------------------ repairs written back
def repaired_settings(
    config: dict[str, Any], edits: list[dict[str, Any]]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The settings with the repair's model edits that they can hold folded in (an
    activation, the dropout rate, batch normalization for every hidden layer), and the
    edits they cannot hold (they name single layers)."""
    s = dict(config)
    left = []
    by_class = {v: k for k, v in ACTIVATIONS.items()}
    for edit in edits:
        kind = edit.get("action")
        activation = str(edit.get("to", "")).split("(")[0]
        if kind == "replace_activation" and activation in by_class:
            s["activation"] = by_class[activation]
        elif kind == "set_dropout":
            s["dropout"] = float(edit["rate"])
        elif kind == "add_batchnorm":
            s["batchnorm"] = True
        else:
            left.append(edit)
    return s, left


def settings_json(s: dict[str, Any]) -> str:
    return json.dumps(s, indent=2) + "\n"
