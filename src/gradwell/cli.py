"""The ``gradwell`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence


def _demo(args: argparse.Namespace) -> int:
    import gradwell as gw

    # A small graph with a shared sub-result: backward computes each gradient once.
    x = gw.tensor([0.5, -1.0, 2.0], requires_grad=True)
    w = gw.tensor([[0.1, 0.2], [-0.3, 0.4], [0.5, -0.6]], requires_grad=True)
    h = gw.tanh(x @ w)
    loss = (h * h).sum() + h.sum()
    loss.backward()
    print("x      =", x.numpy())
    print("tanh(x @ w) =", h.numpy())
    print("loss   =", loss.item())
    print("dloss/dx =", x.grad.numpy())
    print("dloss/dw =\n", w.grad.numpy())
    return 0


def _explain(args: argparse.Namespace) -> int:
    from .viz.command import run

    return run(args)


def _explain_arguments(parser: argparse.ArgumentParser) -> None:
    from .viz.command import add_arguments

    add_arguments(parser)


COMMANDS: dict[str, tuple[str, Callable[[argparse.Namespace], int]]] = {
    "demo": ("run the main example", _demo),
    "explain": ("write a page that steps through backpropagation on a graph", _explain),
}
# Commands with options: the function that adds them to the command's parser.
ARGUMENTS: dict[str, Callable[[argparse.ArgumentParser], None]] = {
    "explain": _explain_arguments,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gradwell", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, _) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text)
        if name in ARGUMENTS:
            ARGUMENTS[name](command)
    args = parser.parse_args(argv)
    return COMMANDS[args.command][1](args)


if __name__ == "__main__":
    sys.exit(main())
