"""One gradient test case per registered primitive: how to call it and on what inputs.

Each case is (function of tensors, list of input specs). A spec is a shape and
a domain: "real" (normal samples), "positive" (away from 0, for log/sqrt/pow),
"away" (|x| >= 0.2, away from the kinks of abs/relu/clip), or "const:<shape>"
(an input that does not require grad). Shapes include broadcasting.
"""

from __future__ import annotations

import numpy as np

import gradwell as gw

IDX = np.array([0, 2, 0, 1])  # repeated index: gradients must accumulate

CASES: dict[str, list[tuple]] = {
    "add": [(gw.add, [(3, 4), (4,)]), (gw.add, [(2, 1, 3), (4, 1)])],
    "sub": [(gw.sub, [(3, 4), (3, 1)]), (lambda a: 2.0 - a, [(5,)])],
    "mul": [(gw.mul, [(3, 4), (1, 4)]), (lambda a: a * a, [(3,)])],
    "div": [(gw.div, [(3, 4), ((4,), "positive")]), (lambda a: 1.0 / a, [((3,), "positive")])],
    "pow": [
        (gw.pow, [((3, 2), "positive"), (2,)]),
        (lambda a: a**3, [(4,)]),
        (lambda b: 2.0**b, [(3,)]),
    ],
    "neg": [(gw.neg, [(2, 3)])],
    "sign": [(lambda a: gw.sign(a) * a, [((3, 4), "away")])],
    "sin": [(gw.sin, [(3, 4)])],
    "cos": [(gw.cos, [(3, 4)])],
    "tan": [(gw.tan, [((3, 4), "unit")])],
    "arcsin": [(gw.arcsin, [((3, 4), "unit")])],
    "arccos": [(gw.arccos, [((3, 4), "unit")])],
    "arctan": [(gw.arctan, [(3, 4)])],
    "sinh": [(gw.sinh, [(3, 4)])],
    "cosh": [(gw.cosh, [(3, 4)])],
    "arcsinh": [(gw.arcsinh, [(3, 4)])],
    "arccosh": [(gw.arccosh, [((3, 4), "above1")])],
    "arctanh": [(gw.arctanh, [((3, 4), "unit")])],
    # Away from the jumps of floor(a / b): a in (0.1, 0.9) * b, shifted by whole b's.
    "remainder": [(lambda a, b: gw.remainder(a * b, b), [((3, 4), "offgrid"), ((4,), "positive")])],
    "fmod": [(lambda a, b: gw.fmod(a * b, b), [((3, 4), "offgrid"), ((4,), "positive")])],
    "flip": [(lambda a: gw.flip(a, (0, 2)), [(2, 3, 4)]), (lambda a: gw.flip(a, -1), [(3, 4)])],
    "roll": [
        (lambda a: gw.roll(a, 2, 1), [(3, 4)]),
        (lambda a: gw.roll(a, (1, -2), (0, 1)), [(3, 4)]),
        (lambda a: gw.roll(a, 5), [(3, 4)]),
    ],
    "cumsum": [(lambda a: gw.cumsum(a, 1), [(3, 4)]), (lambda a: gw.cumsum(a, dim=0), [(3, 4)])],
    "einsum": [
        (lambda a, b: gw.einsum("ij,jk->ik", a, b), [(3, 4), (4, 2)]),
        (lambda a, b: gw.einsum("bij,bkj->bik", a, b), [(2, 3, 4), (2, 5, 4)]),
        (lambda a: gw.einsum("ij->j", a), [(3, 4)]),
        (lambda a, b, c: gw.einsum("i,ij,jk->k", a, b, c), [(3,), (3, 4), (4, 2)]),
        (lambda a, b: gw.einsum("ij,k->ik", a, b), [(3, 4), (2,)]),
    ],
    "abs": [(gw.abs, [((3, 4), "away")])],
    "exp": [(gw.exp, [(3, 4)])],
    "log": [(gw.log, [((3, 4), "positive")])],
    "log1p": [(gw.log1p, [((3, 4), "positive")])],
    "sqrt": [(gw.sqrt, [((3, 4), "positive")])],
    "erf": [(gw.erf, [(3, 4)])],
    "clip": [
        (lambda a: gw.clip(a, -0.5, 0.7), [((4, 5), "away")]),
        (lambda a: gw.clip(a, min=0.1), [((6,), "away")]),
    ],
    "maximum": [(gw.maximum, [(3, 4), (4,)])],
    "minimum": [(gw.minimum, [(3, 4), (3, 1)])],
    "where": [(lambda a, b: gw.where(a.detach() > 0, a, b), [(3, 4), (4,)])],
    "astype": [(lambda a: a.astype("float64") * a, [(3,)])],
    "tanh": [(gw.tanh, [(3, 4)])],
    "sigmoid": [(gw.sigmoid, [(3, 4)])],
    "relu": [(gw.relu, [((3, 4), "away")])],
    "leaky_relu": [(lambda a: gw.leaky_relu(a, 0.1), [((3, 4), "away")])],
    "elu": [(lambda a: gw.elu(a, 0.7), [((3, 4), "away")])],
    "gelu": [(gw.gelu, [(3, 4)])],
    "softplus": [(gw.softplus, [(3, 4)]), (lambda a: gw.softplus(a * 30, beta=2.0), [(5,)])],
    "softmax": [(lambda a: gw.softmax(a, 0), [(3, 4)]), (gw.softmax, [(2, 3, 4)])],
    "log_softmax": [(gw.log_softmax, [(3, 4)]), (lambda a: gw.log_softmax(a, 0), [(3,)])],
    "sum": [
        (gw.sum, [(3, 4)]),
        (lambda a: gw.sum(a, axis=(0, 2), keepdims=True), [(2, 3, 4)]),
        (lambda a: a.sum(1), [(3, 4)]),
    ],
    "mean": [
        (gw.mean, [(3, 4)]),
        (lambda a: a.mean(axis=-1), [(2, 3, 4)]),
        (lambda a: a.mean(0, keepdims=True), [(3, 4)]),
    ],
    "max": [
        (gw.max, [(3, 4)]),
        (lambda a: a.max(axis=1), [(3, 4)]),
        (lambda a: a.max(axis=(0, 1), keepdims=True), [(2, 3, 2)]),
    ],
    "min": [(gw.min, [(3, 4)]), (lambda a: a.min(axis=0, keepdims=True), [(3, 4)])],
    "logsumexp": [(gw.logsumexp, [(3, 4)]), (lambda a: a.logsumexp(axis=1), [(3, 4)])],
    "matmul": [
        (gw.matmul, [(3, 4), (4, 2)]),
        (gw.matmul, [(2, 3, 4), (4, 5)]),
        (gw.matmul, [(4,), (4, 3)]),
        (gw.matmul, [(3, 4), (4,)]),
        (gw.matmul, [(4,), (4,)]),
        (gw.matmul, [(2, 1, 3, 4), (5, 4, 2)]),
        (gw.matmul, [(4,), (2, 4, 3)]),
    ],
    "reshape": [(lambda a: a.reshape(4, 3), [(3, 4)]), (lambda a: gw.flatten(a), [(2, 3, 2)])],
    "transpose": [(lambda a: a.T, [(3, 4)]), (lambda a: a.permute(2, 0, 1), [(2, 3, 4)])],
    "broadcast_to": [(lambda a: gw.broadcast_to(a, (2, 3, 4)), [(3, 1)])],
    "getitem": [
        (lambda a: a[1:, ::2], [(3, 4)]),
        (lambda a: a[IDX], [(3, 2)]),
        (lambda a: a[:, [1, 1, 0]], [(2, 3)]),
        (lambda a: a[a.detach() > 0], [(3, 4)]),
        (lambda a: a[0], [(3, 4)]),
    ],
    "scatter_add": [(lambda g: gw.autograd.ops.scatter_add(g, index=IDX, shape=(3, 2)), [(4, 2)])],
    "concatenate": [(lambda a, b: gw.concatenate([a, b], axis=1), [(2, 3), (2, 1)])],
    "stack": [(lambda a, b: gw.stack([a, b], axis=1), [(2, 3), (2, 3)])],
}


