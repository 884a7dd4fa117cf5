"""The learning-rate range test: raise the learning rate exponentially, watch the loss.

The model and optimizer are restored afterwards (parameters, buffers, optimizer
state and learning rates), so it can run right before ``fit``.
"""

from __future__ import annotations

import copy
import json
import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..autograd.tensor import Tensor
from .findings import jsonable
from .profile import class_family


@dataclass
class LRFindResult:
    """What :func:`lr_find` measured.

    ``lrs``/``losses``/``smoothed`` per step; ``silent_fraction``: per step, the
    largest share of a ReLU layer's units that output 0 for the whole batch.
    ``suggested_lr``: where the smoothed loss is half-way down its fall from its
    starting level to its minimum (None when it never falls; see
    :func:`falling_stretch`);
    ``min_loss_lr``: where it was lowest; ``explosion_lr``: where it first exceeded
    ``diverge`` times its best (the sweep stops there); ``nan_lr``: where it became
    non-finite; ``dead_units_lr``: where ReLU units began to die (None: never).
    """

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    silent_fraction: list[float] = field(default_factory=list)
    suggested_lr: float | None = None
    min_loss_lr: float | None = None
    explosion_lr: float | None = None
    nan_lr: float | None = None
    dead_units_lr: float | None = None
    stopped: str = "end of sweep"

    def __str__(self) -> str:
        def f(x: float | None) -> str:
            return "-" if x is None else f"{x:.3g}"

        return (
            f"lr_find: {len(self.lrs)} steps from {f(self.lrs[0] if self.lrs else None)} to "
            f"{f(self.lrs[-1] if self.lrs else None)} ({self.stopped})\n"
            f"  suggested lr:          {f(self.suggested_lr)} (half-way down the loss's fall)\n"
            f"  lowest loss at lr:     {f(self.min_loss_lr)}\n"
            f"  ReLU units die from:   {f(self.dead_units_lr)}\n"
            f"  loss explodes from:    {f(self.explosion_lr)}\n"
            f"  loss is NaN/inf from:  {f(self.nan_lr)}"
        )

    def to_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))

    def plot(self, ax: Any = None) -> Any:
        """Draw loss against learning rate (log scale) with the markers; returns the Figure."""
        from .plots import new_figure

        if ax is None:
            fig = new_figure(7.0, 3.6)
            ax = fig.add_subplot()
        else:
            fig = ax.figure
        lrs = np.asarray(self.lrs[: len(self.losses)], dtype=np.float64)
        loss = np.asarray(self.losses, dtype=np.float64)
        ax.plot(
            lrs, np.where(np.isfinite(loss), loss, np.nan), color="#bdc3c7", lw=0.8, label="loss"
        )
        ax.plot(
            lrs[: len(self.smoothed)], self.smoothed, color="#2c3e50", lw=1.6, label="smoothed loss"
        )
        ax.set_xscale("log")
        stretch = falling_stretch(self.smoothed)
        if stretch is not None:
            ax.axvspan(lrs[stretch[0]], lrs[stretch[2]], color="#27ae60", alpha=0.08,
                       label="the loss falls")  # fmt: skip
        marks = [
            ("suggested", self.suggested_lr, "#27ae60"),
            ("ReLU units die", self.dead_units_lr, "#d68910"),
            ("explodes", self.explosion_lr, "#c0392b"),
            ("NaN", self.nan_lr, "#000000"),
        ]
        for label, x, color in marks:
            if x is not None:
                ax.axvline(x, color=color, ls="--", lw=1, label=f"{label}: {x:.2g}")
        finite = np.asarray(self.smoothed, dtype=np.float64)
        finite = finite[np.isfinite(finite)]
        if finite.size:
            lo, hi = float(finite.min()), float(finite[0])
            span = max(hi - lo, 1e-12)
            ax.set_ylim(lo - 0.1 * span, max(hi, lo) + 1.5 * span)
        ax.set_xlabel("learning rate")
        ax.set_ylabel("loss")
        ax.set_title("Learning-rate range test")
        ax.legend(fontsize=8)
        return fig

    def save(self, path: str | os.PathLike[str]) -> str:
        """Save the plot (.png, .svg, .pdf) or the numbers (.json); written atomically."""
        from .._atomic import atomic_file, atomic_write

        path = os.fspath(path)
        ext = os.path.splitext(path)[1].lower()
        if ext == ".json":
            atomic_write(path, json.dumps(self.to_dict(), indent=2))
            return path
        if ext not in (".png", ".svg", ".pdf"):
            raise ValueError(
                f"LRFindResult.save: expected a .png, .svg, .pdf or .json path; got {path!r}"
            )
        with atomic_file(path, "wb") as f:
            self.plot().savefig(f, format=ext[1:])
        return path


