"""Learning-rate schedules: they set ``group["lr"]`` of an optimizer's parameter groups.

Values equal PyTorch's ``torch.optim.lr_scheduler`` for the same configuration.
Call ``step()`` once per epoch (or per batch, as the schedule is meant), after
``optimizer.step()``; :class:`ReduceLROnPlateau` takes the monitored metric.

>>> import gradwell as gw
>>> w = gw.tensor([1.0], requires_grad=True)
>>> opt = gw.optim.SGD([w], lr=0.1)
>>> sched = gw.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
>>> lrs = []
>>> for epoch in range(5):
...     lrs.append(sched.get_last_lr()[0])
...     opt.step()
...     sched.step()
>>> lrs
[0.1, 0.1, 0.05, 0.05, 0.025]
"""

from __future__ import annotations

import math
import numbers
from bisect import bisect_right
from collections.abc import Callable, Sequence
from typing import Any

from .optimizer import Optimizer

__all__ = [
    "CosineAnnealingLR",
    "CosineAnnealingWarmRestarts",
    "LambdaLR",
    "MultiStepLR",
    "ExponentialLR",
    "LRScheduler",
    "LinearLR",
    "OneCycleLR",
    "ReduceLROnPlateau",
    "SequentialLR",
    "StepLR",
    "warmup",
]


