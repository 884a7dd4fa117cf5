"""Callbacks: code that ``fit`` calls at fixed points of training (Keras-style).

Hooks, in the order the loop calls them::

    on_train_begin(logs)
      on_epoch_begin(epoch, logs)
        on_batch_begin(step, logs)      step: batch index within the epoch
        on_after_backward(step, logs)   gradients are ready, before optimizer.step()
        on_batch_end(step, logs)        logs: {"loss", "lr", "size"}
      on_epoch_end(epoch, logs)         logs: {"loss", metrics, "val_...", "lr", "time"}
    on_train_end(logs)

A callback reads the run through ``self.state`` (a :class:`TrainingState`: the
model, optimizer, loaders, history, epoch, step) and the shortcuts ``self.model``
and ``self.optimizer``; it stops training with ``self.state.stop_training = True``
(the loop stops after the current batch). Callbacks run in the order given, stably
sorted by their ``order`` attribute: ones that save (``ModelCheckpoint``) run last so
they see the state after every other callback, e.g. a scheduler step, has happened.
"""

from __future__ import annotations

import csv
import inspect
import io
import math
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..autograd.tensor import Tensor


class TrainingState:
    """What the fit loop shares with callbacks; attributes are updated as training runs.

    ``epoch`` is the current epoch (0-based), ``global_step`` the number of optimizer
    steps taken so far, ``stop_training`` ends training after the current batch.
    During a step ``inputs``, ``targets``, ``outputs`` and ``loss`` hold the batch,
    the model's output and the loss tensor.
    """

    def __init__(self, **fields: Any) -> None:
        self.model: Any = None
        self.optimizer: Any = None
        self.loss_fn: Any = None
        self.train_loader: Any = None
        self.validation_loader: Any = None
        self.callbacks: list[Callback] = []
        self.history: Any = None
        self.epochs = 0
        self.initial_epoch = 0
        self.steps_per_epoch = 0
        self.epoch = 0
        self.global_step = 0
        self.stop_training = False
        self.inputs: Tensor | None = None
        self.targets: Tensor | None = None
        self.outputs: Any = None
        self.loss: Tensor | None = None
        for k, v in fields.items():
            setattr(self, k, v)


class Callback:
    """Base class: override the hooks you need (each does nothing by default).

    >>> import gradwell as gw
    >>> class PrintLoss(gw.callbacks.Callback):
    ...     def on_epoch_end(self, epoch, logs):
    ...         print(epoch, round(logs["loss"], 3))
    """

    #: Callbacks run sorted by ``order`` (stable): lower first. Savers use 100.
    order = 0

    def __init__(self) -> None:
        self.state: TrainingState | None = None

    def set_state(self, state: TrainingState) -> None:
        self.state = state

    @property
    def model(self) -> Any:
        return None if self.state is None else self.state.model

    @property
    def optimizer(self) -> Any:
        return None if self.state is None else self.state.optimizer

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        pass

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        pass

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        pass

    def on_batch_begin(self, step: int, logs: dict[str, Any] | None = None) -> None:
        pass

    def on_after_backward(self, step: int, logs: dict[str, Any] | None = None) -> None:
        pass

    def on_batch_end(self, step: int, logs: dict[str, Any] | None = None) -> None:
        pass


_HOOKS = (
    "on_train_begin",
    "on_train_end",
    "on_epoch_begin",
    "on_epoch_end",
    "on_batch_begin",
    "on_after_backward",
    "on_batch_end",
)


class CallbackList:
    """Dispatches each hook to the callbacks that override it (so unused hooks cost nothing).

    ``hooks[name]`` lists the bound methods to call; the loop tests it for emptiness
    before building per-step logs.
    """

    def __init__(self, callbacks: list[Callback], state: TrainingState) -> None:
        for cb in callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(
                    f"fit: callbacks must be gw.callbacks.Callback instances; got "
                    f"{type(cb).__name__}"
                )
        self.callbacks = sorted(callbacks, key=lambda cb: cb.order)
        for cb in self.callbacks:
            cb.set_state(state)
        self.hooks: dict[str, list[Callable[..., None]]] = {
            name: [
                getattr(cb, name)
                for cb in self.callbacks
                if getattr(type(cb), name) is not getattr(Callback, name)
            ]
            for name in _HOOKS
        }

    def call(self, name: str, *args: Any) -> None:
        for hook in self.hooks[name]:
            hook(*args)


