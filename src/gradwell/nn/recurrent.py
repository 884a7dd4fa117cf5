"""Recurrent layers: RNN, LSTM and GRU, with PyTorch's arguments, parameters and numbers."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._numeric import numeric_array
from ..autograd import functional as _fn
from ..autograd.creation import _rng
from ..autograd.recording import observers
from ..autograd.tensor import Tensor
from . import fused, recurrence
from .module import Module
from .parameter import Parameter
from .validate import check_rate
from .validate import positive_int as _positive_int


class _Recurrent(Module):
    """What RNN, LSTM and GRU share: the parameters of each layer and direction, the
    checks of the input and initial state, the stacking of layers and directions.

    A subclass names its gate blocks per layer (``GATES``) and runs one layer and
    direction in ``_scan``.
    """

    GATES = 1
    _projects = False  # takes proj_size: PyTorch's LSTM alone does

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        rng: Any = None,
        dtype: Any = None,
        proj_size: int = 0,
    ) -> None:
        super().__init__()
        who = type(self).__name__
        self.input_size = _positive_int(input_size, "input_size", who)
        self.hidden_size = _positive_int(hidden_size, "hidden_size", who)
        self.num_layers = _positive_int(num_layers, "num_layers", who)
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = check_rate(dropout)
        self.bidirectional = bool(bidirectional)
        if isinstance(proj_size, bool) or not isinstance(proj_size, int) or proj_size < 0:
            raise ValueError(f"{who}: proj_size must be an int >= 0; got {proj_size!r}")
        if proj_size and not self._projects:
            raise ValueError(f"{who}: proj_size is an LSTM's only (as in PyTorch); got {proj_size}")
        if proj_size >= self.hidden_size:
            raise ValueError(
                f"{who}: proj_size ({proj_size}) must be smaller than hidden_size "
                f"({self.hidden_size})"
            )
        self.proj_size = proj_size
        self.rng = _rng(rng)
        dtype = np.dtype(np.float32 if dtype is None else dtype)
        gh = self.GATES * self.hidden_size
        for layer in range(self.num_layers):
            fan_in = self.input_size if layer == 0 else self.output_size * self.directions
            for suffix in self._suffixes(layer):
                shapes: dict[str, tuple[int, ...]] = {
                    "weight_ih": (gh, fan_in),
                    "weight_hh": (gh, self.output_size),
                }
                if self.bias:
                    shapes.update(bias_ih=(gh,), bias_hh=(gh,))
                if proj_size:
                    shapes.update(weight_hr=(proj_size, self.hidden_size))
                for name, shape in shapes.items():
                    setattr(self, name + suffix, Parameter(Tensor(np.empty(shape, dtype))))
        self.reset_parameters()

    def reset_parameters(self, rng: Any = None) -> None:
        """Draw every parameter from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)), PyTorch's
        default; ``rng`` (default: the layer's) a seed or a Generator."""
        gen = self.rng if rng is None else _rng(rng)
        k = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            p.data[...] = gen.uniform(-k, k, p.shape)

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        """The size of the hidden state h: ``proj_size`` when it projects, else ``hidden_size``."""
        return self.proj_size or self.hidden_size

    def _suffixes(self, layer: int) -> list[str]:
        return [f"_l{layer}", f"_l{layer}_reverse"][: self.directions]

    def _weights(self, suffix: str) -> tuple[Any, tuple[Any, ...], Any, tuple[Any, ...]]:
        """(W_ih, (b_ih,) or (), W_hh, (b_hh,) or ()) of one layer and direction."""
        get = self._parameters.__getitem__
        b_ih = (get("bias_ih" + suffix),) if self.bias else ()
        b_hh = (get("bias_hh" + suffix),) if self.bias else ()
        return get("weight_ih" + suffix), b_ih, get("weight_hh" + suffix), b_hh

    # ------------------------------------------------------------------ forward
    def forward(self, input: Any, hx: Any = None) -> tuple[Tensor, Any]:
        x, batched = self._sequence(input)
        states = self._initial_states(hx, x.shape[1], x.dtype, batched)
        finals: list[list[Tensor]] = [[] for _ in states]
        for layer in range(self.num_layers):
            outputs = []
            for d, suffix in enumerate(self._suffixes(layer)):
                k = layer * self.directions + d
                seq, last = self._scan(x, [s[k] for s in states], suffix, reverse=d == 1)
                outputs.append(seq)
                for box, value in zip(finals, last):
                    box.append(value)
            x = outputs[0] if len(outputs) == 1 else _fn.concatenate(outputs, axis=-1)
            if self.training and self.dropout > 0 and layer < self.num_layers - 1:
                x = fused.dropout(x, rate=self.dropout, rng=self.rng) if self.dropout < 1 else x * 0
        if self.batch_first:
            x = _fn.transpose(x, (1, 0, 2))
        finished = [_fn.stack(box) for box in finals]
        if not batched:
            x, finished = x[:, 0], [h[:, 0] for h in finished]
        return x, self._pack(finished)

    def _pack(self, states: list[Tensor]) -> Any:
        return states[0]

    def _sequence(self, input: Any) -> tuple[Tensor, bool]:
        """The input as (L, N, input_size) in the weights' dtype, and whether it was batched."""
        dtype = self._parameters["weight_ih_l0"].data.dtype  # type: ignore[union-attr]
        if not isinstance(input, Tensor):
            input = Tensor(numeric_array(input, f"{self._short_repr()} input").astype(dtype))
        if input.ndim not in (2, 3) or input.shape[-1] != self.input_size:
            layout = "(N, L, input_size)" if self.batch_first else "(L, N, input_size)"
            raise ValueError(
                f"{self._short_repr()}: expected an input of shape {layout} or (L, input_size) "
                f"with input_size={self.input_size}; got shape {input.shape}"
            )
        if input.ndim == 2:
            return input[:, None], False
        return (_fn.transpose(input, (1, 0, 2)) if self.batch_first else input), True

    def _initial_states(self, hx: Any, n: int, dtype: Any, batched: bool) -> list[Tensor]:
        """Each initial state as a (num_layers * directions, N, size) tensor: h's size is
        ``output_size``, c's ``hidden_size``."""
        names = self.STATE_NAMES
        sizes = (self.output_size, self.hidden_size)[: len(names)]
        shapes = [(self.num_layers * self.directions, n, size) for size in sizes]
        if hx is None:
            return [Tensor(np.zeros(shape, dtype)) for shape in shapes]
        wants = [shape if batched else (shape[0], shape[2]) for shape in shapes]
        given = (hx,) if len(names) == 1 else hx
        if not isinstance(given, (tuple, list)) or len(given) != len(names):
            raise TypeError(
                f"{self._short_repr()}: expected the initial state as {' and '.join(names)} "
                f"({'a tuple of ' if len(names) > 1 else ''}tensors of shape "
                f"{' and '.join(map(str, wants))}); got {type(hx).__name__}"
            )
        states = []
        for name, h, want in zip(names, given, wants):
            if not isinstance(h, Tensor):
                h = Tensor(numeric_array(h, f"{self._short_repr()} {name}").astype(dtype))
            if h.shape != want:
                size = "hidden_size" if want[-1] == self.hidden_size else "proj_size"
                raise ValueError(
                    f"{self._short_repr()}: expected {name} of shape {want} (num_layers * "
                    f"directions, {'N, ' if batched else ''}{size}); got {h.shape}"
                )
            states.append(h if batched else h[:, None])
        return states

    def _scan(
        self, x: Tensor, states: list[Tensor], suffix: str, reverse: bool
    ) -> tuple[Tensor, list[Tensor]]:
        raise NotImplementedError

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        for name, default in (("bias", True), ("batch_first", False), ("dropout", 0.0),
                              ("bidirectional", False), ("proj_size", 0)):  # fmt: skip
            if getattr(self, name) != default:
                s += f", {name}={getattr(self, name)}"
        return s


def _run(op: Any, *inputs: Any, **attrs: Any) -> Tensor:
    """The fused recurrence; while ops are observed, its reference also runs, on detached
    copies of the inputs, so that an observer sees every gate as its own op (scoped to
    the layer) while training computes exactly the numbers it computes unobserved."""
    out = op(*inputs, **attrs)
    if observers.op:
        op.reference(out.data, *[Tensor(t.data) for t in inputs], **attrs)
    return out


def _last(seq: Tensor, reverse: bool) -> Tensor:
    return seq[0] if reverse else seq[-1]


class RNN(_Recurrent):
    """An Elman RNN: ``h_t = tanh(x_t @ W_ih.T + b_ih + h_{t-1} @ W_hh.T + b_hh)``.

    Arguments as PyTorch's: ``input_size``, ``hidden_size``, ``num_layers``,
    ``nonlinearity`` ("tanh" or "relu"), ``bias``, ``batch_first``, ``dropout`` (on
    each layer's output but the last, in training), ``bidirectional``; plus ``rng``
    (a seed or a numpy Generator, for the initial weights and the dropout masks) and
    ``dtype``. The parameters are PyTorch's (``weight_ih_l0``, ``weight_hh_l0``,
    ``bias_ih_l0``, ``bias_hh_l0``, ``..._reverse``), initialised U(-1/sqrt(H),
    1/sqrt(H)), so a PyTorch state dict loads and gives the same outputs.

    Input: (L, N, input_size), (N, L, input_size) with ``batch_first``, or unbatched
    (L, input_size); optional ``h0`` (num_layers * directions, N, hidden_size).
    Output: ``(output, h_n)``: output (L, N, directions * hidden_size) (batch first
    with ``batch_first``), h_n like h0.

    >>> import gradwell as gw
    >>> rnn = gw.nn.RNN(3, 5, num_layers=2, batch_first=True, rng=0)
    >>> out, h_n = rnn(gw.randn(4, 7, 3, rng=0))
    >>> out.shape, h_n.shape
    ((4, 7, 5), (2, 4, 5))
    """

    STATE_NAMES = ("h0",)

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        rng: Any = None,
        dtype: Any = None,
    ) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu'; got {nonlinearity!r}")
        super().__init__(
            input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
            rng, dtype,
        )  # fmt: skip
        self.nonlinearity = nonlinearity

    def _scan(self, x, states, suffix, reverse):
        w_ih, b_ih, w_hh, b_hh = self._weights(suffix)
        xp = fused.linear(x, w_ih, *b_ih)
        seq = _run(recurrence.rnn, xp, states[0], w_hh, *b_hh,
                   nonlinearity=self.nonlinearity, reverse=reverse)  # fmt: skip
        return seq, [_last(seq, reverse)]

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s if self.nonlinearity == "tanh" else s + f", nonlinearity={self.nonlinearity!r}"


