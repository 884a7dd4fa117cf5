"""The built-in recipe: a multilayer perceptron on a built-in data set, from a config dict.

``gradwell doctor --fix run.json`` and ``gradwell doctor --tour`` train it, and
``benchmarks/doctor_cases.py`` breaks it in the classic ways. :func:`build` makes
the model and optimizer, :func:`train` trains them with the doctor watching;
both read only the config, so :func:`gradwell.doctor.repair` can change it.

The config's keys (all but ``data`` optional; :data:`DEFAULTS` has the defaults):

* data: ``data`` ("circle", "xor", "spiral", "gaussians", "plane" (regression),
  "iris", "wine", "breast_cancer", "digits", "diabetes" (regression)), ``n``
  (examples: points drawn for the generated sets, the first ``n`` of a shuffled
  real set), ``noise``, ``feature_multiplier`` / ``target_multiplier`` /
  ``target_offset`` (to put features or targets on a raw scale), ``scale_features``
  (None: as they come; True: ``AutoScaler``; a dict column -> chain), ``target_scaler``
  (None or a ``TargetScaler`` method);
* model: ``widths`` (hidden layer widths), ``activation`` (a gw.nn activation,
  e.g. "ReLU", "Tanh", "LeakyReLU(0.01)"), ``activations`` (one per hidden layer,
  None for none, overriding ``activation``), ``output`` (an activation after the
  last Linear, e.g. "Softmax"), ``out_features`` (default: the number of classes),
  ``init`` ("kaiming", "xavier", ... or None for the activation's usual one),
  ``init_gain`` (multiplies the initial weights), ``dropout``, ``batchnorm`` (and
  ``batchnorm_momentum``: each new batch's weight in the running statistics);
* training: ``optimizer`` ("SGD", "Adam", "RMSprop", "Adagrad"), ``lr``,
  ``momentum`` (SGD), ``weight_decay``, ``batch_size``, ``epochs``, ``loss`` (None:
  cross-entropy for classification, MSE for regression; or a loss name, or "msle":
  a hand-written mean squared log error that takes the log of the prediction),
  ``clip_grad_norm``, ``early_stopping`` (patience), ``seed``, ``doctor`` (False:
  train without the doctor, to measure its cost).
"""

from __future__ import annotations

import warnings
from functools import lru_cache
from typing import Any

import numpy as np

DEFAULTS: dict[str, Any] = {
    "data": "circle",
    "n": None,
    "noise": 0.1,
    "feature_multiplier": 1.0,
    "target_multiplier": 1.0,
    "target_offset": 0.0,
    "scale_features": None,
    "target_scaler": None,
    "widths": [16, 16],
    "activation": "ReLU",
    "activations": None,
    "output": None,
    "out_features": None,
    "init": None,
    "init_gain": 1.0,
    "dropout": None,
    "batchnorm": False,
    "batchnorm_momentum": 0.1,
    "optimizer": "SGD",
    "lr": 0.1,
    "momentum": 0.0,
    "weight_decay": 0.0,
    "batch_size": 32,
    "epochs": 10,
    "loss": None,
    "clip_grad_norm": None,
    "early_stopping": None,
    "seed": 0,
    "doctor": True,
}

GENERATED = ("circle", "xor", "spiral", "gaussians", "plane", "multi_gaussian")
REAL = ("iris", "wine", "breast_cancer", "digits", "diabetes")