# ----------------------------------------------------------------- monitoring
def _mode_for(monitor: str, mode: str, who: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{who}: expected mode 'auto', 'min' or 'max'; got {mode!r}")
    if mode != "auto":
        return mode
    higher_is_better = ("acc", "accuracy", "r2", "auc")
    return "max" if monitor.split("val_", 1)[-1].endswith(higher_is_better) else "min"


def _monitored(logs: dict[str, Any] | None, monitor: str, who: str) -> float:
    if not logs or monitor not in logs:
        have = ", ".join(sorted(logs or {})) or "nothing"
        hint = (
            " (pass validation= to fit, or monitor the training 'loss')"
            if monitor.startswith("val_")
            else ""
        )
        raise KeyError(f"{who} monitors {monitor!r} but the epoch logs have {have}{hint}")
    return float(logs[monitor])


class _Monitor:
    """Best-so-far tracking shared by EarlyStopping and ModelCheckpoint."""

    def __init__(self, monitor: str, mode: str, min_delta: float, who: str) -> None:
        self.monitor = monitor
        self.mode = _mode_for(monitor, mode, who)
        self.min_delta = abs(float(min_delta))
        self.who = who
        self.reset()

    def reset(self, baseline: float | None = None) -> None:
        worst = math.inf if self.mode == "min" else -math.inf
        self.best = worst if baseline is None else float(baseline)

    def improved(self, value: float) -> bool:
        """Whether ``value`` beats the best by more than ``min_delta`` (NaN never does)."""
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta


def _snapshot(state_dict: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of a state dict (arrays or Tensors), safe from later in-place updates."""
    return {
        k: Tensor(v.data.copy()) if isinstance(v, Tensor) else np.array(v, copy=True)
        for k, v in state_dict.items()
    }


# ----------------------------------------------------------------- callbacks
class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved for ``patience`` epochs.

    An improvement beats the best value so far by more than ``min_delta``;
    ``mode`` is "min", "max" or "auto" (max for accuracy and r2, min otherwise).
    ``baseline``: the value to beat from the start. With ``restore_best_weights``
    the model ends training with the weights (and buffers) of its best epoch.
    ``best``, ``best_epoch`` and ``stopped_epoch`` (None if it never stopped) say what happened.

    >>> import gradwell as gw
    >>> stop = gw.callbacks.EarlyStopping(monitor="val_loss", patience=3,
    ...                                   restore_best_weights=True)
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 0,
        min_delta: float = 0.0,
        mode: str = "auto",
        baseline: float | None = None,
        restore_best_weights: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(patience, int) or patience < 0:
            raise ValueError(f"EarlyStopping: expected patience >= 0 (an int); got {patience!r}")
        self.patience = patience
        self.baseline = baseline
        self.restore_best_weights = restore_best_weights
        self._monitor = _Monitor(monitor, mode, min_delta, "EarlyStopping")
        self.monitor = monitor
        self.on_train_begin()

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        """Forget the previous run (fit may be called again with the same callback)."""
        self._monitor.reset(self.baseline)
        self.wait = 0
        self.best_epoch: int | None = None
        self.stopped_epoch: int | None = None
        self.best_weights: dict[str, Any] | None = None

    @property
    def best(self) -> float:
        return self._monitor.best

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        value = _monitored(logs, self.monitor, "EarlyStopping")
        if self._monitor.improved(value):
            self._monitor.best = value
            self.best_epoch = epoch
            self.wait = 0
            if self.restore_best_weights:
                self.best_weights = _snapshot(self.model.state_dict())
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            assert self.state is not None
            self.state.stop_training = True

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self.restore_best_weights and self.best_weights is not None:
            self.model.load_state_dict(self.best_weights)


class TerminateOnNaN(Callback):
    """Stop training as soon as a batch's loss is NaN or infinite (and warn where).

    ``stopped_step`` is the global step whose loss was not finite (None otherwise).
    """

    def __init__(self) -> None:
        super().__init__()
        self.stopped_step: int | None = None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.stopped_step = None

    def on_batch_end(self, step: int, logs: dict[str, Any] | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            assert self.state is not None
            self.stopped_step = self.state.global_step - 1
            self.state.stop_training = True
            warnings.warn(
                f"TerminateOnNaN: loss is {loss} at epoch {self.state.epoch}, batch {step} "
                f"(global step {self.stopped_step}); training stopped. Try a lower learning "
                "rate, gradient clipping (fit(clip_grad_norm=...)) or scaled features.",
                RuntimeWarning,
                stacklevel=2,
            )


class ModelCheckpoint(Callback):
    """Save a checkpoint (:func:`gradwell.save`) at the end of epochs.

    ``path`` may contain ``{epoch}`` (1-based, the number of epochs completed) and
    any log key, e.g. ``"ckpt-{epoch:02d}-{val_loss:.3f}.safetensors"``. With
    ``save_best_only`` it saves only when ``monitor`` improves (``mode`` as in
    :class:`EarlyStopping`). Each checkpoint holds the model, the optimizer, the
    scheduler driven by a :class:`LearningRateScheduler` callback (if any), the
    training loader's shuffle state and the metadata ``epoch`` (epochs completed:
    pass it to ``fit(initial_epoch=...)`` to resume), ``global_step`` and ``logs``.
    Files are written atomically. ``saved`` lists the paths written.
    """

    order = 100  # after schedulers and other state changes of the same epoch end

    def __init__(
        self,
        path: str | os.PathLike[str],
        monitor: str = "val_loss",
        save_best_only: bool = False,
        mode: str = "auto",
        scaler: Any = None,
        **metadata: Any,
    ) -> None:
        super().__init__()
        self.path = str(path)
        self.monitor = monitor
        self.save_best_only = save_best_only
        self.scaler = scaler
        self.metadata = metadata
        self._monitor = _Monitor(monitor, mode, 0.0, "ModelCheckpoint")
        self.saved: list[Path] = []

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._monitor.reset()

    def _scheduler(self) -> Any:
        assert self.state is not None
        for cb in self.state.callbacks:
            if isinstance(cb, LearningRateScheduler) and cb.scheduler is not None:
                return cb.scheduler
        return None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        from .checkpoint import save

        logs = dict(logs or {})
        if self.save_best_only:
            value = _monitored(logs, self.monitor, "ModelCheckpoint")
            if not self._monitor.improved(value):
                return
            self._monitor.best = value
        assert self.state is not None
        try:
            path = self.path.format(epoch=epoch + 1, **logs)
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(
                f"ModelCheckpoint: cannot fill in the path {self.path!r} from epoch and logs "
                f"{sorted(logs)}: {e!r}"
            ) from e
        saved = save(
            path,
            self.model,
            self.optimizer,
            self._scheduler(),
            self.scaler,
            loader=self.state.train_loader,
            epoch=epoch + 1,
            global_step=self.state.global_step,
            logs=logs,
            **self.metadata,
        )
        self.saved.append(saved)


class LearningRateScheduler(Callback):
    """Drive the learning rate from a schedule during ``fit``.

    ``schedule`` is either

    * a scheduler from ``gw.optim.lr_scheduler``: ``step()`` is called after every
      epoch (``interval="epoch"``) or every optimizer step (``interval="step"``);
      ``ReduceLROnPlateau`` is stepped after each epoch with ``logs[monitor]``;
    * a function of the epoch (``interval="epoch"``, set before each epoch) or of the
      global step (``interval="step"``, set before each step) returning the learning
      rate; a function of two arguments also receives the current learning rate.
      It sets the rate of every parameter group.

    >>> import gradwell as gw
    >>> halve_every_10 = gw.callbacks.LearningRateScheduler(
    ...     lambda epoch: 0.1 * 0.5 ** (epoch // 10))
    """

    def __init__(
        self,
        schedule: Any,
        interval: str = "epoch",
        monitor: str = "val_loss",
    ) -> None:
        super().__init__()
        if interval not in ("epoch", "step"):
            raise ValueError(
                f"LearningRateScheduler: expected interval 'epoch' or 'step'; got {interval!r}"
            )
        self.interval = interval
        self.monitor = monitor
        self.scheduler: Any = None
        self.function: Callable[..., float] | None = None
        self._plateau = False
        if hasattr(schedule, "step") and hasattr(schedule, "state_dict"):
            self.scheduler = schedule
            self._plateau = _is_plateau(schedule)
            if self._plateau and interval != "epoch":
                raise ValueError(
                    "LearningRateScheduler: ReduceLROnPlateau reacts to an epoch metric; use "
                    "interval='epoch'"
                )
        elif callable(schedule):
            self.function = schedule
            self._with_lr = _positional_arity(schedule) >= 2
        else:
            raise TypeError(
                "LearningRateScheduler: expected a gw.optim.lr_scheduler scheduler or a function "
                f"of the epoch; got {type(schedule).__name__}"
            )

    def _set(self, t: int) -> None:
        assert self.function is not None
        groups = self.optimizer.param_groups
        lr = self.function(t, groups[0]["lr"]) if self._with_lr else self.function(t)
        if not isinstance(lr, (int, float, np.floating, np.integer)) or not math.isfinite(lr):
            raise ValueError(
                f"LearningRateScheduler: the schedule returned {lr!r} for "
                f"{self.interval} {t}; expected a finite number"
            )
        for group in groups:
            group["lr"] = float(lr)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.function is not None and self.interval == "epoch":
            self._set(epoch)

    def on_batch_begin(self, step: int, logs: dict[str, Any] | None = None) -> None:
        if self.function is not None and self.interval == "step":
            assert self.state is not None
            self._set(self.state.global_step)

    def on_batch_end(self, step: int, logs: dict[str, Any] | None = None) -> None:
        if self.scheduler is not None and self.interval == "step":
            self.scheduler.step()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.scheduler is None or self.interval != "epoch":
            return
        if self._plateau:
            self.scheduler.step(_monitored(logs, self.monitor, "LearningRateScheduler"))
        else:
            self.scheduler.step()


def _is_plateau(scheduler: Any) -> bool:
    try:
        from ..optim.lr_scheduler import ReduceLROnPlateau
    except ImportError:  # pragma: no cover - optim is part of the package
        return False
    return isinstance(scheduler, ReduceLROnPlateau)


def _positional_arity(fn: Callable[..., Any]) -> int:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 1
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return 2
    return sum(p.kind in kinds for p in params)


class CSVLogger(Callback):
    """Append one row per epoch (``epoch`` then the epoch logs) to a CSV file.

    The columns are fixed by the first row written (or by the existing header with
    ``append=True``); a later missing value is left empty. Each row is written and
    flushed in one piece, so the file never ends in a half line.
    """

    order = 100

    def __init__(self, path: str | os.PathLike[str], separator: str = ",", append: bool = False):
        super().__init__()
        self.path = Path(path)
        self.separator = separator
        self.append = append
        self.keys: list[str] | None = None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.keys = None
        if self.append and self.path.is_file() and self.path.stat().st_size > 0:
            with open(self.path, newline="") as f:
                header = next(csv.reader(f, delimiter=self.separator), None)
            self.keys = header
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text("")

    def _line(self, values: list[Any]) -> str:
        buf = io.StringIO()
        csv.writer(buf, delimiter=self.separator, lineterminator="\n").writerow(values)
        return buf.getvalue()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        row = {"epoch": epoch, **(logs or {})}
        text = ""
        if self.keys is None:
            self.keys = list(row)
            text += self._line(self.keys)
        text += self._line([_csv_value(row.get(k, "")) for k in self.keys])
        with open(self.path, "a", newline="") as f:
            f.write(text)
            f.flush()


def _csv_value(value: Any) -> Any:
    if isinstance(value, float):
        return repr(value)  # shortest text that reads back as the same float
    return value


__all__ = [
    "CSVLogger",
    "Callback",
    "CallbackList",
    "EarlyStopping",
    "LearningRateScheduler",
    "ModelCheckpoint",
    "TerminateOnNaN",
    "TrainingState",
]
