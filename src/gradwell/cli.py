"""The ``gradwell`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn


def train_digits(epochs: int = 30, seed: int = 0, verbose: int = 1) -> tuple[Any, float]:
    """The demo's digits run (see :func:`gradwell.demo.train_digits`)."""
    from .demo import train_digits as run

    return run(epochs, seed, verbose)


def _demo(args: argparse.Namespace) -> int:
    from .demo import run

    return run(args)


def _demo_arguments(parser: argparse.ArgumentParser) -> None:
    from .demo import add_arguments

    add_arguments(parser)


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


def _train(args: argparse.Namespace) -> int:
    from .train import command

    return command.run(command.train, args)


def _predict(args: argparse.Namespace) -> int:
    from .train import command

    return command.run(command.predict, args)


def _train_arguments(parser: argparse.ArgumentParser) -> None:
    from .train.command import add_train_arguments

    add_train_arguments(parser)


def _predict_arguments(parser: argparse.ArgumentParser) -> None:
    from .train.command import add_predict_arguments

    add_predict_arguments(parser)


def _export(args: argparse.Namespace) -> int:
    from .export.command import command

    return command(args)


def _export_arguments(parser: argparse.ArgumentParser) -> None:
    from .export.command import add_arguments

    add_arguments(parser)


def _playground(args: argparse.Namespace) -> int:
    from .playground.command import command

    return command(args)


def _playground_arguments(parser: argparse.ArgumentParser) -> None:
    from .playground.command import add_arguments

    add_arguments(parser)


COMMANDS: dict[str, tuple[str, Callable[[argparse.Namespace], int]]] = {
    "train": ("DATA.csv --target COLUMN: audit, preprocess, train an MLP, report", _train),
    "predict": ("MODEL DATA.csv: predictions (and probabilities) from a trained model", _predict),
    "export": ("MODEL.safetensors MODEL.onnx: the model (and its preprocessing) as ONNX", _export),
    "demo": (
        "digits with the doctor watching, then a classic failure diagnosed and repaired",
        _demo,
    ),
    "explain": ("write a page that steps through backpropagation on a graph", _explain),
    "doctor": ("--fix SCRIPT_OR_CONFIG: diagnose and repair a run; --tour: the classics", _doctor),
    "playground": ("a local TensorFlow-Playground page, trained live by gradwell", _playground),
}
# Commands with options: the function that adds them to the command's parser.
ARGUMENTS: dict[str, Callable[[argparse.ArgumentParser], None]] = {
    "demo": _demo_arguments,
    "train": _train_arguments,
    "predict": _predict_arguments,
    "export": _export_arguments,
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
    from . import __version__

    parser = _Parser(
        prog="gradwell",
        description="gradwell: train neural networks on your data, and diagnose the sick runs.",
    )
    parser.add_argument("--version", action="version", version=f"gradwell {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, _) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text)
        if name in ARGUMENTS:
            ARGUMENTS[name](command)
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # to start again under mpiexec
    try:
        return COMMANDS[args.command][1](args)
    except OSError as e:  # a path that cannot be read or written: one line, no traceback
        print(f"gradwell {args.command}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