class LSTM(_Recurrent):
    """Long short-term memory, PyTorch's gates in PyTorch's order (i, f, g, o):

    ``i, f, o = sigmoid(.)``, ``g = tanh(.)`` of ``x_t @ W_ih.T + b_ih + h @ W_hh.T + b_hh``;
    ``c_t = f * c_{t-1} + i * g``; ``h_t = o * tanh(c_t)``.

    Arguments, parameters (``weight_ih_l0`` of shape (4 * hidden_size, input_size),
    ...), initialisation and input layout as :class:`RNN`; the state is a pair:
    ``output, (h_n, c_n) = lstm(x, (h0, c0))``. ``proj_size`` > 0 (PyTorch's) projects
    the hidden state: ``h_t = (o * tanh(c_t)) @ W_hr.T`` with ``weight_hr_l0`` of shape
    (proj_size, hidden_size); the output and h_n have proj_size features, c_n
    hidden_size.

    >>> import gradwell as gw
    >>> lstm = gw.nn.LSTM(3, 5, rng=0)
    >>> out, (h_n, c_n) = lstm(gw.randn(7, 4, 3, rng=0))
    >>> out.shape, h_n.shape, c_n.shape
    ((7, 4, 5), (1, 4, 5), (1, 4, 5))
    """

    GATES = 4
    STATE_NAMES = ("h0", "c0")
    _projects = True

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        rng: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(
            input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
            rng, dtype, proj_size,
        )  # fmt: skip

    def _scan(self, x, states, suffix, reverse):
        w_ih, b_ih, w_hh, b_hh = self._weights(suffix)
        xp = fused.linear(x, w_ih, *b_ih)
        h0, c0 = states
        if self.proj_size:
            w_hr = self._parameters["weight_hr" + suffix]
            hc = _run(recurrence.lstm_projected, xp, h0, c0, w_hh, w_hr, *b_hh, reverse=reverse)
            seq, cells = hc[..., : self.proj_size], hc[..., self.proj_size :]
        else:
            hc = _run(recurrence.lstm, xp, h0, c0, w_hh, *b_hh, reverse=reverse)
            seq, cells = hc[0], hc[1]
        return seq, [_last(seq, reverse), _last(cells, reverse)]

    def _pack(self, states):
        return tuple(states)


class GRU(_Recurrent):
    """Gated recurrent unit, PyTorch's gates in PyTorch's order (r, z, n):

    ``r, z = sigmoid(x_t @ W_i.T + b_i + h @ W_h.T + b_h)``,
    ``n = tanh(x_t @ W_in.T + b_in + r * (h @ W_hn.T + b_hn))``, ``h_t = (1 - z) * n + z * h``.

    Arguments, parameters (``weight_ih_l0`` of shape (3 * hidden_size, input_size),
    ...), initialisation, input and output as :class:`RNN`.

    >>> import gradwell as gw
    >>> gru = gw.nn.GRU(3, 5, bidirectional=True, rng=0)
    >>> out, h_n = gru(gw.randn(7, 4, 3, rng=0))
    >>> out.shape, h_n.shape
    ((7, 4, 10), (2, 4, 5))
    """

    GATES = 3
    STATE_NAMES = ("h0",)

    def _scan(self, x, states, suffix, reverse):
        w_ih, b_ih, w_hh, b_hh = self._weights(suffix)
        xp = fused.linear(x, w_ih, *b_ih)
        seq = _run(recurrence.gru, xp, states[0], w_hh, *b_hh, reverse=reverse)
        return seq, [_last(seq, reverse)]
