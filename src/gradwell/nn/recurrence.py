"""The recurrences of RNN, LSTM and GRU layers: one fused primitive per layer and direction.

Each primitive runs a whole sequence: the input projections ``xp = x @ W_ih.T + b_ih``
of every step (one matmul, made by the layer) go in, and the loop over time runs on
arrays, one ``h @ W_hh.T`` and a few elementwise passes per step; backward runs the same
loop in reverse (backpropagation through time) and forms ``W_hh``'s gradient with one
matmul over all steps. A loop of core primitives would pay about fifteen recorded ops
per step, and slicing step t out of the sequence would cost a dense gradient of the
whole sequence per step in backward.

Each primitive has a *reference*: the same recurrence written step by step in core
primitives (``sigmoid``, ``tanh``, ``linear``, ``mul``, ...). Backward with
``create_graph`` differentiates it, the tests check the fast VJP against it, and while
anything observes ops (:func:`gradwell.autograd.observe`) the layers also run it on
detached inputs beside the fused op, so that observers (the doctor's gate-saturation
probe) see each gate as its own op while training computes what it computes unwatched.

Layout, as in PyTorch: ``xp`` is (L, N, G * H) with the gate blocks in PyTorch's order
(LSTM: i, f, g, o; GRU: r, z, n); ``W_hh`` is (G * H, H). With ``reverse`` the sequence
is read from its last step to its first; outputs stay at their steps' places.

* ``rnn``: ``h_t = act(xp_t + h_{t-1} @ W_hh.T + b_hh)``, ``act`` tanh or relu; out (L, N, H).
* ``lstm``: out (L, N, 2H) holds ``[h_t, c_t]`` (the cell state is an output too).
* ``gru``: ``n = tanh(xp_n + r * (h @ W_hn.T + b_hn))``, ``h_t = (1 - z) * n + z * h``;
  out (L, N, H).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..autograd import functional as _fn
from ..autograd import ops
from ..autograd.ops import _sigmoid_array as _sigmoid
from ..autograd.ops import primitive
from . import fused


def _steps(length: int, reverse: bool) -> range:
    return range(length - 1, -1, -1) if reverse else range(length)


def _previous(seq: np.ndarray, first: np.ndarray, reverse: bool) -> np.ndarray:
    """The state each step starts from: ``first`` for the first step read, then the
    state the step before it (in reading order) left."""
    prev = np.empty_like(seq)
    if reverse:
        prev[-1], prev[:-1] = first, seq[1:]
    else:
        prev[0], prev[1:] = first, seq[:-1]
    return prev


def _hidden_grads(dz: np.ndarray, h_prev: np.ndarray, needs_w: bool, b_hh: tuple) -> tuple:
    """The gradients of W_hh (one matmul over all steps) and of b_hh from the gradient
    ``dz`` (L, N, G * H) of the hidden projections."""
    gw = dz.reshape(-1, dz.shape[-1]).T @ h_prev.reshape(-1, h_prev.shape[-1]) if needs_w else None
    return (gw, dz.sum(axis=(0, 1))) if b_hh else (gw,)


# ---------------------------------------------------------------------------
# rnn (Elman)


@primitive("rnn", reads="io")
def rnn(xp: Any, h0: Any, w_hh: Any, *b_hh: Any, nonlinearity: str, reverse: bool) -> Any:
    """The Elman recurrence over a sequence: (L, N, H) of hidden states."""
    out = np.empty(xp.shape, np.result_type(xp, h0, w_hh))
    h, w_t = h0, w_hh.T
    for t in _steps(xp.shape[0], reverse):
        z = xp[t] + h @ w_t
        if b_hh:
            z += b_hh[0]
        h = out[t] = np.tanh(z) if nonlinearity == "tanh" else np.maximum(z, 0)
    return out


@rnn.defvjp
def _(F, g, out, ins, needs, attrs):
    h0, w_hh, b_hh = ins[1], ins[2], ins[3:]
    dz = np.empty_like(out)
    dh = np.zeros_like(h0, dtype=out.dtype)
    for t in _steps(out.shape[0], not attrs["reverse"]):
        dh = dh + g[t]
        h = out[t]
        dz[t] = dh * (1 - h * h) if attrs["nonlinearity"] == "tanh" else dh * (h > 0)
        dh = dz[t] @ w_hh
    return (dz, dh, *_hidden_grads(dz, _previous(out, h0, attrs["reverse"]), needs[2], b_hh))


@rnn.defreference
def _rnn_reference(out, xp, h0, w_hh, *b_hh, nonlinearity, reverse):
    act = ops.tanh if nonlinearity == "tanh" else ops.relu
    h, hs = h0, [None] * xp.shape[0]
    for t in _steps(xp.shape[0], reverse):
        h = hs[t] = act(xp[t] + fused.linear(h, w_hh, *b_hh))
    return _fn.stack(hs)


# ---------------------------------------------------------------------------
# lstm


@primitive("lstm", saves=True, reads="io")
def lstm(xp: Any, h0: Any, c0: Any, w_hh: Any, *b_hh: Any, reverse: bool) -> Any:
    """The LSTM recurrence over a sequence: (L, N, 2H) holding [h_t, c_t] per step.

    Saves the gate activations (L, N, 4H) and tanh(c_t) (L, N, H) for backward.
    """
    n_steps, n, four_h = xp.shape
    hh = four_h // 4
    dtype = np.result_type(xp, h0, c0, w_hh)
    out = np.empty((n_steps, n, 2 * hh), dtype)
    gates = np.empty((n_steps, n, four_h), dtype)
    tanh_c = np.empty((n_steps, n, hh), dtype)
    h, c = h0.astype(dtype, copy=False), c0.astype(dtype, copy=False)
    w_t = w_hh.astype(dtype, copy=False).T
    z = np.empty((n, four_h), dtype)
    # in place, into the saved arrays: one allocation per step instead of a dozen
    for t in _steps(n_steps, reverse):
        np.dot(h, w_t, out=z)
        z += xp[t]
        if b_hh:
            z += b_hh[0]
        a = gates[t]
        np.multiply(z, 0.5, out=a)  # the logistic function of all four blocks, as ops.sigmoid
        np.tanh(a, out=a)
        a *= 0.5
        a += 0.5
        np.tanh(z[:, 2 * hh : 3 * hh], out=a[:, 2 * hh : 3 * hh])  # g is a tanh
        c_next, h = out[t, :, hh:], out[t, :, :hh]
        np.multiply(a[:, hh : 2 * hh], c, out=c_next)
        c_next += a[:, :hh] * a[:, 2 * hh : 3 * hh]
        np.tanh(c_next, out=tanh_c[t])
        np.multiply(a[:, 3 * hh :], tanh_c[t], out=h)
        c = c_next
    return out, (gates, tanh_c)


@lstm.defvjp
def _(F, g, out, ins, needs, attrs):
    h0, c0, w_hh, b_hh = ins[1], ins[2], ins[3], ins[4:]
    gates, tanh_c = attrs["saved"]
    reverse = attrs["reverse"]
    hh = h0.shape[-1]
    c_prev = _previous(out[..., hh:], c0, reverse)
    w = w_hh.astype(out.dtype, copy=False)
    dz = np.empty_like(gates)
    dh = np.zeros(h0.shape, out.dtype)
    dc = np.zeros(c0.shape, out.dtype)
    for t in _steps(out.shape[0], not reverse):
        a, d = gates[t], dz[t]
        i, f, gg, o = a[:, :hh], a[:, hh : 2 * hh], a[:, 2 * hh : 3 * hh], a[:, 3 * hh :]
        tc = tanh_c[t]
        dh += g[t, :, :hh]
        dc += g[t, :, hh:]
        dc += dh * o * (1 - tc * tc)
        # (1 - s) * s * upstream for the sigmoid blocks, (1 - g^2) * upstream for g
        np.subtract(1, a, out=d)
        d *= a
        d[:, :hh] *= dc * gg
        d[:, hh : 2 * hh] *= dc * c_prev[t]
        d[:, 3 * hh :] *= dh * tc
        np.multiply(gg, gg, out=d[:, 2 * hh : 3 * hh])
        np.subtract(1, d[:, 2 * hh : 3 * hh], out=d[:, 2 * hh : 3 * hh])
        d[:, 2 * hh : 3 * hh] *= dc * i
        dc *= f
        np.dot(d, w, out=dh)
    h_prev = _previous(out[..., :hh], h0, reverse)
    return (dz, dh, dc, *_hidden_grads(dz, h_prev, needs[3], b_hh))


def lstm_cell(z: Any, c: Any) -> tuple[Any, Any, tuple[Any, ...]]:
    """One LSTM step in core primitives from the pre-activations ``z`` (N, 4H) and the
    cell state ``c``: (h, c, (i, f, g, o)), one op per gate."""
    hh = c.shape[-1]
    i, f, g, o = (z[:, k * hh : (k + 1) * hh] for k in range(4))
    i, f, g, o = ops.sigmoid(i), ops.sigmoid(f), ops.tanh(g), ops.sigmoid(o)
    c = f * c + i * g
    return o * ops.tanh(c), c, (i, f, g, o)


@lstm.defreference
def _lstm_reference(out, xp, h0, c0, w_hh, *b_hh, reverse, **_):
    h, c, steps = h0, c0, [None] * xp.shape[0]
    for t in _steps(xp.shape[0], reverse):
        h, c, _gates = lstm_cell(xp[t] + fused.linear(h, w_hh, *b_hh), c)
        steps[t] = _fn.concatenate([h, c], axis=-1)
    return _fn.stack(steps)


# ---------------------------------------------------------------------------
# gru


@primitive("gru", saves=True, reads="io")
def gru(xp: Any, h0: Any, w_hh: Any, *b_hh: Any, reverse: bool) -> Any:
    """The GRU recurrence over a sequence: (L, N, H) of hidden states.

    Saves the gate activations r, z, n (L, N, 3H) and ``h @ W_hn.T + b_hn`` (L, N, H).
    """
    n_steps, _, three_h = xp.shape
    hh = three_h // 3
    out = np.empty((*xp.shape[:2], hh), np.result_type(xp, h0, w_hh))
    gates = np.empty(xp.shape, out.dtype)
    hidden_n = np.empty(out.shape, out.dtype)
    h, w_t = h0, w_hh.T
    for t in _steps(n_steps, reverse):
        zh = h @ w_t
        if b_hh:
            zh += b_hh[0]
        a = gates[t]
        a[:, : 2 * hh] = _sigmoid(xp[t, :, : 2 * hh] + zh[:, : 2 * hh])  # r, z
        hidden_n[t] = zh[:, 2 * hh :]
        n = a[:, 2 * hh :] = np.tanh(xp[t, :, 2 * hh :] + a[:, :hh] * zh[:, 2 * hh :])
        h = out[t] = n + a[:, hh : 2 * hh] * (h - n)
    return out, (gates, hidden_n)


@gru.defvjp
def _(F, g, out, ins, needs, attrs):
    h0, w_hh, b_hh = ins[1], ins[2], ins[3:]
    gates, hidden_n = attrs["saved"]
    reverse = attrs["reverse"]
    hh = h0.shape[-1]
    h_prev = _previous(out, h0, reverse)
    dxp = np.empty_like(gates)
    dzh = np.empty_like(gates)  # the gradient of h @ W_hh.T + b_hh
    dh = np.zeros_like(h0, dtype=out.dtype)
    for t in _steps(out.shape[0], not reverse):
        r, z, n = (gates[t, :, k * hh : (k + 1) * hh] for k in range(3))
        dh = dh + g[t]
        dn = dh * (1 - z) * (1 - n * n)
        d = dxp[t]
        d[:, :hh] = dn * hidden_n[t] * r * (1 - r)
        d[:, hh : 2 * hh] = dh * (h_prev[t] - n) * z * (1 - z)
        d[:, 2 * hh :] = dn
        dzh[t, :, : 2 * hh] = d[:, : 2 * hh]
        dzh[t, :, 2 * hh :] = dn * r
        dh = dh * z + dzh[t] @ w_hh
    return (dxp, dh, *_hidden_grads(dzh, h_prev, needs[2], b_hh))


def gru_cell(xp: Any, zh: Any, h: Any) -> tuple[Any, tuple[Any, ...]]:
    """One GRU step in core primitives from the input and hidden projections (N, 3H):
    (h, (r, z, n)), one op per gate."""
    hh = h.shape[-1]
    xr, xz, xn = (xp[:, k * hh : (k + 1) * hh] for k in range(3))
    hr, hz, hn = (zh[:, k * hh : (k + 1) * hh] for k in range(3))
    r, z = ops.sigmoid(xr + hr), ops.sigmoid(xz + hz)
    n = ops.tanh(xn + r * hn)
    return n + z * (h - n), (r, z, n)


@gru.defreference
def _gru_reference(out, xp, h0, w_hh, *b_hh, reverse, **_):
    h, hs = h0, [None] * xp.shape[0]
    for t in _steps(xp.shape[0], reverse):
        h, _gates = gru_cell(xp[t], fused.linear(h, w_hh, *b_hh), h)
        hs[t] = h
    return _fn.stack(hs)
