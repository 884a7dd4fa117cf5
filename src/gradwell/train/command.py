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

from .._atomic import atomic_write
from ..data.csv import CSVFormatError
from .habits import OPTIMIZER_NAMES
from .table_run import (
    ACTIVATIONS,
    DEFAULTS,
    TARGET_SCALERS,
    UsageError,
    build,
    fit_run,
    prepare,
    settings_json,
)
from .table_run import settings as checked_settings


# ------------------------------------------------------------------ arguments
def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "data",
        nargs="?",
        help="the CSV file (header row, one example per row); default: the one --config names",
    )
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
    option("--weight-decay", type=float, help="L2 penalty of the optimizer (default 0)")
    option("--clip-grad-norm", type=float, help="clip the gradient to this total norm")
    option(
        "--target-scaler",
        choices=TARGET_SCALERS,
        help="how a regression target is scaled for training (default standardize)",
    )
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
    """The saved ``--config`` (if any), then the flags given, checked."""
    config: dict[str, Any] = {}
    if args.config:
        try:
            config = json.loads(Path(args.config).read_text())
        except ValueError as e:
            raise UsageError(f"{args.config}: not a JSON config ({e})") from None
        if not isinstance(config, dict):
            raise UsageError(f"{args.config}: expected a JSON object of settings")
    for key in DEFAULTS:
        value = getattr(args, key, None)
        if value is not None:
            config[key] = value
    if args.data:
        config["data"] = str(Path(args.data).resolve())  # doctor --fix retrains on it
    if not config.get("data"):
        raise UsageError("expected DATA.csv (or a --config that names it)")
    return checked_settings(config, args.config or "the settings")


# ------------------------------------------------------------------ train
def train(args: argparse.Namespace) -> int:
    import gradwell as gw
    from gradwell.preprocessing import audit

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
    path = Path(settings["data"])
    out = Path(args.out) if args.out else Path("runs") / path.stem
    table = prepare(settings)
    data = table.data
    model, optimizer = build(settings)
    audit_text = str(audit(table.train.frame(), categorical=list(data.categories)))
    names = table.preprocessing.get_feature_names_out().tolist()
    doctor = gw.doctor.Doctor(feature_names=names)
    widths = settings["hidden"].replace(",", "-")
    say(
        f"{path.name}: {len(data)} rows; {len(table.train)} train, {len(table.validation)} "
        f"validation, {len(table.test)} test; {data.task} of {settings['target']!r}\n"
        f"{audit_text}\nmodel: {len(names)}-{widths}-{model[-1].out_features} MLP "
        f"({settings['activation']})"
    )
    history = fit_run(
        model,
        optimizer,
        settings,
        verbose=0 if args.quiet else 1,
        doctor=doctor,
        distributed=ranks > 1,
    )
    metrics = gw.evaluate(
        model,
        (table.X[2], table.y(table.test)),
        loss="cross_entropy" if table.classification else "mse",
        metrics=["accuracy"] if table.classification else ["rmse", "mae", "r2"],
        prefix="test_",
    )
    metrics["epochs_run"] = len(history.history.get("loss", []))
    if not main:
        return 0
    out.mkdir(parents=True, exist_ok=True)
    gw.save(
        out / "model.safetensors",
        model,
        scaler=table.preprocessing,
        task=data.task,
        target=settings["target"],
        classes=list(data.target_names),
        columns=list(data.feature_names),
        categorical=list(data.categories),
    )
    atomic_write(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    atomic_write(out / "config.json", settings_json(settings))
    doctor.save_html(out / "report.html")
    summary = str(model.summary(table.X[0][:2], print_fn=None))
    _add_to_report(out / "report.html", audit_text, summary, history.plot(), metrics)
    print(f"verdict: {_verdict(history)}")
    print("test: " + ", ".join(f"{k[5:]} {v:.4g}" for k, v in metrics.items() if k != "epochs_run"))
    print(
        f"wrote {out}/model.safetensors, metrics.json, config.json; report: {out / 'report.html'}"
    )
    return 0


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


def _verdict(history: Any) -> str:
    """Healthy (no warning or critical finding) or the top findings; notes (info) after."""
    findings = getattr(history, "findings", None) or []
    serious = [f for f in findings if f.severity != "info"]
    notes = [f for f in findings if f.severity == "info"]

    def listed(fs: list[Any]) -> str:
        return "; ".join(f"[{f.severity}] {f.kind} at {f.where}" for f in fs[:3])

    verdict = listed(serious) if serious else "healthy: no warning or critical finding"
    return (
        verdict
        + (f"; notes: {listed(notes)}" if notes else "")
        + (" (details in the report)" if findings else "")
    )


def _add_to_report(
    path: Path, audit: str, summary: str, curves: Any, metrics: dict[str, Any]
) -> None:
    """The audit, the model's summary, the curves per epoch and the test metrics, appended
    to the doctor's report."""
    from gradwell.doctor.plots import png_base64

    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{v:.6g}</td></tr>" for k, v in metrics.items()
    )
    section = (
        f"<section><h2>Data audit</h2><pre>{html.escape(audit)}</pre>"
        f"<h2>Model</h2><pre>{html.escape(summary)}</pre>"
        f'<h2>Curves per epoch</h2><img alt="loss and metrics per epoch" '
        f'src="{png_base64(curves)}">'
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