def make_inputs(specs: list, rng: np.random.Generator) -> list[gw.Tensor]:
    out = []
    for spec in specs:
        shape, domain = spec if isinstance(spec[-1], str) else (spec, "real")
        x = rng.standard_normal(shape)
        if domain == "positive":
            x = np.abs(x) + 0.5
        elif domain == "unit":
            x = np.tanh(x) * 0.9
        elif domain == "above1":
            x = np.abs(x) + 1.2
        elif domain == "offgrid":  # (0.2, 0.8) + k for integers k: away from a // b's jumps
            x = rng.uniform(0.2, 0.8, shape) + rng.integers(-2, 3, shape)
        elif domain == "away":
            x = np.sign(x + 1e-12) * (np.abs(x) + 0.2)
        out.append(gw.tensor(x, dtype="float64", requires_grad=True))
    return out


# Fused ops of gradwell.nn (in the registry once gradwell.nn is imported); their own
# tests, with more shapes and options, are in tests/nn.
_nnF = gw.nn.functional
_CLASSES = np.array([1, 0, 3, 1])
_RUNNING = (np.array([0.1, -0.2, 0.3]), np.array([0.5, 1.5, 2.0]))


def _bn_relu_dropout(x, *affine, rate, rng):
    return gw.nn.fused.batch_norm_relu_dropout(
        x, *affine, eps=1e-5, momentum=0.1, running_mean=None, running_var=None,
        num_batches_tracked=None, rate=rate, rng=rng,
    )  # fmt: skip


