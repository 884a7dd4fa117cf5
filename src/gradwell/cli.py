"""The ``gradwell`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn


def train_digits(epochs: int = 30, seed: int = 0, verbose: int = 1) -> tuple[Any, float]:
    """The demo: a 64-128-64-10 ReLU MLP with BatchNorm and Dropout on scikit-learn's digits.

    Stratified 80/20 split, features scaled to [-1, 1] on the training part only,
    Adam, cross-entropy. Returns the History and the test accuracy.
    """
    import numpy as np
    from sklearn.datasets import load_digits

    import gradwell as gw
    from gradwell import nn
    from gradwell.preprocessing import LinearScaler

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = gw.data.train_test_split(
        X, y, test_size=0.2, seed=seed, stratify=y
    )
    scaler = LinearScaler()
    X_train = scaler.fit_transform(X_train)
    X_test = scaler.transform(X_test)

    rng = np.random.default_rng(seed)
    model = nn.Sequential(
        nn.Linear(64, 128, rng=rng), nn.BatchNorm1d(128), nn.ReLU(), nn.Dropout(0.2, rng=rng),
        nn.Linear(128, 64, rng=rng), nn.BatchNorm1d(64), nn.ReLU(), nn.Dropout(0.2, rng=rng),
        nn.Linear(64, 10, rng=rng),
    )  # fmt: skip
    if verbose:
        print(
            f"digits: {len(X_train)} training and {len(X_test)} test images of 8x8 pixels, "
            "10 classes\nmodel: 64-128-64-10 ReLU MLP, BatchNorm1d, Dropout(0.2), Adam(lr=1e-3)"
        )
    history = gw.fit(
        model,
        (X_train, y_train),
        loss=nn.CrossEntropyLoss(),
        optimizer=gw.optim.Adam(model.parameters(), lr=1e-3),
        epochs=epochs,
        batch_size=32,
        validation=(X_test, y_test),
        metrics=["accuracy"],
        seed=seed,
        verbose=verbose,
    )
    predicted = gw.predict(model, X_test).argmax(axis=1)
    accuracy = float(np.mean(predicted == y_test))
    return history, accuracy


def _demo(args: argparse.Namespace) -> int:
    _, accuracy = train_digits()
    print(f"test accuracy: {accuracy:.2%}")
    return 0


def _explain(args: argparse.Namespace) -> int:
    from .viz.command import run

    return run(args)


def _explain_arguments(parser: argparse.ArgumentParser) -> None:
    from .viz.command import add_arguments

    add_arguments(parser)


def _doctor(args: argparse.Namespace) -> int:
    from .doctor.command import command

    return command(args)


def _doctor_arguments(parser: argparse.ArgumentParser) -> None:
    from .doctor.command import add_arguments

    add_arguments(parser)


def _playground(args: argparse.Namespace) -> int:
    from .playground.command import command

    return command(args)


def _playground_arguments(parser: argparse.ArgumentParser) -> None:
    from .playground.command import add_arguments

    add_arguments(parser)


COMMANDS: dict[str, tuple[str, Callable[[argparse.Namespace], int]]] = {
    "demo": ("train an MLP on handwritten digits and report test accuracy", _demo),
    "explain": ("write a page that steps through backpropagation on a graph", _explain),
    "doctor": ("--fix SCRIPT_OR_CONFIG: diagnose and repair a run; --tour: the classics", _doctor),
    "playground": ("a local TensorFlow-Playground page, trained live by gradwell", _playground),
}
# Commands with options: the function that adds them to the command's parser.
ARGUMENTS: dict[str, Callable[[argparse.ArgumentParser], None]] = {
    "explain": _explain_arguments,
    "doctor": _doctor_arguments,
    "playground": _playground_arguments,
}


class _Parser(argparse.ArgumentParser):
    """argparse's parser, with a hint when an option's value starts with '-'."""

    def error(self, message: str) -> NoReturn:
        if message.endswith("expected one argument"):
            option = message.removeprefix("argument ").split(":")[0].split("/")[-1]
            message += (
                f" (a value that starts with '-', such as a formula, must be attached with '=':"
                f' {option}=VALUE, e.g. --expr="-x*y")'
            )
        super().error(message)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _Parser(prog="gradwell", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, _) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text)
        if name in ARGUMENTS:
            ARGUMENTS[name](command)
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command][1](args)
    except OSError as e:  # a path that cannot be read or written: one line, no traceback
        print(f"gradwell {args.command}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
