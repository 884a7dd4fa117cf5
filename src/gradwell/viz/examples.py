"""Ready-made graphs to explain: the default small network, an expression, a saved MLP."""

from __future__ import annotations

import ast
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..autograd import ops
from ..autograd.creation import tensor
from ..autograd.tensor import Tensor
from .explain import explain
from .neurons import scalar_mlp

# The default 2-3-2-1 network: weights with one decimal, so every step is easy to follow.
DEFAULT_WEIGHTS = [
    ([[0.3, -0.5], [-0.9, 0.4], [0.6, 0.8]], [0.2, 0.5, 0.1]),
    ([[0.9, 0.6, -1.0], [0.7, -0.9, 0.5]], [-0.6, 0.7]),
    ([[0.8, -0.4]], [-0.2]),
]
DEFAULT_X = [0.5, -1.0]
DEFAULT_Y = [1.0]


def default_network(activation: str = "tanh") -> tuple[Any, np.ndarray, np.ndarray]:
    """The 2-3-2-1 MLP (``gw.nn.Sequential``) and its one training example (x, y)."""
    from .. import nn

    acts = {"tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid}
    if activation not in acts:
        raise ValueError(f"unknown activation {activation!r}; expected one of {sorted(acts)}")
    modules: list[Any] = []
    for i, (w, b) in enumerate(DEFAULT_WEIGHTS):
        w_arr = np.array(w, dtype=np.float32)
        layer = nn.Linear(w_arr.shape[1], w_arr.shape[0])
        layer.weight.data[...] = w_arr
        assert layer.bias is not None
        layer.bias.data[...] = np.array(b, dtype=np.float32)
        modules.append(layer)
        if i < len(DEFAULT_WEIGHTS) - 1:
            modules.append(acts[activation]())
    x = np.array([DEFAULT_X], dtype=np.float32)
    y = np.array([DEFAULT_Y], dtype=np.float32)
    return nn.Sequential(*modules), x, y


def explain_mlp(
    model: Any, x: np.ndarray, y: np.ndarray, path: str | os.PathLike[str], title: str
) -> Path:
    """Explain an MLP's squared error on one example, in both views (neurons and tensors)."""
    from .. import nn

    xt, yt = tensor(x), tensor(y)
    xt.name, yt.name = "x", "y"
    loss_fn = nn.MSELoss()
    scalar = scalar_mlp(model, x.reshape(-1), y.reshape(-1))
    return explain(lambda: loss_fn(model(xt), yt), path, model=model, scalar=scalar, title=title)


# ---------------------------------------------------------------------------
# An expression of x and y.

FUNCTIONS = {
    "exp": ops.exp,
    "log": ops.log,
    "log1p": ops.log1p,
    "sqrt": ops.sqrt,
    "abs": ops.abs,
    "tanh": ops.tanh,
    "sigmoid": ops.sigmoid,
    "relu": ops.relu,
    "gelu": ops.gelu,
    "erf": ops.erf,
    "maximum": ops.maximum,
    "minimum": ops.minimum,
}
CONSTANTS = {"pi": math.pi, "e": math.e}
_OPERATORS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.USub, ast.UAdd)


MAX_LENGTH = 1000
"""Longest ``--expr`` accepted, in characters: the page draws every operation."""
MAX_DEPTH = 100
"""Deepest nesting of operations in an ``--expr`` (Python's compiler recurses on it)."""


def expression(text: str, x: float, y: float) -> Tensor:
    """Evaluate ``text``, a formula in x and y, with gradwell scalars (float64).

    Only numbers, x, y, ``pi``, ``e``, ``+ - * / **`` and the functions in
    ``FUNCTIONS`` are allowed: the text is checked before it runs, so it cannot
    reach anything else. Numbers are floats (so ``9**9**9`` overflows at once instead
    of computing a huge integer); the text is at most ``MAX_LENGTH`` characters and
    nests operations at most ``MAX_DEPTH`` deep.

    >>> round(expression("x * y + tanh(x)", 1.0, 2.0).item(), 4)
    2.7616
    """
    tree = _parse(text)
    xt = tensor(x, dtype=np.float64, requires_grad=True)
    yt = tensor(y, dtype=np.float64, requires_grad=True)
    xt.name, yt.name = "x", "y"
    names: dict[str, Any] = {"x": xt, "y": yt, **FUNCTIONS, **CONSTANTS}
    try:
        value = eval(compile(tree, "<expr>", "eval"), {"__builtins__": {}}, names)  # noqa: S307
    except OverflowError:
        raise ValueError(
            f"--expr: evaluating {text!r} at x={x}, y={y} failed: a number in it is too large "
            "for a float (about 1.8e308 at most)"
        ) from None
    except (ArithmeticError, TypeError, ValueError) as e:
        raise ValueError(f"--expr: evaluating {text!r} at x={x}, y={y} failed: {e}") from None
    if not isinstance(value, Tensor) or not value.requires_grad:
        raise ValueError(f"--expr: {text!r} does not depend on x or y, so it has no gradient")
    if value.dtype.kind == "c":
        raise ValueError(
            f"--expr: {text!r} is a complex number at x={x}, y={y} (a negative number to a "
            "fractional power?); explain draws real values only"
        )
    value.name = "f"
    return value