def _linear_block(x, w, *rest, rate=0.0, rng=None):
    return gw.nn.fused.linear_batch_norm_relu_dropout(
        x, w, *rest, eps=1e-5, momentum=0.1, running_mean=None, running_var=None,
        num_batches_tracked=None, rate=rate, rng=rng,
    )  # fmt: skip


CASES.update(
    {
        "linear": [
            (_nnF.linear, [(4, 3), (2, 3), (2,)]),
            (_nnF.linear, [(2, 3, 3), (5, 3)]),
            (_nnF.linear, [(3,), (2, 3), (2,)]),
            (_nnF.linear, [(16, 32), (24, 32), (24,)]),  # past the compiled small-product path
        ],
        "batch_norm": [
            (
                lambda x, g, b: _nnF.batch_norm(x, None, None, g, b, training=True),
                [(5, 3), (3,), (3,)],
            ),
            (lambda x: _nnF.batch_norm(x, None, None, training=True), [(4, 2)]),
            (lambda x, g, b: _nnF.batch_norm(x, *_RUNNING, g, b), [(4, 3), (3,), (3,)]),
        ],
        # A fresh Generator with the same seed per call: the same mask at every probe.
        "dropout": [(lambda x: _nnF.dropout(x, 0.4, rng=np.random.default_rng(3)), [(6, 5)])],
        "batch_norm_relu_dropout": [
            (
                lambda x, g, b: _bn_relu_dropout(x, g, b, rate=0.3, rng=np.random.default_rng(3)),
                [(6, 4), (4,), (4,)],
            ),
            (lambda x: _bn_relu_dropout(x, rate=0.0, rng=None), [(5, 3)]),
        ],
        "linear_batch_norm_relu_dropout": [
            (  # the compiled small product: the bias inside it
                lambda x, w, b, g, be: _linear_block(
                    x, w, b, g, be, rate=0.3, rng=np.random.default_rng(3)
                ),
                [(6, 4), (5, 4), (5,), (5,), (5,)],
            ),
            # past it: the bias added by batch norm (with and without gamma and beta)
            (lambda x, w, b: _linear_block(x, w, b), [(10, 12), (70, 12), (70,)]),
            (lambda x, w, g, be: _linear_block(x, w, g, be), [(10, 12), (70, 12), (70,), (70,)]),
        ],
        "cross_entropy": [
            (lambda x: _nnF.cross_entropy(x, _CLASSES), [(4, 5)]),
            (
                lambda x, t: _nnF.cross_entropy(x, gw.softmax(t), label_smoothing=0.1),
                [(3, 4), (3, 4)],
            ),
            (
                lambda x: _nnF.cross_entropy(x, _CLASSES, reduction="none", label_smoothing=0.2),
                [(4, 5)],
            ),
        ],
        "bce_with_logits": [
            (
                lambda x, t: _nnF.binary_cross_entropy_with_logits(x, gw.sigmoid(t)),
                [(3, 4), (3, 4)],
            ),
            (
                lambda x, t, w: _nnF.binary_cross_entropy_with_logits(
                    x, gw.sigmoid(t), pos_weight=w
                ),
                [(3, 4), (3, 4), ((4,), "positive")],
            ),
        ],
    }
)


# Sliding windows and lookups (gradwell.autograd.conv_ops, gradwell.nn.embedding); the
# layers built on them are matched against PyTorch in tests/nn/test_conv_layers.py.
_conv_ops = gw.autograd.conv_ops
_WINDOW = {"kernel": (2, 3), "stride": (2, 1), "padding": ((1, 0), (1, 2)), "dilation": (1, 2)}
_IDS = np.array([[1, 0, 3], [3, 3, 2]])  # repeated ids: gradients accumulate

