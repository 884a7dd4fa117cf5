"""Basic layers: Linear, Dropout, Flatten, Identity."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .._numeric import numeric_array
from ..autograd import functional as _fn
from ..autograd.creation import _rng, seed_generation
from ..autograd.tensor import Tensor
from . import fused, init
from .module import Module
from .parameter import Parameter
from .validate import check_rate
from .validate import positive_int as _positive_int

_INITS = init.BY_NAME


def weight_and_bias(
    who: str, shape: tuple[int, ...], outputs: int, bias: bool, init: Any, rng: Any, dtype: Any
) -> tuple[Parameter, Parameter | None]:
    """Linear's and the convolutions' parameters, in ``dtype`` (float32 by default): the
    weight of ``shape`` filled by ``init`` (a name in ``gw.nn.init.BY_NAME`` or a callable
    ``fn(weight, rng=rng)``), and a zero bias of ``outputs`` values (None without ``bias``)."""
    dtype = np.dtype(np.float32 if dtype is None else dtype)
    if isinstance(init, str):
        if init not in _INITS:
            raise ValueError(
                f"{who}: unknown init {init!r}; expected one of "
                f"{sorted(_INITS)} or a callable fn(weight, rng=rng)"
            )
        init = _INITS[init]
    elif not callable(init):
        raise TypeError(f"{who}: init must be a name or a callable; got {init!r}")
    weight = Parameter(Tensor(np.empty(shape, dtype)))
    init(weight, rng=_rng(rng))
    return weight, Parameter(Tensor(np.zeros(outputs, dtype))) if bias else None


class Linear(Module):
    """A fully connected layer: ``y = x @ weight.T + bias``.

    ``weight`` has shape (out_features, in_features), as in PyTorch; ``x`` has
    ``in_features`` values on its last axis (any leading axes). ``init`` chooses the
    weight initialisation: "kaiming" (He uniform, std sqrt(2 / in_features): the
    default, for the ReLU family), "xavier" (Glorot uniform, for tanh and sigmoid),
    "kaiming_normal", "xavier_normal", or a callable ``fn(weight, rng=rng)`` that
    fills the weight in place, such as ``functools.partial(gw.nn.init.normal_,
    std=0.01)``. The bias starts at zero. ``rng``: a seed or a numpy Generator.

    >>> import gradwell as gw
    >>> layer = gw.nn.Linear(3, 2, rng=0)
    >>> layer(gw.ones(5, 3)).shape
    (5, 2)
    >>> layer
    Linear(in_features=3, out_features=2, bias=True)
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        init: str | Callable[..., Any] = "kaiming",
        rng: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self.in_features = _positive_int(in_features, "in_features", "Linear")
        self.out_features = _positive_int(out_features, "out_features", "Linear")
        shape = (self.out_features, self.in_features)
        self.weight, self.bias = weight_and_bias(
            "Linear", shape, self.out_features, bias, init, rng, dtype
        )

    def forward(self, x: Any) -> Tensor:
        if not isinstance(x, Tensor):  # plain arrays take the weight's dtype (no float64 leak)
            arr = numeric_array(x, f"{self._short_repr()} input")
            x = Tensor(arr.astype(self.weight.data.dtype, copy=False))
        if self.bias is None:
            return fused.linear(x, self.weight)
        return fused.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )


class Dropout(Module):
    """Randomly zero a fraction ``rate`` (PyTorch's ``p``) of the elements in training.

    Survivors are scaled by 1 / (1 - rate) so the expected output equals the input.
    ``rate`` 0.0 is the identity; 1.0 outputs zeros (and so learns nothing); in
    evaluation mode the layer is the identity. ``rng`` is a seed or a numpy Generator;
    the Generator in use is the attribute ``rng`` (its state can be saved). Without
    ``rng`` the masks come from ``gw.manual_seed``'s stream: a later ``gw.manual_seed``
    (or ``fit(seed=...)``) reseeds the layer too, as it would in PyTorch.

    >>> import gradwell as gw
    >>> drop = gw.nn.Dropout(0.5, rng=0)
    >>> drop(gw.ones(2, 4))
    tensor([[2., 2., 2., 0.],
            [2., 0., 2., 2.]])
    >>> drop.eval()(gw.ones(1, 2))
    tensor([[1., 1.]])
    """

    def __init__(
        self, rate: float | None = None, rng: Any = None, *, p: float | None = None
    ) -> None:
        super().__init__()
        if rate is not None and p is not None and rate != p:
            raise TypeError(f"Dropout: got rate={rate} and p={p}; pass one of them")
        self.rate = check_rate(0.5 if rate is None and p is None else rate if p is None else p)
        self.rng = _rng(rng)
        # the gw.manual_seed generation its generator was drawn from (None: its own rng)
        self._generation = None if rng is not None else seed_generation()

    def forward(self, x: Any) -> Any:
        rate = self.rate
        if not self.training or rate == 0.0:
            return x
        if self._generation is not None and self._generation != seed_generation():
            self.reseed(None)  # gw.manual_seed was called since: the next of its stream
        if not isinstance(x, Tensor):
            x = Tensor(numeric_array(x, f"{self._short_repr()} input"))
        if rate == 1.0:
            return x * 0.0
        return fused.dropout(x, rate=rate, rng=self.rng)

    @property
    def p(self) -> float:
        """PyTorch's name for ``rate``."""
        return self.rate

    def reseed(self, seed: Any) -> None:
        """Draw the masks from ``seed`` (None: the next of gw.manual_seed's stream) from now
        on, if the layer was made without its own ``rng``; a layer given an ``rng`` keeps
        its stream. The generator is the same object, its state replaced (a checkpoint or a
        compiled step holding it stays valid)."""
        if self._generation is not None:
            self.rng.bit_generator.state = _rng(seed).bit_generator.state
            self._generation = seed_generation()

    def extra_repr(self) -> str:
        return f"rate={self.rate}"


def reseed_dropout(model: Module, seed: Any) -> None:
    """Reseed every Dropout of ``model`` made without its own ``rng``: the i-th (in
    ``modules()`` order) from ``(*seed, i)``. ``fit(seed=s)`` calls it with ``(s, epoch)``
    at each epoch, so that a run's masks, like its shuffling, follow from its seed (a
    resumed run included)."""
    for i, m in enumerate(m for m in model.modules() if isinstance(m, Dropout)):
        m.reseed([*np.atleast_1d(seed).tolist(), i])


class Flatten(Module):
    """Merge axes ``start_axis`` .. ``end_axis`` into one (by default all but the batch axis).

    >>> import gradwell as gw
    >>> gw.nn.Flatten()(gw.zeros(2, 3, 4)).shape
    (2, 12)
    """

    def __init__(self, start_axis: int = 1, end_axis: int = -1) -> None:
        super().__init__()
        self.start_axis = start_axis
        self.end_axis = end_axis

    def forward(self, x: Any) -> Tensor:
        return _fn.flatten(x, self.start_axis, self.end_axis)

    def extra_repr(self) -> str:
        return f"start_axis={self.start_axis}, end_axis={self.end_axis}"


class Identity(Module):
    """Returns its input unchanged (a placeholder, e.g. for an optional layer)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, x: Any) -> Any:
        return x
