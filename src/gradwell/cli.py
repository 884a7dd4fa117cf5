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


COMMANDS: dict[str, tuple[str, Callable[[argparse.Namespace], int]]] = {
    "demo": ("run the main example", _demo),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gradwell", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, _) in COMMANDS.items():
        sub.add_parser(name, help=help_text)
    args = parser.parse_args(argv)
    return COMMANDS[args.command][1](args)


if __name__ == "__main__":
    sys.exit(main())
