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
* ``lstm``: out (2, L, N, H) holds h_t in ``[0]`` and c_t in ``[1]`` (the cell state is
  an output too); ``lstm_projected`` (``proj_size``) projects h_t to size P by ``W_hr``,
  out (L, N, P + H).
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
from . import recurrence_kernels as kernels


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


def _hidden_grads(
    dz: np.ndarray, states: np.ndarray, first: np.ndarray, reverse: bool, needs_w: bool,
    b_hh: tuple,
) -> tuple:  # fmt: skip
    """The gradients of W_hh and of b_hh from the gradient ``dz`` (L, N, G * H) of the
    hidden projections ``h_{t-1} @ W_hh.T + b_hh``, where ``h_{t-1}`` is the state
    ``states`` (L, N, H) left one step before (``first`` for the first step read):
    W_hh's is one matmul over all steps but the first."""
    gw = None
    if needs_w:
        later, before, start = (
            (dz[:-1], states[1:], dz[-1]) if reverse else (dz[1:], states[:-1], dz[0])
        )
        flat = [a.reshape(-1, a.shape[-1]) for a in (later, before)]
        gw = flat[0].T @ flat[1] + start.T @ first
    return (gw, dz.sum(axis=(0, 1))) if b_hh else (gw,)


# ---------------------------------------------------------------------------
# rnn (Elman)


@primitive("rnn", reads="io")
def rnn(xp: Any, h0: Any, w_hh: Any, *b_hh: Any, nonlinearity: str, reverse: bool) -> Any:
    """The Elman recurrence over a sequence: (L, N, H) of hidden states."""
    out = np.empty(xp.shape, np.result_type(xp, h0, w_hh))
    h, w_t = h0, np.ascontiguousarray(w_hh.T)  # BLAS is faster on it than on a view
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
    return (dz, dh, *_hidden_grads(dz, out, h0, attrs["reverse"], needs[2], b_hh))


@rnn.defreference
def _rnn_reference(out, xp, h0, w_hh, *b_hh, nonlinearity, reverse):
    act = ops.tanh if nonlinearity == "tanh" else ops.relu
    h, hs = h0, [None] * xp.shape[0]
    for t in _steps(xp.shape[0], reverse):
        h = hs[t] = act(xp[t] + fused.linear(h, w_hh, *b_hh))
    return _fn.stack(hs)


# ---------------------------------------------------------------------------
# lstm


class _LstmLoop:
    """What both LSTM primitives' forward loops share: the arrays saved for backward and
    one step.

    sigmoid(z) = 0.5 + 0.5 * tanh(z / 2): with the i, f, o blocks of the pre-activations
    halved (exact in binary floating point) one tanh pass per step serves all four gates.
    """

    def __init__(self, xp: Any, h0: Any, c0: Any, w_hh: Any, b_hh: tuple) -> None:
        n_steps, n, four_h = xp.shape
        self.hh = hh = four_h // 4
        self.dtype = dtype = np.result_type(xp, h0, c0, w_hh)
        self.half = np.full(four_h, 0.5, dtype)
        self.half[2 * hh : 3 * hh] = 1
        self.w_t = np.ascontiguousarray((w_hh * self.half[:, None]).T)  # faster than a view
        self.bias = b_hh[0] if b_hh else np.zeros(four_h, dtype)
        self.xp = xp
        self.gates = np.empty((n_steps, n, four_h), dtype)
        self.tanh_c = np.empty((n_steps, n, hh), dtype)
        self.z = np.empty((n, four_h), dtype)  # every step's pre-activations, kept in cache

    def step(self, t: int, h: Any, c_prev: Any, c: Any) -> tuple[Any, Any]:
        """Step t from the state (h, c_prev) before it: its gates (saved) and its cell
        state into ``c``; returns the two factors of ``o * tanh(c)``."""
        z = self.z
        np.dot(h, self.w_t, out=z)
        kernels.lstm_halved_preactivations(z, self.xp[t], self.bias, self.half)
        np.tanh(z, out=z)
        kernels.lstm_gates(z, c_prev, self.gates[t], c)
        np.tanh(c, out=self.tanh_c[t])
        return self.gates[t, :, 3 * self.hh :], self.tanh_c[t]