CASES.update(
    {
        "unfold": [
            (lambda x: _conv_ops.unfold(x, kernel=(2, 2)), [(2, 3, 4, 5)]),
            (lambda x: _conv_ops.unfold(x, **_WINDOW), [(1, 2, 5, 6)]),
        ],
        "fold": [
            (lambda c: _conv_ops.fold(c, shape=(2, 3, 4, 5), kernel=(2, 2)), [(2, 12, 12)]),
            (lambda c: _conv_ops.fold(c, shape=(1, 2, 5, 6), **_WINDOW), [(1, 12, 15)]),
        ],
        "conv2d": [
            (
                lambda x, w, b: gw.nn.functional.conv2d(x, w, b, padding=1),
                [(2, 3, 5, 4), (4, 3, 3, 3), (4,)],
            ),
            (
                lambda x, w: _conv_ops.conv2d(
                    x, w, stride=(2, 1), padding=_WINDOW["padding"], dilation=(1, 2)
                ),
                [(1, 2, 5, 6), (3, 2, 2, 3)],
            ),
            (  # one input channel at stride 1: the direct kernels
                lambda x, w, b: _conv_ops.conv2d(
                    x, w, b, stride=(1, 1), padding=((2, 1), (0, 1)), dilation=(2, 1)
                ),
                [(2, 1, 6, 5), (3, 1, 2, 3), (3,)],
            ),
        ],
        "max_pool2d": [
            (lambda x: gw.nn.functional.max_pool2d(x, 2), [(2, 3, 4, 6)]),
            (
                lambda x: _conv_ops.max_pool2d(
                    x, kernel=(2, 3), stride=(2, 1), padding=((1, 1), (1, 1)), dilation=(1, 2)
                ),
                [(1, 2, 5, 6)],
            ),
        ],
        "pad": [(lambda x: _conv_ops.pad(x, widths=((0, 0), (1, 2)), value=0.5), [(2, 3)])],
        # (padding_idx withholds a true gradient on purpose: tested in tests/nn)
        "embedding": [(lambda w: gw.nn.functional.embedding(_IDS, w), [(4, 3)])],
    }
)


# Recurrences (gradwell.nn.recurrence): a whole sequence per op, forward and reversed; the
# layers built on them are matched against PyTorch in tests/nn/test_nn_recurrent.py.
_rec = gw.nn.recurrence
_L, _N, _H = 3, 2, 2

CASES.update(
    {
        "rnn": [
            (
                lambda xp, h0, w, b: _rec.rnn(xp, h0, w, b, nonlinearity="tanh", reverse=False),
                [(_L, _N, _H), (_N, _H), (_H, _H), (_H,)],
            ),
            (
                lambda xp, h0, w: _rec.rnn(xp, h0, w, nonlinearity="relu", reverse=True),
                [((_L, _N, _H), "away"), ((_N, _H), "positive"), ((_H, _H), "positive")],
            ),
        ],
        "lstm": [
            (
                lambda xp, h0, c0, w, b: _rec.lstm(xp, h0, c0, w, b, reverse=False),
                [(_L, _N, 4 * _H), (_N, _H), (_N, _H), (4 * _H, _H), (4 * _H,)],
            ),
            (
                lambda xp, h0, c0, w: _rec.lstm(xp, h0, c0, w, reverse=True),
                [(_L, _N, 4 * _H), (_N, _H), (_N, _H), (4 * _H, _H)],
            ),
        ],
        "lstm_projected": [
            (
                lambda xp, h0, c0, w, w_hr, b: _rec.lstm_projected(
                    xp, h0, c0, w, w_hr, b, reverse=False
                ),
                [(_L, _N, 4 * _H), (_N, 1), (_N, _H), (4 * _H, 1), (1, _H), (4 * _H,)],
            ),
            (
                lambda xp, h0, c0, w, w_hr: _rec.lstm_projected(xp, h0, c0, w, w_hr, reverse=True),
                [(_L, _N, 4 * _H), (_N, 1), (_N, _H), (4 * _H, 1), (1, _H)],
            ),
        ],
        "gru": [
            (
                lambda xp, h0, w, b: _rec.gru(xp, h0, w, b, reverse=False),
                [(_L, _N, 3 * _H), (_N, _H), (3 * _H, _H), (3 * _H,)],
            ),
            (
                lambda xp, h0, w: _rec.gru(xp, h0, w, reverse=True),
                [(_L, _N, 3 * _H), (_N, _H), (3 * _H, _H)],
            ),
        ],
    }
)