class LRScheduler:
    """Base class: sets each group's ``lr`` from ``get_lr()`` at every ``step()``.

    ``last_epoch`` counts the calls of ``step()``; construction makes the first
    (epoch 0), as in PyTorch. ``base_lrs`` are the groups' learning rates when the
    schedule began (kept in each group as ``"initial_lr"``, so a resumed schedule,
    created with ``last_epoch=k``, finds them). Subclasses give ``get_lr()`` (the
    next values from the current ones: PyTorch's recursive, chainable forms) and
    ``_closed_form()`` (the values at ``last_epoch`` directly).
    """

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        name = type(self).__name__
        _check_optimizer(name, optimizer)
        _check_int(name, "last_epoch", last_epoch, low=-1)
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise ValueError(
                        f"{name}: resuming at last_epoch={last_epoch} needs 'initial_lr' in "
                        f"param group {i}; load the optimizer's state_dict first, or start "
                        "with last_epoch=-1"
                    )
        self.base_lrs: list[float] = [float(g["initial_lr"]) for g in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._initial_step()

    def _initial_step(self) -> None:
        self._step_count = 0
        self.step()

    def get_lr(self) -> list[float]:
        """The learning rates for the current ``last_epoch`` (recursive form)."""
        raise NotImplementedError

    def _closed_form(self) -> list[float]:
        """The learning rates at ``last_epoch`` from ``base_lrs`` alone."""
        raise NotImplementedError

    def step(self) -> None:
        """Advance one epoch (or batch) and set the groups' learning rates."""
        self._step_count += 1
        self.last_epoch += 1
        self._apply(self.get_lr())

    def _restart(self) -> None:
        """Jump back to epoch 0 of the schedule (SequentialLR switching to it)."""
        self._step_count += 1
        self.last_epoch = 0
        self._apply(self._closed_form())

    def _apply(self, lrs: Sequence[float]) -> None:
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = float(lr)
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        """The learning rates set by the last ``step()`` (one per parameter group)."""
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        """The schedule's position and settings (plain numbers and lists; no optimizer)."""
        return {
            k: list(v) if isinstance(v, list) else v
            for k, v in self.__dict__.items()
            if k != "optimizer"
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Resume from :meth:`state_dict` of the same kind of schedule; a mismatch changes
        nothing."""
        self._prepare_load(state_dict)()

    def _prepare_load(self, state_dict: Any) -> Callable[[], None]:
        """Check ``state_dict``; return the function that loads it (which cannot fail)."""
        expected = set(self.state_dict())
        got = set(state_dict) if isinstance(state_dict, dict) else set()
        if got != expected:
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: the state dict does not belong to this "
                f"schedule (missing {sorted(expected - got)}, unexpected {sorted(got - expected)})"
            )
        last_epoch = state_dict["last_epoch"]
        if not isinstance(last_epoch, numbers.Integral) or isinstance(last_epoch, bool):
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: last_epoch must be an int; "
                f"got {last_epoch!r:.80}"
            )
        values = {k: list(v) if isinstance(v, list) else v for k, v in state_dict.items()}
        return lambda: self.__dict__.update(values)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(last_epoch={self.last_epoch}, last_lr={self._last_lr})"


class StepLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` every ``step_size`` epochs.

    Closed form ``lr = base_lr * gamma ** (epoch // step_size)``; it runs PyTorch's
    recursive form (multiply the current lr by ``gamma`` when ``epoch`` is a
    positive multiple of ``step_size``), so other changes to the lr carry through.

    >>> import gradwell as gw
    >>> opt = gw.optim.SGD([gw.tensor([1.0], requires_grad=True)], lr=1.0)
    >>> sched = gw.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.1)
    >>> for _ in range(3):
    ...     sched.step()
    >>> round(sched.get_last_lr()[0], 9)
    0.1
    """

    def __init__(
        self, optimizer: Optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1
    ) -> None:
        self.step_size = _check_int("StepLR", "step_size", step_size, low=1)
        self.gamma = _check_float("StepLR", "gamma", gamma, low=0.0, low_open=True)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        lrs = [g["lr"] for g in self.optimizer.param_groups]
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return lrs
        return [lr * self.gamma for lr in lrs]

    def _closed_form(self) -> list[float]:
        return [b * self.gamma ** (self.last_epoch // self.step_size) for b in self.base_lrs]


class ExponentialLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` every epoch.

    Closed form ``lr = base_lr * gamma ** epoch``; runs PyTorch's recursive form
    (``lr <- lr * gamma``).

    >>> import gradwell as gw
    >>> opt = gw.optim.SGD([gw.tensor([1.0], requires_grad=True)], lr=1.0)
    >>> sched = gw.optim.lr_scheduler.ExponentialLR(opt, gamma=0.5)
    >>> sched.step(); sched.step()
    >>> sched.get_last_lr()
    [0.25]
    """

    def __init__(self, optimizer: Optimizer, gamma: float, last_epoch: int = -1) -> None:
        self.gamma = _check_float("ExponentialLR", "gamma", gamma, low=0.0, low_open=True)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        lrs = [g["lr"] for g in self.optimizer.param_groups]
        if self.last_epoch == 0:
            return lrs
        return [lr * self.gamma for lr in lrs]

    def _closed_form(self) -> list[float]:
        return [b * self.gamma**self.last_epoch for b in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """Anneal the learning rate from its base value to ``eta_min`` along a half cosine.

    Closed form ``lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2``
    (past ``T_max`` it rises again, periodically, as in PyTorch). It runs PyTorch's
    recursive form, ``lr <- eta_min + (lr - eta_min) * (1 + cos(pi t / T)) / (1 + cos(pi
    (t - 1) / T))``, which equals the closed form when nothing else changes the lr.

    >>> import gradwell as gw
    >>> opt = gw.optim.SGD([gw.tensor([1.0], requires_grad=True)], lr=1.0)
    >>> sched = gw.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=2)
    >>> sched.step()
    >>> round(sched.get_last_lr()[0], 9)
    0.5
    """

    def __init__(
        self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1
    ) -> None:
        self.T_max = _check_int("CosineAnnealingLR", "T_max", T_max, low=1)
        self.eta_min = _check_float("CosineAnnealingLR", "eta_min", eta_min, low=0.0)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        t, T, eta_min = self.last_epoch, self.T_max, self.eta_min
        lrs = [g["lr"] for g in self.optimizer.param_groups]
        if t == 0:
            return lrs
        if self._step_count == 1 and t > 0:  # created with last_epoch > -1: resume
            return self._closed_form()
        if (t - 1 - T) % (2 * T) == 0:  # leaving the minimum: the ratio below would be 0/0
            return [
                lr + (b - eta_min) * (1 - math.cos(math.pi / T)) / 2
                for lr, b in zip(lrs, self.base_lrs)
            ]
        ratio = (1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T))
        return [eta_min + (lr - eta_min) * ratio for lr in lrs]

    def _closed_form(self) -> list[float]:
        c = (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
        return [self.eta_min + (b - self.eta_min) * c for b in self.base_lrs]


class LinearLR(LRScheduler):
    """Scale the learning rate linearly from ``start_factor`` to ``end_factor`` (warmup).

    Closed form ``lr = base_lr * (start_factor + (end_factor - start_factor) *
    min(epoch, total_iters) / total_iters)``; it runs PyTorch's recursive form,
    which multiplies the current lr by the ratio of consecutive factors.

    >>> import gradwell as gw
    >>> opt = gw.optim.SGD([gw.tensor([1.0], requires_grad=True)], lr=1.0)
    >>> sched = gw.optim.lr_scheduler.LinearLR(opt, start_factor=0.25, total_iters=3)
    >>> lrs = []
    >>> for _ in range(5):
    ...     lrs.append(round(sched.get_last_lr()[0], 9))
    ...     sched.step()
    >>> lrs
    [0.25, 0.5, 0.75, 1.0, 1.0]
    """

    def __init__(
        self,
        optimizer: Optimizer,
        start_factor: float = 1.0 / 3,
        end_factor: float = 1.0,
        total_iters: int = 5,
        last_epoch: int = -1,
    ) -> None:
        self.start_factor = _check_float(
            "LinearLR", "start_factor", start_factor, low=0.0, high=1.0, low_open=True
        )
        self.end_factor = _check_float("LinearLR", "end_factor", end_factor, low=0.0, high=1.0)
        self.total_iters = _check_int("LinearLR", "total_iters", total_iters, low=1)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        t, n = self.last_epoch, self.total_iters
        s, e = self.start_factor, self.end_factor
        lrs = [g["lr"] for g in self.optimizer.param_groups]
        if t == 0:
            return [lr * s for lr in lrs]
        if t > n:
            return lrs
        ratio = 1.0 + (e - s) / (n * s + (t - 1) * (e - s))
        return [lr * ratio for lr in lrs]

    def _closed_form(self) -> list[float]:
        s, e, n = self.start_factor, self.end_factor, self.total_iters
        factor = s + (e - s) * min(n, self.last_epoch) / n
        return [b * factor for b in self.base_lrs]


class LambdaLR(LRScheduler):
    """lr = base_lr * lr_lambda(epoch), one function or one per parameter group.

    The functions are not part of :meth:`state_dict` (give them again when resuming).
    """

    def __init__(self, optimizer: Optimizer, lr_lambda: Any, last_epoch: int = -1) -> None:
        n = len(optimizer.param_groups)
        lambdas = list(lr_lambda) if isinstance(lr_lambda, (list, tuple)) else [lr_lambda] * n
        if len(lambdas) != n or not all(callable(f) for f in lambdas):
            raise ValueError(f"LambdaLR: expected a function or {n} functions; got {lr_lambda!r}")
        self.lr_lambdas = lambdas
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return self._closed_form()

    def _closed_form(self) -> list[float]:
        return [b * float(f(self.last_epoch)) for b, f in zip(self.base_lrs, self.lr_lambdas)]

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in super().state_dict().items() if k != "lr_lambdas"}


class MultiStepLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` at each epoch in ``milestones``:
    lr = base_lr * gamma ** (number of milestones <= epoch)."""

    def __init__(
        self,
        optimizer: Optimizer,
        milestones: Sequence[int],
        gamma: float = 0.1,
        last_epoch: int = -1,
    ) -> None:
        self.milestones = sorted(
            _check_int("MultiStepLR", "milestone", m, low=0) for m in milestones
        )
        self.gamma = _check_float("MultiStepLR", "gamma", gamma, low=0.0, low_open=True)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        factor = self.gamma ** self.milestones.count(self.last_epoch)
        return [g["lr"] * factor for g in self.optimizer.param_groups]

    def _closed_form(self) -> list[float]:
        passed = sum(m <= self.last_epoch for m in self.milestones)
        return [b * self.gamma**passed for b in self.base_lrs]


class CosineAnnealingWarmRestarts(LRScheduler):
    """Cosine annealing from base_lr to ``eta_min`` over ``T_0`` epochs, then restart;
    each period ``T_mult`` times the last (SGDR, Loshchilov and Hutter):
    lr = eta_min + (base_lr - eta_min) (1 + cos(pi T_cur / T_i)) / 2."""

    def __init__(
        self,
        optimizer: Optimizer,
        T_0: int,
        T_mult: int = 1,
        eta_min: float = 0.0,
        last_epoch: int = -1,  # noqa: N803
    ) -> None:
        self.T_0 = _check_int("CosineAnnealingWarmRestarts", "T_0", T_0, low=1)
        self.T_mult = _check_int("CosineAnnealingWarmRestarts", "T_mult", T_mult, low=1)
        self.eta_min = float(eta_min)
        super().__init__(optimizer, last_epoch)

    def _position(self) -> tuple[int, int]:
        """(T_cur, T_i) at ``last_epoch``."""
        epoch, period = max(self.last_epoch, 0), self.T_0
        while epoch >= period:
            epoch -= period
            period *= self.T_mult
        return epoch, period

    def get_lr(self) -> list[float]:
        return self._closed_form()

    def _closed_form(self) -> list[float]:
        t_cur, t_i = self._position()
        cos = (1 + math.cos(math.pi * t_cur / t_i)) / 2
        return [self.eta_min + (b - self.eta_min) * cos for b in self.base_lrs]


class OneCycleLR(LRScheduler):
    """The 1cycle policy: warm the lr up to ``max_lr``, then anneal it far below the start.

    Call ``step()`` after every batch. Over ``total_steps`` (or ``epochs *
    steps_per_epoch``) steps, with ``initial_lr = max_lr / div_factor`` and
    ``min_lr = initial_lr / final_div_factor``, the lr goes from ``initial_lr`` to
    ``max_lr`` in the first ``pct_start`` of the steps, then down to ``min_lr``
    (with ``three_phase``: back to ``initial_lr``, then down to ``min_lr``). Each
    phase interpolates by ``anneal_strategy``: ``"cos"`` is ``end + (start - end) *
    (1 + cos(pi * pct)) / 2``, ``"linear"`` is ``start + (end - start) * pct``, with
    ``pct`` the fraction of the phase done. The value is a closed form of the step
    count, as in PyTorch.

    With ``cycle_momentum`` the momentum (SGD, RMSprop) or beta1 (Adam, AdamW)
    moves the other way, between ``max_momentum`` and ``base_momentum``.

    >>> import gradwell as gw
    >>> opt = gw.optim.SGD([gw.tensor([1.0], requires_grad=True)], lr=0.1, momentum=0.9)
    >>> sched = gw.optim.lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=10)
    >>> round(sched.get_last_lr()[0], 9), opt.param_groups[0]["momentum"]  # max_lr / 25
    (0.04, 0.95)
    """

    def __init__(
        self,
        optimizer: Optimizer,
        max_lr: float | Sequence[float],
        total_steps: int | None = None,
        epochs: int | None = None,
        steps_per_epoch: int | None = None,
        pct_start: float = 0.3,
        anneal_strategy: str = "cos",
        cycle_momentum: bool = True,
        base_momentum: float | Sequence[float] = 0.85,
        max_momentum: float | Sequence[float] = 0.95,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
        last_epoch: int = -1,
    ) -> None:
        name = "OneCycleLR"
        _check_optimizer(name, optimizer)
        if total_steps is not None:
            self.total_steps = _check_int(name, "total_steps", total_steps, low=1)
        elif epochs is not None and steps_per_epoch is not None:
            e = _check_int(name, "epochs", epochs, low=1)
            self.total_steps = e * _check_int(name, "steps_per_epoch", steps_per_epoch, low=1)
        else:
            raise ValueError(f"{name}: give total_steps, or both epochs and steps_per_epoch")
        pct_start = _check_float(name, "pct_start", pct_start, low=0.0, high=1.0)
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(
                f"{name}: anneal_strategy must be 'cos' or 'linear'; got {anneal_strategy!r}"
            )
        self.anneal_strategy = anneal_strategy
        div_factor = _check_float(name, "div_factor", div_factor, low=0.0, low_open=True)
        final_div_factor = _check_float(
            name, "final_div_factor", final_div_factor, low=0.0, low_open=True
        )
        self.three_phase = bool(three_phase)
        end_1 = float(pct_start * self.total_steps) - 1
        if self.three_phase:
            ends = [end_1, 2 * end_1, self.total_steps - 1]
            self._phases = [
                (ends[0], "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                (ends[1], "max_lr", "initial_lr", "base_momentum", "max_momentum"),
                (ends[2], "initial_lr", "min_lr", "max_momentum", "max_momentum"),
            ]
        else:
            ends = [end_1, self.total_steps - 1]
            self._phases = [
                (ends[0], "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                (ends[1], "max_lr", "min_lr", "base_momentum", "max_momentum"),
            ]
        if not all(b > a for a, b in zip([0.0, *ends], ends)):
            raise ValueError(
                f"{name}: pct_start={pct_start} with total_steps={self.total_steps} leaves a phase "
                "without steps; each phase needs at least one step (raise total_steps or move "
                "pct_start away from 0 and 1)"
            )
        groups = optimizer.param_groups
        max_lrs = _per_group(name, "max_lr", max_lr, len(groups))
        self.cycle_momentum = bool(cycle_momentum)
        self._use_beta1 = False
        if self.cycle_momentum:
            if "betas" in optimizer.defaults:
                self._use_beta1 = True
            elif "momentum" not in optimizer.defaults:
                raise ValueError(
                    f"{name}: cycle_momentum=True needs an optimizer with momentum or betas; "
                    f"{type(optimizer).__name__} has neither (pass cycle_momentum=False)"
                )
            base_ms = _per_group(name, "base_momentum", base_momentum, len(groups), high=1.0)
            max_ms = _per_group(name, "max_momentum", max_momentum, len(groups), high=1.0)
        if last_epoch == -1:
            for i, group in enumerate(groups):
                group["initial_lr"] = max_lrs[i] / div_factor
                group["max_lr"] = max_lrs[i]
                group["min_lr"] = group["initial_lr"] / final_div_factor
                if self.cycle_momentum:
                    self._set_momentum(group, max_ms[i])
                    group["max_momentum"] = max_ms[i]
                    group["base_momentum"] = base_ms[i]
        super().__init__(optimizer, last_epoch)

    def _set_momentum(self, group: dict[str, Any], value: float) -> None:
        if self._use_beta1:
            group["betas"] = (value, *group["betas"][1:])
        else:
            group["momentum"] = value

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def get_lr(self) -> list[float]:
        t = self.last_epoch
        if t > self.total_steps:
            raise ValueError(
                f"OneCycleLR: stepped {t} times but total_steps is {self.total_steps}; "
                "give total_steps (or epochs and steps_per_epoch) covering the whole run"
            )
        lrs = []
        for group in self.optimizer.param_groups:
            start = 0.0
            for i, (end, lr_a, lr_b, m_a, m_b) in enumerate(self._phases):
                if t <= end or i == len(self._phases) - 1:
                    pct = (t - start) / (end - start)
                    lrs.append(self._anneal(group[lr_a], group[lr_b], pct))
                    if self.cycle_momentum:
                        self._set_momentum(group, self._anneal(group[m_a], group[m_b], pct))
                    break
                start = end
        return lrs

    _closed_form = get_lr


class ReduceLROnPlateau(LRScheduler):
    """Divide the learning rate when a metric has stopped improving.

    ``step(metric)`` after each evaluation. The metric improves when it beats the
    best so far by more than ``threshold`` (``"rel"``: ``metric < best * (1 -
    threshold)`` in ``"min"`` mode, ``metric > best * (1 + threshold)`` in ``"max"``;
    ``"abs"``: ``best -/+ threshold``). After more than ``patience`` epochs
    without improvement each group's lr becomes ``max(lr * factor, min_lr)``
    (changes smaller than 1e-8 are skipped), then ``cooldown`` epochs pass in
    which bad epochs are not counted. Same rules as PyTorch.

    >>> import gradwell as gw
    >>> opt = gw.optim.SGD([gw.tensor([1.0], requires_grad=True)], lr=1.0)
    >>> sched = gw.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=1)
    >>> for loss in [1.0, 1.0, 1.0]:
    ...     sched.step(loss)
    >>> sched.get_last_lr()
    [0.5]
    """

    def __init__(
        self,
        optimizer: Optimizer,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: float | Sequence[float] = 0.0,
        eps: float = 1e-8,
    ) -> None:
        name = "ReduceLROnPlateau"
        _check_optimizer(name, optimizer)
        if mode not in ("min", "max"):
            raise ValueError(f"{name}: mode must be 'min' or 'max'; got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(
                f"{name}: threshold_mode must be 'rel' or 'abs'; got {threshold_mode!r}"
            )
        self.optimizer = optimizer
        self.mode = mode
        self.threshold_mode = threshold_mode
        self.factor = _check_float(
            name, "factor", factor, low=0.0, high=1.0, low_open=True, high_open=True
        )
        self.patience = _check_int(name, "patience", patience, low=0)
        self.threshold = _check_float(name, "threshold", threshold, low=0.0)
        self.cooldown = _check_int(name, "cooldown", cooldown, low=0)
        self.min_lrs = _per_group(
            name, "min_lr", min_lr, len(optimizer.param_groups), low_open=False
        )
        self.eps = _check_float(name, "eps", eps, low=0.0)
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self.last_epoch = 0
        self._last_lr = [float(g["lr"]) for g in optimizer.param_groups]

    def step(self, metrics: Any) -> None:  # type: ignore[override]
        """Record this epoch's metric (a number or one-element tensor) and reduce if stuck."""
        try:
            current = float(metrics)
        except (TypeError, ValueError):
            raise TypeError(
                f"ReduceLROnPlateau.step needs the monitored metric as a number; got {metrics!r}"
            ) from None
        self.last_epoch += 1
        if self._is_better(current):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad epochs in cooldown do not count
        if self.num_bad_epochs > self.patience:
            for group, min_lr in zip(self.optimizer.param_groups, self.min_lrs):
                old = float(group["lr"])
                new = max(old * self.factor, min_lr)
                if old - new > self.eps:
                    group["lr"] = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = [float(g["lr"]) for g in self.optimizer.param_groups]

    def _is_better(self, current: float) -> bool:
        best, th = self.best, self.threshold
        if self.mode == "min":
            return current < (best * (1.0 - th) if self.threshold_mode == "rel" else best - th)
        return current > (best * (1.0 + th) if self.threshold_mode == "rel" else best + th)

    @property
    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0


class SequentialLR(LRScheduler):
    """Run ``schedulers`` one after another, switching at the epochs in ``milestones``.

    Scheduler ``i + 1`` starts (from its own epoch 0, base learning rates and all)
    at epoch ``milestones[i]``. The usual use is a warmup followed by a decay; see
    also :func:`warmup`. Same behaviour as PyTorch's ``SequentialLR``.

    >>> import gradwell as gw
    >>> from gradwell.optim import lr_scheduler as S
    >>> opt = gw.optim.SGD([gw.tensor([1.0], requires_grad=True)], lr=1.0)
    >>> warm = S.LinearLR(opt, start_factor=0.5, total_iters=2)
    >>> decay = S.ExponentialLR(opt, gamma=0.5)
    >>> sched = S.SequentialLR(opt, [warm, decay], milestones=[2])
    >>> lrs = []
    >>> for _ in range(5):
    ...     lrs.append(sched.get_last_lr()[0])
    ...     sched.step()
    >>> lrs
    [0.5, 0.75, 1.0, 0.5, 0.25]
    """

    def __init__(
        self,
        optimizer: Optimizer,
        schedulers: Sequence[LRScheduler],
        milestones: Sequence[int],
        last_epoch: int = -1,
    ) -> None:
        name = "SequentialLR"
        _check_optimizer(name, optimizer)
        schedulers = list(schedulers)
        if not schedulers:
            raise ValueError(f"{name}: needs at least one scheduler")
        for i, s in enumerate(schedulers):
            if not isinstance(s, LRScheduler) or isinstance(s, (ReduceLROnPlateau, SequentialLR)):
                raise TypeError(
                    f"{name}: scheduler {i} must be an epoch-driven schedule (StepLR, LinearLR, "
                    f"...); got {type(s).__name__}"
                )
            if s.optimizer is not optimizer:
                raise ValueError(f"{name}: scheduler {i} belongs to a different optimizer")
        milestones = list(milestones)
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(
                f"{name}: {len(schedulers)} schedulers need {len(schedulers) - 1} milestone(s); "
                f"got {len(milestones)}"
            )
        for m in milestones:
            _check_int(name, "milestones", m, low=1)
        if any(b <= a for a, b in zip(milestones, milestones[1:])):
            raise ValueError(f"{name}: milestones must be increasing; got {milestones}")
        _check_int(name, "last_epoch", last_epoch, low=-1)
        self.optimizer = optimizer
        self._schedulers = schedulers
        self._milestones = milestones
        self.last_epoch = last_epoch + 1
        for group in optimizer.param_groups:  # undo what the schedulers' construction did
            group["lr"] = group["initial_lr"]
        for s in schedulers:
            s.last_epoch -= 1
        schedulers[0]._initial_step()
        self._last_lr = schedulers[0].get_last_lr()

    def step(self) -> None:
        self.last_epoch += 1
        i = bisect_right(self._milestones, self.last_epoch)
        scheduler = self._schedulers[i]
        if i > 0 and self._milestones[i - 1] == self.last_epoch:
            scheduler._restart()
        else:
            scheduler.step()
        self._last_lr = scheduler.get_last_lr()

    def state_dict(self) -> dict[str, Any]:
        return {
            "last_epoch": self.last_epoch,
            "_milestones": list(self._milestones),
            "_last_lr": list(self._last_lr),
            "_schedulers": [s.state_dict() for s in self._schedulers],
        }

    def _prepare_load(self, state_dict: Any) -> Callable[[], None]:
        saved = state_dict.get("_schedulers") if isinstance(state_dict, dict) else None
        if (
            not isinstance(state_dict, dict)
            or set(state_dict) != {"last_epoch", "_milestones", "_last_lr", "_schedulers"}
            or not isinstance(saved, list)
            or len(saved) != len(self._schedulers)
            or not isinstance(state_dict["_milestones"], list)
            or not isinstance(state_dict["_last_lr"], list)
        ):
            raise ValueError(
                "SequentialLR.load_state_dict: the state dict does not belong to a SequentialLR "
                f"of {len(self._schedulers)} schedulers"
            )
        writes = [s._prepare_load(sd) for s, sd in zip(self._schedulers, saved)]

        def write() -> None:
            for w in writes:
                w()
            self.last_epoch = state_dict["last_epoch"]
            self._milestones = list(state_dict["_milestones"])
            self._last_lr = list(state_dict["_last_lr"])

        return write


def warmup(
    optimizer: Optimizer,
    warmup_steps: int,
    after: LRScheduler | None = None,
    start_factor: float = 1.0 / 3,
) -> LRScheduler:
    """Linear warmup over ``warmup_steps`` steps, then the ``after`` schedule.

    The lr climbs from ``start_factor * lr`` to ``lr``
    (``LinearLR(optimizer, start_factor, 1.0, warmup_steps)``); ``after``, if
    given, starts at step ``warmup_steps`` from its own beginning (its epoch 0,
    so e.g. a cosine's ``T_max`` counts from the end of the warmup). This is
    ``SequentialLR(optimizer, [warmup, after], milestones=[warmup_steps])``.

    >>> import gradwell as gw
    >>> from gradwell.optim import lr_scheduler as S
    >>> opt = gw.optim.SGD([gw.tensor([1.0], requires_grad=True)], lr=1.0)
    >>> sched = S.warmup(opt, 2, after=S.CosineAnnealingLR(opt, T_max=2), start_factor=0.5)
    >>> lrs = []
    >>> for _ in range(5):
    ...     lrs.append(round(sched.get_last_lr()[0], 9))
    ...     sched.step()
    >>> lrs
    [0.5, 0.75, 1.0, 0.5, 0.0]
    """
    ramp = LinearLR(optimizer, start_factor, 1.0, warmup_steps)
    if after is None:
        return ramp
    return SequentialLR(optimizer, [ramp, after], milestones=[warmup_steps])


# --- argument checks: messages name the scheduler, the argument and the value ----------------
def _check_optimizer(where: str, optimizer: Any) -> None:
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"{where}: expected a gradwell Optimizer; got {type(optimizer).__name__}")


def _check_int(where: str, key: str, value: Any, low: int) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < low:
        raise ValueError(f"{where}: {key} must be an integer >= {low}; got {value!r}")
    return int(value)


def _check_float(
    where: str,
    key: str,
    value: Any,
    low: float = -math.inf,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (
            value < high if high_open else value <= high
        )
    if not ok:
        lo = f"({low}" if low_open or low == -math.inf else f"[{low}"
        hi = f"{high})" if high_open or high == math.inf else f"{high}]"
        raise ValueError(f"{where}: {key} must be a finite number in {lo}, {hi}; got {value!r}")
    return float(value)


def _per_group(
    where: str,
    key: str,
    value: Any,
    n_groups: int,
    high: float = math.inf,
    low_open: bool = True,
) -> list[float]:
    """One value per parameter group, from a number or a list of ``n_groups`` numbers."""
    values = list(value) if isinstance(value, (list, tuple)) else [value] * n_groups
    if len(values) != n_groups:
        raise ValueError(
            f"{where}: {key} has {len(values)} values but the optimizer has {n_groups} "
            "parameter group(s)"
        )
    return [_check_float(where, key, v, low=0.0, high=high, low_open=low_open) for v in values]