def _before(cells: Any, c0: Any, t: int, reverse: bool) -> Any:
    """The cell state step ``t`` started from: ``cells[t -+ 1]``, or ``c0`` for the first."""
    before = t + 1 if reverse else t - 1
    return cells[before] if 0 <= before < len(cells) else c0


@primitive("lstm", saves=True, reads="io")
def lstm(xp: Any, h0: Any, c0: Any, w_hh: Any, *b_hh: Any, reverse: bool) -> Any:
    """The LSTM recurrence over a sequence: (2, L, N, H), the hidden states h_t in ``[0]``
    and the cell states c_t in ``[1]``.

    Saves the gate activations (L, N, 4H) and tanh(c_t) (L, N, H) for backward.
    """
    loop = _LstmLoop(xp, h0, c0, w_hh, b_hh)
    out = np.empty((2, *loop.tanh_c.shape), loop.dtype)
    h, c = h0.astype(loop.dtype, copy=False), c0.astype(loop.dtype, copy=False)
    for t in _steps(xp.shape[0], reverse):
        o, tanh_c = loop.step(t, h, c, out[1, t])
        h, c = out[0, t], out[1, t]
        np.multiply(o, tanh_c, out=h)
    return out, (loop.gates, loop.tanh_c)


@lstm.defvjp
def _(F, g, out, ins, needs, attrs):
    h0, c0, w_hh, b_hh = ins[1], ins[2], ins[3], ins[4:]
    gates, tanh_c = attrs["saved"]
    reverse = attrs["reverse"]
    dtype = out.dtype
    w = w_hh.astype(dtype, copy=False)
    h0, c0, g = (np.asarray(a, dtype) for a in (h0, c0, g))
    dz = np.empty_like(gates)
    dh = np.zeros(h0.shape, dtype)
    dc = np.zeros(c0.shape, dtype)
    for t in _steps(out.shape[1], not reverse):
        c_prev = _before(out[1], c0, t, reverse)
        kernels.lstm_gates_grad(gates[t], tanh_c[t], c_prev, g[0, t], g[1, t], dh, dc, dz[t])
        np.dot(dz[t], w, out=dh)
    return (dz, dh, dc, *_hidden_grads(dz, out[0], h0, reverse, needs[3], b_hh))


@primitive("lstm_projected", saves=True, reads="io")
def lstm_projected(
    xp: Any, h0: Any, c0: Any, w_hh: Any, w_hr: Any, *b_hh: Any, reverse: bool
) -> Any:  # fmt: skip
    """The LSTM recurrence with a projected hidden state (PyTorch's ``proj_size``):
    ``h_t = (o * tanh(c_t)) @ W_hr.T``, of size P; ``W_hh`` is (4H, P), ``W_hr`` (P, H).
    Out (L, N, P + H): h_t, then c_t.

    Saves the gates, tanh(c_t) and ``o * tanh(c_t)`` (L, N, H) for backward.
    """
    loop = _LstmLoop(xp, h0, c0, w_hh, b_hh)
    p = w_hr.shape[0]
    out = np.empty((*xp.shape[:2], p + loop.hh), loop.dtype)
    unprojected = np.empty_like(loop.tanh_c)
    w_hr_t = np.ascontiguousarray(w_hr.T, loop.dtype)
    h, c = h0.astype(loop.dtype, copy=False), c0.astype(loop.dtype, copy=False)
    for t in _steps(xp.shape[0], reverse):
        o, tanh_c = loop.step(t, h, c, out[t, :, p:])
        h, c = out[t, :, :p], out[t, :, p:]
        np.multiply(o, tanh_c, out=unprojected[t])
        h[...] = unprojected[t] @ w_hr_t
    return out, (loop.gates, loop.tanh_c, unprojected)