def _parse(text: str) -> ast.Expression:
    """The checked syntax tree of ``text``, its numbers made floats; ValueError otherwise."""
    if not isinstance(text, str):
        raise TypeError(f"--expr: expected the expression as a string; got {type(text).__name__}")
    text = text.strip()
    shown = text if len(text) <= 60 else text[:57] + "..."
    if len(text) > MAX_LENGTH:
        raise ValueError(
            f"--expr: the expression is {len(text)} characters long; at most {MAX_LENGTH} "
            f"are allowed ({shown!r})"
        )
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as e:
        raise ValueError(f"--expr: {shown!r} is not a valid expression ({e.msg})") from None
    except (RecursionError, MemoryError):
        raise ValueError(f"--expr: {shown!r} nests too deeply") from None
    stack: list[tuple[ast.AST, int]] = [(tree, 0)]
    while stack:  # iterative, so a deep tree cannot exhaust Python's stack here
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ValueError(
                f"--expr: {shown!r} nests operations more than {MAX_DEPTH} deep; "
                "write a shorter formula"
            )
        _check_allowed(node, shown)
        stack.extend((c, depth + isinstance(c, ast.expr)) for c in ast.iter_child_nodes(node))
    return tree


def _check_allowed(node: ast.AST, text: str) -> None:
    allowed_call = (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in FUNCTIONS
        and not node.keywords
    )
    number = (
        isinstance(node, ast.Constant)
        and isinstance(node.value, (int, float))
        and not isinstance(node.value, bool)
    )
    ok = (
        isinstance(node, (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Load, *_OPERATORS))
        or allowed_call
        or number
        or (isinstance(node, ast.Name) and node.id in {"x", "y", *FUNCTIONS, *CONSTANTS})
    )
    if not ok:
        piece = ast.unparse(node) if isinstance(node, ast.expr) else type(node).__name__
        raise ValueError(
            f"--expr: {piece!r} is not allowed in {text!r}; use numbers, x, y, pi, e, "
            f"+ - * / ** and the functions {', '.join(sorted(FUNCTIONS))}"
        )
    if number:
        assert isinstance(node, ast.Constant) and isinstance(node.value, (int, float))
        try:
            node.value = float(node.value)  # Python's integers would grow without bound
        except OverflowError:
            raise ValueError(
                f"--expr: the number {str(node.value)[:20]}... in {text!r} is too large for a "
                "float (about 1.8e308 at most)"
            ) from None


# ---------------------------------------------------------------------------
# A saved MLP.


def mlp_from_checkpoint(path: str | os.PathLike[str], activation: str = "tanh") -> Any:
    """Rebuild a ``Sequential`` MLP saved with ``gw.save`` and load its weights.

    A checkpoint holds arrays, not code, so the architecture is read from its
    parameter names: Linear layers at Sequential positions ``i`` (``i.weight``,
    ``i.bias``), with ``activation`` in the positions between them.
    """
    from .. import nn
    from ..train import load
    from ..train.checkpoint import read

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--model: no checkpoint file at {path}")
    _, arrays = read(path)  # a clear error for a file that is not a gradwell checkpoint
    shapes = {k[len("model.") :]: a.shape for k, a in arrays.items() if k.startswith("model.")}
    linear: dict[int, tuple[int, int]] = {}
    for key, shape in shapes.items():
        index, _, leaf = key.partition(".")
        if not index.isdigit() or leaf not in ("weight", "bias"):
            raise ValueError(
                f"--model: {path} holds {key!r}; explain rebuilds only Sequential MLPs of "
                "Linear layers (keys like '0.weight', '0.bias'). For another model, call "
                "gw.viz.explain from Python"
            )
        if leaf == "weight":
            if len(shape) != 2:
                raise ValueError(
                    f"--model: {key!r} has shape {tuple(shape)}; a Linear weight is 2-D"
                )
            linear[int(index)] = (shape[1], shape[0])
    if not linear:
        raise ValueError(f"--model: {path} holds no Linear layers")
    acts = {"tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid}
    if activation not in acts:
        raise ValueError(f"unknown activation {activation!r}; expected one of {sorted(acts)}")
    modules: list[Any] = []
    positions = sorted(linear)
    for n, i in enumerate(positions):
        gap = i - (positions[n - 1] if n else -1)
        if gap != (1 if n == 0 else 2):
            raise ValueError(
                f"--model: Linear layers sit at positions {positions} of the Sequential; "
                "explain expects them at 0, 2, 4, ... with one activation between each pair"
            )
        if n:
            modules.append(acts[activation]())
        fan_in, fan_out = linear[i]
        modules.append(nn.Linear(fan_in, fan_out, bias=f"{i}.bias" in shapes))
    model = nn.Sequential(*modules)
    load(path, model)
    return model