def settings(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` over :data:`DEFAULTS`; an unknown key is an error (a typo must not pass)."""
    unknown = [k for k in config if k not in DEFAULTS and k != "recipe"]
    if unknown:
        raise ValueError(
            f"recipe 'mlp': unknown config key {unknown[0]!r}; expected some of "
            + ", ".join(DEFAULTS)
        )
    if config.get("data", "circle") not in GENERATED + REAL:
        raise ValueError(
            f"recipe 'mlp': unknown data {config.get('data')!r}; expected one of "
            + ", ".join(GENERATED + REAL)
        )
    return {**DEFAULTS, **config}


@lru_cache(maxsize=32)
def _load(name: str, n: int | None, noise: float, seed: int) -> tuple[Any, ...]:
    from ..data import datasets as d

    if name in GENERATED:
        ds = getattr(d, name)(n=n or 600, noise=noise, seed=seed)
        X = ds.X / 6.0  # the Playground sets span about [-6, 6]
    else:
        ds = getattr(d, f"load_{name}")()
        X = ds.X
    y = ds.y
    order = np.random.default_rng(seed).permutation(len(X))
    if n and name not in GENERATED:
        order = order[:n]
    cut = int(0.8 * len(order))
    return X, y, order[:cut], order[cut:], ds.task, tuple(ds.feature_names)


def data(config: dict[str, Any]) -> dict[str, Any]:
    """Training and validation arrays for a config (seeded split, 80/20)."""
    c = settings(config)
    X, y, tr, va, task, names = _load(c["data"], c["n"], float(c["noise"]), int(c["seed"]))
    X = np.asarray(X, dtype=np.float64) * float(c["feature_multiplier"])
    if task == "classification":
        y = np.asarray(y, dtype=np.int64)
        classes = int(y.max()) + 1
    else:
        y = np.asarray(y, np.float64) * float(c["target_multiplier"]) + float(c["target_offset"])
        y = y.astype(np.float32)[:, None]
        classes = 1
    out = {"X": X[tr], "y": y[tr], "Xv": X[va], "yv": y[va], "task": task, "names": list(names),
           "classes": classes}  # fmt: skip
    scale = c["scale_features"]
    if scale:
        from ..preprocessing import AutoScaler, ColumnScaler

        scaler = (
            ColumnScaler(dict(scale), feature_names=names)
            if isinstance(scale, dict)
            else AutoScaler(feature_names=names)
        )
        scaler.fit(out["X"])
        out["X"], out["Xv"] = scaler.transform(out["X"]), scaler.transform(out["Xv"])
    out["X"] = np.asarray(out["X"], dtype=np.float32)
    out["Xv"] = np.asarray(out["Xv"], dtype=np.float32)
    return out


def build(config: dict[str, Any]) -> tuple[Any, Any]:
    """The model and optimizer a config describes."""
    import gradwell as gw

    from .edits import init_for, make_activation

    c = settings(config)
    d = data(c)
    nn = gw.nn
    seed = int(c["seed"])
    widths = list(c["widths"])
    acts = c["activations"] if c["activations"] is not None else [c["activation"]] * len(widths)
    if len(acts) != len(widths):
        raise ValueError(f"recipe 'mlp': {len(widths)} widths but {len(acts)} activations")
    layers: list[Any] = []
    n_in = d["X"].shape[1]
    n_out = int(c["out_features"] or d["classes"])
    sizes = [*widths, n_out]
    for i, w in enumerate(sizes):
        act = acts[i] if i < len(widths) else None
        init = c["init"] or init_for(act or (acts[-1] if acts and acts[-1] else "ReLU"))
        layer = nn.Linear(n_in, w, init=init, rng=seed * 1000 + i)
        if c["init_gain"] != 1.0:
            layer.weight.data *= np.float32(c["init_gain"])
        layers.append(layer)
        if i < len(widths):
            if c["batchnorm"]:
                layers.append(nn.BatchNorm1d(w, momentum=c["batchnorm_momentum"]))
            if act:
                layers.append(make_activation(act))
            if c["dropout"] is not None:
                layers.append(nn.Dropout(float(c["dropout"]), rng=seed * 1000 + 500 + i))
        n_in = w
    if c["output"]:
        layers.append(make_activation(c["output"]))
    model = nn.Sequential(*layers)
    return model, _optimizer(model.parameters(), c)


def _optimizer(params: Any, c: dict[str, Any]) -> Any:
    import gradwell as gw

    names = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop",
             "adagrad": "Adagrad"}  # fmt: skip
    name = names.get(str(c["optimizer"]).lower())
    cls = getattr(gw.optim, name or "", None)
    if cls is None:
        raise ValueError(f"recipe 'mlp': unknown optimizer {c['optimizer']!r}")
    kw: dict[str, Any] = {"lr": c["lr"][0] if isinstance(c["lr"], list) else float(c["lr"])}
    if name == "SGD" and c["momentum"]:
        kw["momentum"] = float(c["momentum"])
    if c["weight_decay"]:
        kw["weight_decay"] = float(c["weight_decay"])
    return cls(params, **kw)


def msle(outputs: Any, targets: Any) -> Any:
    """A hand-written mean squared log error: log of the prediction (NaN once it is <= 0)."""
    import gradwell as gw

    t = targets if isinstance(targets, gw.Tensor) else gw.tensor(targets)
    return gw.mean((gw.log(outputs) - gw.log(t)) ** 2)


def train(model: Any, optimizer: Any, config: dict[str, Any]) -> Any:
    """Train with the doctor watching (quietly); returns the History."""
    import gradwell as gw

    from .doctor import Doctor

    c = settings(config)
    d = data(c)
    classification = d["task"] == "classification"
    loss = c["loss"] or ("cross_entropy" if classification else "mse")
    if loss == "msle":
        loss = msle
    callbacks = []
    if c["early_stopping"]:
        patience = int(c["early_stopping"])
        stop = gw.callbacks.EarlyStopping("val_loss", patience=patience, restore_best_weights=True)
        callbacks.append(stop)
    target_scaler = (
        gw.preprocessing.TargetScaler(c["target_scaler"]) if c["target_scaler"] else None
    )
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # overflow is the point of some runs
        return gw.fit(
            model,
            (d["X"], d["y"]),
            loss=loss,
            optimizer=optimizer,
            epochs=int(c["epochs"]),
            batch_size=int(c["batch_size"]),
            validation=(d["Xv"], d["yv"]),
            metrics=["accuracy"] if classification else ["r2"],
            callbacks=callbacks,
            seed=int(c["seed"]),
            verbose=0,
            clip_grad_norm=c["clip_grad_norm"],
            doctor=Doctor(verbose=False, feature_names=d["names"]) if c["doctor"] else False,
            target_scaler=target_scaler,
        )
