"""``gradwell train DATA.csv --target COLUMN`` and ``gradwell predict MODEL DATA.csv``.

train: read the table, audit it, fit the recommended preprocessing on the training
rows, build an MLP, train it with the doctor watching, test it, and write
``model.safetensors``, ``report.html``, ``metrics.json`` and ``config.json`` into
the output folder. predict: apply a saved model (and its preprocessing) to a CSV.
"""

from __future__ import annotations

import argparse
import csv
import html
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_write
from ..data.csv import CSVFormatError
from .habits import OPTIMIZER_NAMES

#: What ``train`` uses where neither a flag nor ``--config`` says otherwise.
DEFAULTS: dict[str, Any] = {
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


class UsageError(ValueError):
    """Input the command cannot use; printed as one line, exit status 2."""


# ------------------------------------------------------------------ arguments
def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", help="the CSV file (header row, one example per row)")
    # Every option defaults to None so that --config values apply unless a flag is given.
    option = parser.add_argument
    option("--target", help="the column to predict")
    option(
        "--task",
        choices=["auto", "classification", "regression"],
        help="what kind of target (default: inferred from its values)",
    )
    option("--hidden", help="hidden layer widths, e.g. 64,32 (default 64,32)")
    option("--activation", choices=sorted(ACTIVATIONS), help="(default relu)")
    option("--dropout", type=float, help="dropout rate after each hidden layer (default 0.1)")
    option("--batchnorm", action="store_const", const=True, help="BatchNorm after each layer")
    option("--epochs", type=int, help="(default 30)")
    option("--batch-size", type=int, help="(default 32)")
    option("--lr", type=float, help="learning rate (default 1e-3)")
    option("--optimizer", choices=sorted(OPTIMIZER_NAMES), help="(default adam)")
    option(
        "--validation-split",
        type=float,
        help="fraction of the training rows for validation, stratified for classification "
        "(default 0.2)",
    )
    option("--test-split", type=float, help="fraction held out for the test metrics (default 0.2)")
    option("--seed", type=int, help="(default 0)")
    option(
        "--early-stopping",
        type=int,
        metavar="PATIENCE",
        help="stop after PATIENCE epochs without a better val_loss; keep the best weights",
    )
    option("--encoding", help="the file's text encoding (default UTF-8)")
    option("--config", help="a config.json written by an earlier run; flags override it")
    option("--out", help="output folder (default runs/<name of the CSV>)")
    option("--quiet", action="store_true", help="no progress bar")
    option(
        "--ranks",
        type=int,
        help="train on N processes (data parallel, MPI): starts mpiexec -n N itself; "
        "needs gradwell[distributed]. --batch-size is per rank",
    )


def add_predict_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a model.safetensors written by gradwell train")
    parser.add_argument("data", help="a CSV with the columns the model was trained on")
    parser.add_argument("--out", help="where to write the predictions (default: standard output)")
    parser.add_argument(
        "--mc-dropout",
        type=int,
        default=0,
        metavar="N",
        help="N passes with dropout on: the mean, and the spread per row",
    )
    parser.add_argument("--encoding", default="utf-8-sig", help="the file's text encoding")


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    settings = dict(DEFAULTS)
    if args.config:
        try:
            saved = json.loads(Path(args.config).read_text())
        except ValueError as e:
            raise UsageError(f"{args.config}: not a JSON config ({e})") from None
        unknown = sorted(set(saved) - set(DEFAULTS))
        if not isinstance(saved, dict) or unknown:
            raise UsageError(
                f"{args.config}: unknown settings {unknown}; known: {sorted(DEFAULTS)}"
            )
        settings.update(saved)
    for key in DEFAULTS:
        value = getattr(args, key, None)
        if value is not None:
            settings[key] = value
    if not settings["target"]:
        raise UsageError("expected --target COLUMN (the column to predict)")
    for key in ("validation_split", "test_split"):
        if not 0.0 < settings[key] < 1.0:
            raise UsageError(f"expected 0 < --{key.replace('_', '-')} < 1, got {settings[key]}")
    return settings


# ------------------------------------------------------------------ train
def train(args: argparse.Namespace) -> int:
    import gradwell as gw
    from gradwell.data.datasets import load_csv
    from gradwell.preprocessing import TablePreprocessor, TargetScaler

    settings = _settings(args)
    ranks = _ranks(args)
    if ranks > 1 and gw.distributed.world_size() == 1:  # start the job: this again, N times
        from gradwell.distributed.launch import launch

        print(f"gradwell train: starting {ranks} ranks with mpiexec")
        try:
            return launch(ranks, ["-m", "gradwell", *args.argv])
        except gw.distributed.DistributedError as e:
            raise UsageError(f"--ranks {ranks}: {e}") from None
    main = gw.distributed.is_main()  # rank 0 alone prints and writes
    say = print if main else _silent
    path = Path(args.data)
    out = Path(args.out) if args.out else Path("runs") / path.stem
    data = load_csv(
        path, target=settings["target"], task=settings["task"], encoding=settings["encoding"]
    )
    _check_target(data, path.name)
    classification = data.task == "classification"
    rest, test = data.split(settings["test_split"], seed=settings["seed"])
    train_part, validation = rest.split(settings["validation_split"], seed=settings["seed"] + 1)
    preprocessing = TablePreprocessor(categorical=list(data.categories))
    X_train = preprocessing.fit_transform(train_part.frame())
    X_val, X_test = (preprocessing.transform(d.frame()) for d in (validation, test))

    def targets(d: Any) -> np.ndarray:
        return d.y if classification else d.y.reshape(-1, 1)

    outputs = data.n_classes if classification else 1
    model = mlp(X_train.shape[1], outputs, settings)
    optimizer = getattr(gw.optim, OPTIMIZER_NAMES[settings["optimizer"]][0])(
        model.parameters(), lr=settings["lr"]
    )
    callbacks = []
    if settings["early_stopping"]:
        callbacks.append(
            gw.callbacks.EarlyStopping(
                patience=settings["early_stopping"], restore_best_weights=True
            )
        )
    doctor = gw.doctor.Doctor(feature_names=preprocessing.get_feature_names_out().tolist())
    say(
        f"{path.name}: {len(data)} rows; {len(train_part)} train, {len(validation)} "
        f"validation, {len(test)} test; {data.task} of {settings['target']!r}\n"
        f"{_audit_text(train_part)}\nmodel: {X_train.shape[1]}-"
        f"{settings['hidden'].replace(',', '-')}-{outputs} MLP ({settings['activation']})"
    )
    history = gw.fit(
        model,
        (X_train, targets(train_part)),
        loss="cross_entropy" if classification else "mse",
        optimizer=optimizer,
        epochs=settings["epochs"],
        batch_size=settings["batch_size"],
        validation=(X_val, targets(validation)),
        metrics=["accuracy"] if classification else ["rmse", "r2"],
        callbacks=callbacks,
        seed=settings["seed"],
        verbose=0 if args.quiet else 1,
        doctor=doctor,
        target_scaler=None if classification else TargetScaler(),
        distributed=ranks > 1,
    )
    metrics = gw.evaluate(
        model,
        (X_test, targets(test)),
        loss="cross_entropy" if classification else "mse",
        metrics=["accuracy"] if classification else ["rmse", "mae", "r2"],
        prefix="test_",
    )
    metrics["epochs_run"] = len(history.history.get("loss", []))
    if not main:
        return 0
    out.mkdir(parents=True, exist_ok=True)
    gw.save(
        out / "model.safetensors",
        model,
        scaler=preprocessing,
        task=data.task,
        target=settings["target"],
        classes=list(data.target_names),
        columns=list(data.feature_names),
        categorical=list(data.categories),
    )
    atomic_write(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    atomic_write(out / "config.json", json.dumps(settings, indent=2) + "\n")
    doctor.save_html(out / "report.html")
    _add_to_report(out / "report.html", _audit_text(train_part), metrics)
    print(f"verdict: {_verdict(history)}")
    print("test: " + ", ".join(f"{k[5:]} {v:.4g}" for k, v in metrics.items() if k != "epochs_run"))
    print(
        f"wrote {out}/model.safetensors, metrics.json, config.json; report: {out / 'report.html'}"
    )
    return 0


def mlp(inputs: int, outputs: int, settings: dict[str, Any]) -> Any:
    """Linear -> [BatchNorm] -> activation -> [Dropout] per hidden width, then Linear."""
    from gradwell import nn

    try:
        widths = [int(w) for w in str(settings["hidden"]).split(",") if w.strip()]
    except ValueError:
        raise UsageError(
            f"expected --hidden as widths like 64,32, got {settings['hidden']!r}"
        ) from None
    if any(w < 1 for w in widths):
        raise UsageError(f"expected positive --hidden widths, got {settings['hidden']!r}")
    rng = np.random.default_rng(settings["seed"])
    layers: list[Any] = []
    for width in widths:
        layers.append(nn.Linear(inputs, width, rng=rng))
        if settings["batchnorm"]:
            layers.append(nn.BatchNorm1d(width))
        layers.append(getattr(nn, ACTIVATIONS[settings["activation"]])())
        if settings["dropout"]:
            layers.append(nn.Dropout(settings["dropout"], rng=rng))
        inputs = width
    layers.append(nn.Linear(inputs, outputs, rng=rng))
    return nn.Sequential(*layers)


def _ranks(args: argparse.Namespace) -> int:
    """How many ranks: ``--ranks``, or those of the MPI job this process is one of."""
    import gradwell as gw

    ranks = getattr(args, "ranks", None)
    if ranks is None:
        return int(gw.distributed.world_size())
    if ranks < 1:
        raise UsageError(f"expected --ranks N with N >= 1, got {ranks}")
    started = gw.distributed.world_size()
    if started > 1 and started != ranks:
        raise UsageError(f"--ranks {ranks}, but mpiexec started this job with {started} ranks")
    return int(ranks)


def _silent(*args: Any, **kwargs: Any) -> None:
    return None


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


def _audit_text(data: Any) -> str:
    """One line per column: its kind, missing fraction, and levels for text columns."""
    lines = ["audit (training rows):"]
    for name, column in data.frame().items():
        if name in data.categories:
            present = column[column != None]  # noqa: E711 (object array)
            levels, counts = np.unique(present.astype(str), return_counts=True)
            rare = int(np.sum(counts < 0.01 * len(column)))
            kind = f"categorical, {len(levels)} levels" + (f" ({rare} rare)" if rare else "")
            missing = 1 - len(present) / len(column)
        else:
            missing = float(np.isnan(column).mean())
            kind = "numeric"
        lines.append(f"  {name}: {kind}" + (f", {missing:.1%} missing" if missing else ""))
    return "\n".join(lines)


def _verdict(history: Any) -> str:
    findings = getattr(history, "findings", None) or []
    if not findings:
        return "healthy: the doctor found nothing wrong"
    return "; ".join(str(getattr(f, "title", f)) for f in findings[:3])


def _add_to_report(path: Path, audit: str, metrics: dict[str, Any]) -> None:
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{v:.6g}</td></tr>" for k, v in metrics.items()
    )
    section = (
        f"<section><h2>Data audit</h2><pre>{html.escape(audit)}</pre>"
        f"<h2>Test metrics</h2><table>{rows}</table></section>"
    )
    text = path.read_text(encoding="utf-8")
    at = text.rfind("</body>")
    text = text[:at] + section + text[at:] if at >= 0 else text + section
    atomic_write(path, text)


# ------------------------------------------------------------------ predict
def predict(args: argparse.Namespace) -> int:
    import gradwell as gw
    from gradwell.data.csv import read_csv_columns
    from gradwell.data.datasets import load_csv
    from gradwell.train.predict import predictive_entropy

    model, preprocessing, meta = gw.load(args.model)
    if preprocessing is None or "columns" not in meta:
        raise UsageError(f"{args.model}: not a model written by gradwell train (no preprocessing)")
    expected = list(meta["columns"])
    header = read_csv_columns(args.data, args.encoding)[0]
    missing = [c for c in expected if c not in header]
    extra = [c for c in header if c not in expected and c != meta["target"]]
    if missing or extra:
        raise UsageError(
            f"{Path(args.data).name}: expected the columns the model was trained on {expected}; "
            + "; ".join(
                p for p in (missing and f"missing {missing}", extra and f"unexpected {extra}") if p
            )
        )
    data = load_csv(
        args.data, columns=expected, categorical=meta["categorical"], encoding=args.encoding
    )
    X = preprocessing.transform(data.frame())
    rows: dict[str, Any] = {}
    if meta["task"] == "classification":
        probs = gw.predict_proba(model, X, mc_dropout=args.mc_dropout)
        classes = meta["classes"]
        rows["prediction"] = [classes[i] for i in probs.argmax(axis=1)]
        for k, name in enumerate(classes):
            rows[f"p_{name}"] = probs[:, k]
        if args.mc_dropout:
            rows["entropy"] = predictive_entropy(probs)
    else:
        if args.mc_dropout:
            passes = gw.predict(model, X, mc_dropout=args.mc_dropout)[..., 0]
            rows["prediction"], rows["std"] = passes.mean(axis=0), passes.std(axis=0)
        else:
            rows["prediction"] = gw.predict(model, X)[:, 0]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(list(rows))
    for values in zip(*rows.values(), strict=True):
        writer.writerow([v if isinstance(v, str) else f"{float(v):.6g}" for v in values])
    if args.out:
        atomic_write(args.out, buffer.getvalue())
        print(f"wrote {len(data)} predictions to {args.out}")
    else:
        print(buffer.getvalue(), end="")
    return 0


def run(command: Any, args: argparse.Namespace) -> int:
    """Run a command, turning bad input into one line on stderr and exit status 2."""
    import sys

    from gradwell.train.checkpoint import CheckpointError

    try:
        return int(command(args))
    except (UsageError, CSVFormatError, CheckpointError, KeyError) as e:
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"gradwell {args.command}: {message}", file=sys.stderr)
        return 2
