"""Export a playground run: as a runnable ``gw.fit`` script, and as a gradwell checkpoint.

The script builds the same data, features, network, optimizer and loss from the same
seed and trains for the same number of epochs, so it reproduces the run (with the
learning rate and regularization as they are at export, from the first epoch on).
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import numpy as np

from .build import DATASET_FUNCTIONS, INIT_CODE, N_CLASSIFY, N_REGRESS
from .config import Config
from .run import Run

FEATURE_CODE = {"x1": "x1", "x2": "x2", "x1sq": "x1 * x1", "x2sq": "x2 * x2", "x1x2": "x1 * x2",
                "sinx1": "np.sin(x1)", "sinx2": "np.sin(x2)"}  # fmt: skip
ACTIVATION_CODE = {"relu": "nn.ReLU()", "tanh": "nn.Tanh()", "sigmoid": "nn.Sigmoid()",
                   "linear": "nn.Identity()"}  # fmt: skip


def python_script(config: Config, epochs: int, custom: dict[str, np.ndarray] | None) -> str:
    """A standalone script that trains this configuration with ``gw.fit`` and prints its
    training and test loss (and accuracy) as the playground computes them."""
    c = config
    lines = [
        f'"""The gradwell playground\'s run as a script: {_describe(c)}.',
        "",
        f"Exported after {epochs} epochs; run it with python to train the same network the",
        'same way and print its training and test loss."""',
        "",
        *(["import functools", ""] if c.init in ("small", "large") else []),
        "import numpy as np",
        "",
        "import gradwell as gw",
        "from gradwell import nn",
        "",
        f"SEED = {c.seed}",
        f"EPOCHS = {epochs}",
        "",
    ]
    if c.dataset == "custom":
        assert custom is not None
        lines += [
            "# the points of the playground (x1, x2), their labels, and which ones train",
            f"X = np.array({custom['X'].tolist()}, dtype=np.float32)",
            f"y = np.array({np.asarray(custom['y']).tolist()})",
            f"train = np.array({custom['train'].astype(int).tolist()}, dtype=bool)",
        ]
    else:
        n = N_REGRESS if c.problem == "regression" else N_CLASSIFY
        extra = f", classes={c.classes}" if c.dataset == "gauss" else ""
        lines += [
            f"ds = gw.data.datasets.{DATASET_FUNCTIONS[c.dataset]}"
            f"(n={n}, noise={c.noise / 100!r}, seed=SEED{extra})",
            "X, y = ds.X, ds.y",
            f"# {c.train_ratio}% of the points train, the rest test",
            "train = np.zeros(len(X), dtype=bool)",
            "train[np.random.default_rng(SEED).permutation(len(X))"
            f"[: max(1, round(len(X) * {c.train_ratio} / 100))]] = True",
        ]
    lines += [
        "",
        "x1, x2 = X[:, 0], X[:, 1]",
        f"F = np.column_stack([{', '.join(FEATURE_CODE[f] for f in c.features)}])"
        ".astype(np.float32)",
    ]
    if c.blowup_column in c.features:
        j = c.features.index(c.blowup_column)
        lines.append(
            f"F[:, {j}] = F[:, {j}] * {c.blowup_scale!r} + {c.blowup_offset!r}"
            f"  # {c.blowup_column}, blown up"
        )
    if c.scaling == "scaled":
        lines += [
            "# the feature audit's recommended scaling, fitted on the training points",
            f"scaler = gw.preprocessing.AutoScaler(feature_names={list(c.features)!r})"
            ".fit(F[train])",
            "F = scaler.transform(F).astype(np.float32)",
        ]
    if c.problem == "regression":
        lines.append("targets = y.astype(np.float32).reshape(-1, 1)")
    elif c.loss == "mse":
        lines.append(f"targets = np.eye({c.n_classes}, dtype=np.float32)[y]  # one-hot, for MSE")
    else:
        lines.append("targets = y.astype(np.int64)")
    lines += ["", "rng = np.random.default_rng(SEED)", "model = nn.Sequential("]
    width, init = len(c.features), INIT_CODE[c.init]
    for i, units in enumerate(c.layers):
        lines.append(f"    nn.Linear({width}, {units}, init={init}, rng=rng),")
        if c.batchnorm:
            lines.append(f"    nn.BatchNorm1d({units}),")
        lines.append(f"    {ACTIVATION_CODE[c.activation]},")
        if c.dropout[i] > 0:
            lines.append(f"    nn.Dropout({c.dropout[i]!r}, rng=rng),")
        width = units
    n_out = 1 if c.problem == "regression" else c.n_classes
    lines += [f"    nn.Linear({width}, {n_out}, init={init}, rng=rng),", ")"]
    if c.optimizer == "adam":
        lines.append(f"optimizer = gw.optim.Adam(model.parameters(), lr={c.lr!r})")
    else:
        momentum = ", momentum=0.9" if c.optimizer == "momentum" else ""
        lines.append(f"optimizer = gw.optim.SGD(model.parameters(), lr={c.lr!r}{momentum})")
    data_loss = "nn.CrossEntropyLoss()" if c.loss == "cross_entropy" else "nn.MSELoss()"
    lines.append(f"data_loss = {data_loss}")
    if c.regularization != "none" and c.reg_rate > 0:
        term = "abs(w).sum()" if c.regularization == "l1" else "(w * w).sum() / 2"
        lines += [
            "weights = [m.weight for m in model if isinstance(m, nn.Linear)]",
            "",
            "",
            "def loss(outputs, targets):",
            f'    """The data loss plus {c.regularization.upper()} regularization of the '
            'weights."""',
            "    total = data_loss(outputs, targets)",
            "    for w in weights:",
            f"        total = total + {c.reg_rate!r} * ({term})",
            "    return total",
            "",
            "",
        ]
    else:
        lines.append("loss = data_loss")
    clip = f"\n    clip_grad_norm={c.clip!r}," if c.clip else ""
    lines += [
        "history = gw.fit(",
        "    model, (F[train], targets[train]), loss=loss, optimizer=optimizer, epochs=EPOCHS,",
        f"    batch_size={c.batch_size},",
        "    validation=(F[~train], targets[~train]) if (~train).any() else None,",
        f"    seed=SEED, verbose=0,{clip}",
        ")",
        "",
        "# the losses as the playground shows them: the data loss over every point, eval mode",
        "model.eval()",
        "with gw.no_grad():",
        '    for name, part in (("train", train), ("test", ~train)):',
        "        if part.any():",
        "            out = model(gw.tensor(F[part]))",
        '            line = f"{name} loss {data_loss(out, targets[part]).item():.6g}"',
    ]
    if c.problem == "classification":
        lines.append(
            '            line += f", accuracy {np.mean(out.data.argmax(axis=1) == y[part]):.3f}"'
        )
    lines += [
        "            print(line)",
        "for finding in history.findings:",
        '    print("doctor:", finding.headline())',
    ]
    return "\n".join(lines) + "\n"


def _describe(c: Config) -> str:
    widths = "-".join(str(w) for w in (len(c.features), *c.layers))
    return f"{c.dataset}, features {', '.join(c.features)}, a {widths} {c.activation} network"


def checkpoint_bytes(run: Run) -> bytes:
    """The run's model (and optimizer state) as a gradwell checkpoint file's bytes."""
    from ..train import save

    fd, path = tempfile.mkstemp(suffix=".safetensors")
    os.close(fd)
    try:
        scaler = run.data.scaler
        extra: dict[str, Any] = {"scaler": scaler} if scaler is not None else {}
        save(path, run.model, run.optimizer, epoch=run.epoch,
             playground=json.dumps(run.config.to_dict()), **extra)  # fmt: skip
        with open(path, "rb") as f:
            return f.read()
    finally:
        os.unlink(path)