@lstm_projected.defvjp
def _(F, g, out, ins, needs, attrs):
    h0, c0, w_hh, w_hr, b_hh = ins[1], ins[2], ins[3], ins[4], ins[5:]
    gates, tanh_c, unprojected = attrs["saved"]
    reverse = attrs["reverse"]
    dtype = out.dtype
    p = w_hr.shape[0]
    w, w_hr = w_hh.astype(dtype, copy=False), w_hr.astype(dtype, copy=False)
    h0, c0, g = (np.asarray(a, dtype) for a in (h0, c0, g))
    dz = np.empty_like(gates)
    dhs = np.empty((*out.shape[:2], p), dtype)  # the gradient reaching each h_t
    dh = np.zeros(h0.shape, dtype)
    dc = np.zeros(c0.shape, dtype)
    none = np.zeros(c0.shape, dtype)  # o * tanh(c_t) reaches later steps only through h_t
    for t in _steps(out.shape[0], not reverse):
        c_prev = _before(out[:, :, p:], c0, t, reverse)
        np.add(dh, g[t, :, :p], out=dhs[t])
        d_unprojected = dhs[t] @ w_hr
        kernels.lstm_gates_grad(
            gates[t], tanh_c[t], c_prev, d_unprojected, g[t, :, p:], none, dc, dz[t]
        )
        np.dot(dz[t], w, out=dh)
    flat = [a.reshape(-1, a.shape[-1]) for a in (dhs, unprojected)]
    dw_hr = flat[0].T @ flat[1] if needs[4] else None
    states = np.ascontiguousarray(out[..., :p])
    dw_hh, *db_hh = _hidden_grads(dz, states, h0, reverse, needs[3], b_hh)
    return (dz, dh, dc, dw_hh, dw_hr, *db_hh)


def lstm_cell(z: Any, c: Any) -> tuple[Any, Any, tuple[Any, ...]]:
    """One LSTM step in core primitives from the pre-activations ``z`` (N, 4H) and the
    cell state ``c``: (h, c, (i, f, g, o)), one op per gate."""
    hh = c.shape[-1]
    i, f, g, o = (z[:, k * hh : (k + 1) * hh] for k in range(4))
    i, f, g, o = ops.sigmoid(i), ops.sigmoid(f), ops.tanh(g), ops.sigmoid(o)
    c = f * c + i * g
    return o * ops.tanh(c), c, (i, f, g, o)


def _lstm_steps(xp, h0, c0, w_hh, b_hh, w_hr, reverse):
    """The hidden and cell states of every step in core primitives, one op per gate;
    ``w_hr`` (or None) projects the hidden state."""
    h, c, hs, cs = h0, c0, [None] * xp.shape[0], [None] * xp.shape[0]
    for t in _steps(xp.shape[0], reverse):
        h, c, _gates = lstm_cell(xp[t] + fused.linear(h, w_hh, *b_hh), c)
        if w_hr is not None:
            h = fused.linear(h, w_hr)
        hs[t], cs[t] = h, c
    return hs, cs


@lstm.defreference
def _lstm_reference(out, xp, h0, c0, w_hh, *b_hh, reverse, **_):
    hs, cs = _lstm_steps(xp, h0, c0, w_hh, b_hh, None, reverse)
    return _fn.stack([_fn.stack(hs), _fn.stack(cs)])


@lstm_projected.defreference
def _lstm_projected_reference(out, xp, h0, c0, w_hh, w_hr, *b_hh, reverse, **_):
    hs, cs = _lstm_steps(xp, h0, c0, w_hh, b_hh, w_hr, reverse)
    return _fn.stack([_fn.concatenate([h, c], axis=-1) for h, c in zip(hs, cs)])


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
    h, w_t = h0, np.ascontiguousarray(w_hh.T)  # BLAS is faster on it than on a view
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
    return (dxp, dh, *_hidden_grads(dzh, out, h0, reverse, needs[2], b_hh))


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
