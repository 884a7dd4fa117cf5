"""Random shapes, dtypes, NaN/inf and garbage at every public entry point.

Each outcome is a result or a documented exception (ValueError, TypeError and their
subclasses) with a message; a crash, a hang, KeyError, AttributeError, IndexError or
RecursionError never escapes. Example counts stay small so each test takes seconds.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from hardening.kit import outcome, time_limit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from safetensors.numpy import save_file

import gradwell as gw
from gradwell import preprocessing as pp
from gradwell.cli import main
from gradwell.data.datasets import load_csv

FAST = settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
SLOW = settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

DTYPES = st.sampled_from([np.float32, np.float64, np.int64, np.int8, np.bool_, np.uint8])
floats = st.floats(allow_nan=True, allow_infinity=True, width=32)


def arrays(min_dims: int = 0, max_dims: int = 3, max_side: int = 4) -> st.SearchStrategy:
    return DTYPES.flatmap(
        lambda dt: hnp.arrays(
            dt,
            hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=0, max_side=max_side),
            elements=floats if np.dtype(dt).kind == "f" else None,
        )
    )


garbage = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    floats,
    st.text(max_size=4),
    st.lists(st.one_of(st.integers(-3, 3), st.lists(st.integers(-3, 3), max_size=3)), max_size=4),
    st.lists(st.text(max_size=2), max_size=3),
    st.just(object()),
    st.just(np.array([["1", "2"]])),
    st.just(np.array([1, None], dtype=object)),
    st.just(np.array([1 + 2j])),
)
values = st.one_of(arrays(), arrays(), garbage)
#: Integer tensors meeting out-of-range Python ints: numpy's OverflowError names both.
OPS_RAISE = (ValueError, TypeError, OverflowError)


# ------------------------------------------------------------------ Tensor ops
UNARY = [
    gw.tanh,
    gw.exp,
    gw.log,
    gw.sqrt,
    gw.relu,
    gw.sigmoid,
    gw.abs,
    gw.sum,
    gw.mean,
    gw.max,
    gw.softmax,
    gw.log_softmax,
    gw.flatten,
    gw.var,
]
BINARY = [gw.add, gw.mul, gw.div, gw.sub, gw.matmul, gw.maximum, gw.pow]


def backward(y, *inputs):
    """``y.sum().backward()`` where y and the inputs have elements (the gradient of a
    mean over nothing is a known gap of the engine: test_known_gaps.py)."""
    empty = any(isinstance(x, gw.Tensor | np.ndarray) and x.size == 0 for x in inputs)
    if isinstance(y, gw.Tensor) and y.requires_grad and y.numel() and not empty:
        outcome(lambda: y.sum().backward())


def as_input(value, grad):
    """Arrays become Tensors (through gw.tensor, which refuses text and objects); other
    values go to the op as they are. Raw object arrays given straight to a primitive op
    are a known gap of the engine (test_known_gaps.py)."""
    if isinstance(value, np.ndarray):
        floating = value.dtype.kind == "f"
        return gw.tensor(value, dtype=value.dtype, requires_grad=grad and floating)
    return value


@FAST
@given(st.sampled_from(UNARY), values, st.booleans())
def test_unary_ops(op, x, grad):
    with time_limit(10):
        x = outcome(as_input, x, grad)
        y = outcome(op, x, documented=OPS_RAISE)
        backward(y, x)


@FAST
@given(st.sampled_from(BINARY), values, values, st.booleans())
def test_binary_ops(op, a, b, grad):
    with time_limit(10):
        a, b = outcome(as_input, a, grad), outcome(as_input, b, False)
        y = outcome(op, a, b, documented=OPS_RAISE)
        backward(y, a, b)


@FAST
@given(values, st.sampled_from(["reshape", "transpose", "getitem", "astype"]), garbage)
def test_tensor_methods(x, method, arg):
    with time_limit(10):
        t = outcome(gw.tensor, x)
        if isinstance(t, gw.Tensor):
            if method == "getitem":
                outcome(lambda: t[arg], documented=(ValueError, TypeError, IndexError))
            elif hasattr(t, method):
                outcome(getattr(t, method), arg)


# ------------------------------------------------------------------ layers, losses
LAYERS = [
    lambda: gw.nn.Linear(3, 2, rng=0),
    lambda: gw.nn.BatchNorm1d(3),
    lambda: gw.nn.Dropout(0.5, rng=0),
    lambda: gw.nn.ReLU(),
    lambda: gw.nn.Sequential(gw.nn.Linear(3, 4, rng=0), gw.nn.Tanh(), gw.nn.Linear(4, 1, rng=1)),
]


@FAST
@given(st.sampled_from(LAYERS), values, st.booleans())
def test_layers(make, x, training):
    with time_limit(10):
        layer = make().train(training)
        # Linear and BatchNorm (first layers) name themselves; an activation passes
        # what it gets to its op, which raises the documented TypeError or ValueError
        names = ("input", "Linear", "BatchNorm", "linear", "shape")
        y = outcome(layer, x, names=names if hasattr(layer, "weight") else ())
        backward(y, x)


LOSSES = [
    gw.nn.MSELoss,
    gw.nn.L1Loss,
    gw.nn.HuberLoss,
    gw.nn.BCEWithLogitsLoss,
    gw.nn.CrossEntropyLoss,
    gw.nn.NLLLoss,
]


@FAST
@given(st.sampled_from(LOSSES), values, values)
def test_losses(make, x, target):
    with time_limit(10):
        x = outcome(as_input, x, True)
        loss = outcome(make(), x, target)
        backward(loss, x, target)


# ------------------------------------------------------------------ optimizers
OPTIMIZERS = [gw.optim.SGD, gw.optim.Adam, gw.optim.AdamW, gw.optim.RMSprop, gw.optim.Adagrad]
hyper = st.one_of(
    floats,
    st.integers(-2, 2),
    st.booleans(),
    st.none(),
    st.text(max_size=2),
    st.tuples(floats, floats),
)
HYPERPARAMETERS = [
    "lr",
    "momentum",
    "betas",
    "eps",
    "weight_decay",
    "alpha",
    "nesterov",
    "amsgrad",
    "centered",
    "lr_decay",
    "dampening",
    "maximize",
]


@FAST
@given(
    st.sampled_from(OPTIMIZERS),
    st.dictionaries(st.sampled_from(HYPERPARAMETERS), hyper, max_size=3),
    arrays(min_dims=1, max_dims=2),
    st.one_of(arrays(min_dims=1, max_dims=2), garbage),
    st.integers(1, 3),
)
def test_optimizers(make, options, start, grad, steps):
    with time_limit(10):
        if start.dtype.kind != "f":
            start = start.astype(np.float32)
        w = gw.tensor(start, dtype=start.dtype, requires_grad=True)
        options.setdefault("lr", 0.1)
        opt = outcome(make, [w], **options)
        if isinstance(opt, Exception):
            return
        for _ in range(steps):
            g = outcome(gw.tensor, grad)
            if isinstance(g, gw.Tensor) and g.dtype.kind == "c":
                continue  # a complex gradient cannot arise: only real tensors require grad
            w.grad = g if isinstance(g, gw.Tensor) else grad  # garbage as a gradient too
            outcome(opt.step, names=(make.__name__,))
        sd = outcome(opt.state_dict)
        outcome(opt.load_state_dict, sd)


# ------------------------------------------------------------------ fit, scalers
def rows_of(width: int) -> st.SearchStrategy:
    """Arrays of 0-6 rows of ``width`` values, numbers of any kind, NaN and inf included."""
    return DTYPES.flatmap(
        lambda dt: hnp.arrays(
            dt,
            st.tuples(st.integers(0, 6), st.just(width)),
            elements=floats if np.dtype(dt).kind == "f" else None,
        )
    )


@SLOW
@given(
    st.one_of(rows_of(3), arrays(min_dims=1, max_dims=3, max_side=5), garbage),
    st.one_of(rows_of(1), rows_of(2), arrays(min_dims=1, max_dims=2, max_side=5), garbage),
    st.sampled_from(["mse", "cross_entropy", "bce_with_logits", "huber"]),
    st.one_of(st.integers(-1, 3), garbage),
    st.one_of(st.integers(-1, 4), garbage),
    st.sampled_from([(), ("accuracy",), ("mse", "r2")]),
)
def test_fit(X, y, loss, epochs, batch_size, metrics):
    with time_limit(30):
        model = gw.nn.Sequential(gw.nn.Linear(3, 2, rng=0))
        opt = gw.optim.Adam(model.parameters(), lr=0.01)
        outcome(
            gw.fit,
            model,
            (X, y),
            loss=loss,
            optimizer=opt,
            epochs=epochs,
            batch_size=batch_size,
            metrics=metrics,
            verbose=0,
            doctor=False,
        )


SCALERS = [pp.LinearScaler, pp.ZScoreScaler, pp.RobustScaler, pp.LogScaler, pp.Clip, pp.AutoScaler]


@FAST
@given(st.sampled_from(SCALERS), values, values)
def test_scalers(make, X, later):
    with time_limit(10):
        scaler = outcome(make)
        if isinstance(scaler, Exception):
            return
        fitted = outcome(scaler.fit, X)
        out = outcome(scaler.transform, later)
        if isinstance(out, np.ndarray) and not isinstance(fitted, Exception):
            outcome(scaler.inverse_transform, out)
            outcome(pp.from_config, outcome(scaler.to_config))


# ------------------------------------------------------------------ files and the CLI
cell = st.one_of(
    st.sampled_from(["1", "-2.5", "", "nan", "1e39", "inf", "x", '"', "1,2"]), st.text(max_size=3)
)


@FAST
@given(
    st.lists(st.lists(cell, min_size=1, max_size=4), min_size=0, max_size=5),
    st.binary(max_size=8),
    st.sampled_from([None, "a", 0, -1, 7]),
)
def test_load_csv(tmp_path_factory, rows, tail, target):
    path = tmp_path_factory.mktemp("csv") / "t.csv"
    text = "a,b,c\n" + "\n".join(",".join(r) for r in rows)
    path.write_bytes(text.encode("utf-8") + tail)
    with time_limit(10):
        outcome(
            load_csv,
            path,
            target=target,
            documented=(ValueError, TypeError, KeyError),
            names=("t.csv", "load_csv"),
        )


def json_values() -> st.SearchStrategy:
    return st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), floats, st.text(max_size=4)),
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)
        ),
        max_leaves=12,
    )


@FAST
@given(st.one_of(st.binary(max_size=64), st.none()), json_values(), st.booleans())
def test_load(tmp_path_factory, raw, meta, as_gradwell):
    path = tmp_path_factory.mktemp("ck") / "m.safetensors"
    model = gw.nn.Sequential(gw.nn.Linear(2, 2, rng=0), gw.nn.Dropout(0.1, rng=0))
    if raw is not None:
        path.write_bytes(raw)
    else:  # a real safetensors file with made-up gradwell metadata
        if as_gradwell and isinstance(meta, dict):
            meta = {"format": "gradwell.checkpoint", "version": 1, **meta}
        save_file(
            {"model.0.weight": np.zeros((2, 2), np.float32)},
            str(path),
            metadata={"gradwell": json.dumps(meta)},
        )
    before = model.state_dict()
    opt = gw.optim.SGD(model.parameters(), lr=0.1)
    with time_limit(10):
        result = outcome(gw.load, path, model, opt, names=(str(path),))
    if isinstance(result, Exception):
        for k, v in model.state_dict().items():
            np.testing.assert_array_equal(v, before[k])


ARGS = [
    "explain",
    "demo",
    "--expr",
    "--expr=-x",
    "x*y",
    "-x*y",
    "9**9**9",
    "(-8)**(1/3)*x",
    "log(x)/0",
    "1e400*x",
    "--x",
    "nan",
    "1e308",
    "--y",
    "-o",
    "--model",
    "--example",
    "1,2",
    "--target",
    "1",
    "--activation",
    "relu",
    "bogus",
    "-h",
    "doctor",
]


@SLOW
@given(st.lists(st.sampled_from(ARGS), min_size=1, max_size=6))
def test_cli(tmp_path_factory, argv):
    if "demo" in argv or "doctor" in argv or "-h" in argv:
        argv = ["explain", *[a for a in argv if a not in ("demo", "doctor", "-h")]]
    out = tmp_path_factory.mktemp("cli")
    argv = [str(out / "p.html") if a == "-o" else a for a in argv]
    with time_limit(30), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            status = main([*argv, "-o", str(out / "page.html")])
        except SystemExit as e:  # argparse's own errors
            status = e.code
    assert status in (0, 2)
