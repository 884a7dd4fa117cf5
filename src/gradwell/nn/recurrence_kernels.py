"""Compiled elementwise steps of the LSTM recurrence (numba, by :mod:`gradwell._jit`'s policy).

One step of an LSTM is a matrix product and about twenty elementwise passes over
(N, 4H); as numpy calls each pass costs a call and a temporary, so the step's arithmetic
is one loop here. The tanh passes stay numpy's: numba's tanh is a scalar library call (no
vector math library), about 25 times slower than numpy's vectorised one on (32, 512).
The loops run over row views, one 1-D view per gate block: so written they vectorise
(three times faster on (32, 128) blocks than indexing the 2-D arrays). Gate blocks are
PyTorch's, ``i, f, g, o`` along the last axis.
"""

from __future__ import annotations

from typing import Any

from .._jit import jit


@jit
def lstm_halved_preactivations(z: Any, xp: Any, bias: Any, half: Any) -> None:
    """``z += half * (xp + bias)`` in place, ``z`` and ``xp`` (N, 4H), ``bias`` and
    ``half`` (4H,): the pre-activations of one step with the i, f, o blocks halved, from
    the hidden state's product ``z`` with the halved ``W_hh``."""
    n, four_h = z.shape
    for r in range(n):
        zr, xr = z[r], xp[r]
        for j in range(four_h):
            zr[j] += half[j] * (xr[j] + bias[j])


@jit
def lstm_gates(tanh_z: Any, c_prev: Any, a: Any, c: Any) -> None:
    """From ``tanh_z`` (N, 4H), tanh of the pre-activations with the i, f, o blocks halved:
    the gates into ``a`` (N, 4H), ``sigmoid = 0.5 + 0.5 * tanh(z / 2)`` (as ``ops.sigmoid``
    forms it) for i, f, o and ``tanh`` for g, and the cell state ``c = f * c_prev + i * g``.
    (Whole-row passes, the g block then overwritten: they vectorise, one fused loop over
    the four blocks did not -- 2.6 against 7 us on (32, 512).)"""
    n, hh = c.shape
    half = a.dtype.type(0.5)
    for r in range(n):
        zr, ar = tanh_z[r], a[r]
        for j in range(4 * hh):
            ar[j] = half + half * zr[j]
        for j in range(hh):
            ar[2 * hh + j] = zr[2 * hh + j]
    for r in range(n):
        ar, cp, cr = a[r], c_prev[r], c[r]
        for j in range(hh):
            cr[j] = ar[hh + j] * cp[j] + ar[j] * ar[2 * hh + j]


@jit
def lstm_gates_grad(
    a: Any, tanh_c: Any, c_prev: Any, g_h: Any, g_c: Any, dh: Any, dc: Any, dz: Any
) -> None:  # fmt: skip
    """One step back through an LSTM cell from its gates ``a`` (N, 4H), ``tanh(c_t)`` and
    ``c_{t-1}``: with the gradients ``dh``, ``dc`` reaching h_t and c_t from later steps
    plus ``g_h``, ``g_c`` from the outputs, writes the gradient of the pre-activations
    into ``dz`` (N, 4H) and the gradient reaching ``c_{t-1}`` into ``dc``; ``dh`` is
    read only (the caller forms ``dz @ W_hh`` into it)."""
    n, hh = dc.shape
    one = a.dtype.type(1)
    for r in range(n):
        ar, zr = a[r], dz[r]
        i, f, g, o = ar[:hh], ar[hh : 2 * hh], ar[2 * hh : 3 * hh], ar[3 * hh :]
        di, df, dg, do = zr[:hh], zr[hh : 2 * hh], zr[2 * hh : 3 * hh], zr[3 * hh :]
        t, cp, gh, gc, dhr, dcr = tanh_c[r], c_prev[r], g_h[r], g_c[r], dh[r], dc[r]
        for j in range(hh):
            dh_t = dhr[j] + gh[j]
            dc_t = dcr[j] + gc[j] + dh_t * o[j] * (one - t[j] * t[j])
            di[j] = dc_t * g[j] * i[j] * (one - i[j])
            df[j] = dc_t * cp[j] * f[j] * (one - f[j])
            dg[j] = dc_t * i[j] * (one - g[j] * g[j])
            do[j] = dh_t * t[j] * o[j] * (one - o[j])
            dcr[j] = dc_t * f[j]