def _batches(train: Any, batch_size: int, seed: int) -> Any:
    from ..data.loader import DataLoader

    loader = train if isinstance(train, DataLoader) else None
    if loader is None:
        if not (isinstance(train, (tuple, list)) and len(train) == 2):
            raise TypeError(
                "lr_find: train must be a pair of arrays (X, y) or a DataLoader; "
                f"got {type(train).__name__}"
            )
        loader = DataLoader(tuple(train), batch_size=batch_size, shuffle=True, seed=seed)
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch[0], batch[1]
        if empty:
            raise ValueError("lr_find: the training data has no batches")


def lr_find(
    model: Any,
    train: Any,
    loss: Any,
    optimizer: Any,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_steps: int = 100,
    *,
    batch_size: int = 32,
    beta: float = 0.9,
    diverge: float = 4.0,
    seed: int = 0,
) -> LRFindResult:
    """Learning-rate range test: ``num_steps`` training steps with the learning rate
    rising exponentially from ``start_lr`` to ``end_lr``.

    The loss is smoothed with an exponential moving average (``beta``, bias
    corrected); the sweep stops when the smoothed loss exceeds ``diverge`` times
    its best or becomes non-finite. It reports the suggested learning rate (where
    the smoothed loss is half-way down its fall to the minimum: always inside the
    stretch where it falls, and stable from seed to seed), and the learning rates
    at which ReLU units begin to die, the loss explodes and it turns NaN. The
    model's parameters and buffers, its train/eval mode and the optimizer's state
    and learning rates are restored afterwards. (Dropout's random generator is not
    rewound.)

    >>> import numpy as np, gradwell as gw
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(512, 4)).astype(np.float32); y = (X[:, 0] > 0).astype(np.int64)
    >>> nn = gw.nn
    >>> model = nn.Sequential(nn.Linear(4, 16, rng=0), nn.ReLU(), nn.Linear(16, 2, rng=1))
    >>> opt = gw.optim.SGD(model.parameters(), lr=0.1)
    >>> before = model[0].weight.numpy().copy()
    >>> result = gw.lr_find(model, (X, y), nn.CrossEntropyLoss(), opt, num_steps=60)
    >>> unchanged = bool((model[0].weight.numpy() == before).all())
    >>> 1e-7 < result.suggested_lr < 10, opt.param_groups[0]["lr"], unchanged
    (True, 0.1, True)
    """
    if not (0 < start_lr < end_lr) or not all(map(math.isfinite, (start_lr, end_lr))):
        raise ValueError(
            f"lr_find: expected 0 < start_lr < end_lr (finite); got start_lr="
            f"{start_lr!r}, end_lr={end_lr!r}"
        )
    if not isinstance(num_steps, int) or num_steps < 2:
        raise ValueError(f"lr_find: num_steps must be an int >= 2; got {num_steps!r}")
    if not 0 <= beta < 1:
        raise ValueError(f"lr_find: beta must be in [0, 1); got {beta!r}")
    if not diverge > 1:
        raise ValueError(f"lr_find: diverge must be > 1; got {diverge!r}")
    from ..train.predict import resolve_loss

    loss_fn = resolve_loss(loss, "lr_find")
    saved_model = model.state_dict()
    saved_opt = copy.deepcopy(optimizer.state_dict())
    was_training = model.training
    relus = [m for _, m in model.named_modules() if (class_family(m) or ("", ""))[1] == "relu"]
    silent_now: list[float] = []

    def watch(module: Any, inputs: Any, output: Any) -> None:
        if isinstance(output, Tensor):
            a = output.data.reshape(output.shape[0], -1)
            silent_now.append(1.0 - float((a > 0).any(axis=0).mean()))

    handles = [m.register_forward_hook(watch) for m in relus]
    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    silent: list[float] = []
    result = LRFindResult(lrs, losses, smoothed, silent)
    ratio = end_lr / start_lr
    try:
        model.train()
        batches = _batches(train, batch_size, seed)
        avg, best = 0.0, math.inf
        for i in range(num_steps):
            lr = start_lr * ratio ** (i / (num_steps - 1))
            for g in optimizer.param_groups:
                g["lr"] = lr
            x, y = next(batches)
            optimizer.zero_grad(set_to_none=True)
            silent_now.clear()
            out = model(x)
            loss_t = loss_fn(out, y)
            value = float(loss_t.item())
            lrs.append(lr)
            losses.append(value)
            silent.append(max(silent_now, default=0.0))
            if not math.isfinite(value):
                result.nan_lr = lr
                result.stopped = "loss became non-finite"
                break
            avg = beta * avg + (1 - beta) * value
            sm = avg / (1 - beta ** (i + 1))
            smoothed.append(sm)
            best = min(best, sm)
            if i > 0 and sm > diverge * best:
                result.explosion_lr = lr
                result.stopped = f"smoothed loss over {diverge:g}x its best"
                break
            loss_t.backward()
            optimizer.step()
    finally:
        for h in handles:
            h.remove()
        model.load_state_dict(saved_model)
        optimizer.load_state_dict(saved_opt)
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    _analyse(result)
    return result


