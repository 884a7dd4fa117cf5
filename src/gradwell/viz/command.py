"""``gradwell explain``: write the backpropagation page for a network or an expression."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

DESCRIPTION = """\
Write one self-contained HTML page that steps through the forward and backward
pass of a computation graph, and print its path. Without options: a 2-3-2-1 MLP
on one training example with the squared error, drawn neuron by neuron and op by op.
Step with the buttons or the arrow keys; space plays and pauses.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = DESCRIPTION
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument(
        "-o", "--output", default="backprop.html", help="page to write (default: backprop.html)"
    )
    p.add_argument(
        "--activation",
        default=None,
        choices=["tanh", "relu", "sigmoid"],
        help="activation between layers (default: tanh)",
    )
    p.add_argument(
        "--expr",
        metavar="EXPR",
        help="explain a formula in x and y instead, "
        'e.g. "tanh(x * y + x) * x"; allowed: numbers, x, y, pi, e, + - * / ** '
        "and exp log log1p sqrt abs tanh sigmoid relu gelu erf maximum minimum",
    )
    p.add_argument("--x", type=float, default=1.5, help="value of x for --expr (default 1.5)")
    p.add_argument("--y", type=float, default=-0.5, help="value of y for --expr (default -0.5)")
    p.add_argument(
        "--model",
        metavar="CHECKPOINT",
        help="explain a Sequential MLP saved "
        "with gw.save (Linear layers with one activation between them)",
    )
    p.add_argument("--example", metavar="X1,X2,...", help="the input example for --model")
    p.add_argument("--target", metavar="Y1,...", help="the target for --model")


def run(args: argparse.Namespace) -> int:
    # numpy's warnings (0 / 0, log of a negative number) would print source lines; the
    # page shows the resulting inf and nan, and one note below says where they came from
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        status = _write(args)
    notes = sorted({str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)})
    if status == 0 and notes:
        print(
            f"gradwell explain: note: not every value is finite ({'; '.join(notes)}); the "
            "page shows the inf and nan values where they arise",
            file=sys.stderr,
        )
    return status


def _write(args: argparse.Namespace) -> int:
    from .examples import default_network, explain_mlp, expression, mlp_from_checkpoint
    from .explain import explain

    try:
        if Path(args.output).is_dir():
            raise IsADirectoryError(
                f"-o {args.output} is a folder; expected the page's file path, such as "
                f"{Path(args.output) / 'backprop.html'}"
            )
        if args.expr is not None:
            if args.model is not None:
                raise ValueError("give either --expr or --model, not both")
            f = expression(args.expr, args.x, args.y)
            title = f"f(x, y) = {args.expr.strip()} at x = {args.x:g}, y = {args.y:g}"
            path = explain(f, args.output, title=title)
        elif args.model is not None:
            if args.example is None or args.target is None:
                raise ValueError("--model needs --example X1,X2,... and --target Y1,...")
            activation = args.activation or "tanh"
            model = mlp_from_checkpoint(args.model, activation)
            x = _numbers(args.example, "--example")
            y = _numbers(args.target, "--target")
            n_in, n_out = model[0].in_features, model[len(model) - 1].out_features
            if x.size != n_in or y.size != n_out:
                raise ValueError(
                    f"the model takes {n_in} inputs and gives {n_out} outputs; got "
                    f"--example with {x.size} and --target with {y.size} values"
                )
            title = f"{args.model} on one example ({activation} between layers)"
            path = explain_mlp(model, x.reshape(1, -1), y.reshape(1, -1), args.output, title)
        else:
            activation = args.activation or "tanh"
            model, x, y = default_network(activation)
            title = f"a 2-3-2-1 {activation} network on one example"
            path = explain_mlp(model, x, y, args.output, title)
    except (ValueError, OSError) as e:  # bad options, unreadable or unwritable files
        print(f"gradwell explain: {e}", file=sys.stderr)
        return 2
    print(path)
    return 0


def _numbers(text: str, option: str) -> np.ndarray:
    try:
        return np.array([float(v) for v in text.split(",")], dtype=np.float32)
    except ValueError:
        raise ValueError(f"{option}: expected numbers separated by commas; got {text!r}") from None