def falling_stretch(smoothed: Any) -> tuple[int, int, int] | None:
    """Where the smoothed loss makes its fall: (start, halfway, end) step indices, or None.

    The fall is measured from the starting level (the median of the first tenth of
    the sweep) down to the minimum. It starts after the last step, before the
    minimum, still within 10% of the fall from the starting level, and ends at the
    first step within 10% of the minimum; ``halfway`` is the first step at least half
    the way down. None when the loss never falls by 5% of its starting level.
    """
    sm = np.asarray(smoothed, dtype=np.float64)
    if sm.size < 3:
        return None
    m = int(np.argmin(sm))
    base = float(np.median(sm[: max(3, sm.size // 10)]))
    drop = base - float(sm[m])
    if not drop > 0.05 * abs(base):
        return None
    still_high = np.flatnonzero(sm[: m + 1] >= base - 0.1 * drop)
    start = int(still_high[-1]) + 1 if still_high.size else 0
    fall = sm[start : m + 1]
    halfway = start + int(np.argmax(fall <= base - 0.5 * drop))
    end = start + int(np.argmax(fall <= sm[m] + 0.1 * drop))
    return start, halfway, end


def _analyse(r: LRFindResult) -> None:
    sm = np.asarray(r.smoothed, dtype=np.float64)
    lrs = np.asarray(r.lrs[: sm.size], dtype=np.float64)
    if sm.size >= 3:
        r.min_loss_lr = float(lrs[int(np.argmin(sm))])
        stretch = falling_stretch(sm)
        if stretch is not None:
            # Half-way down the fall, not the steepest point: the slope of a noisy curve
            # has its minimum anywhere (even in the flat start), the half-way level does not.
            r.suggested_lr = float(lrs[stretch[1]])
    if r.nan_lr is not None and r.explosion_lr is None and sm.size:
        r.explosion_lr = r.nan_lr
    s = np.asarray(r.silent_fraction, dtype=np.float64)
    if s.size >= 5:
        base = float(np.median(s[: max(3, s.size // 10)]))
        rise = s >= base + 0.25
        for i in np.flatnonzero(rise):
            if rise[i : i + 3].all() or i + 3 > s.size:  # persistent to the end or 3 steps
                r.dead_units_lr = float(r.lrs[i])
                break
