"""Progress display for ``fit``: a tqdm bar per epoch, or one line per epoch."""

from __future__ import annotations

import math
import os
import sys
import time
from typing import Any, TextIO

from .callbacks import Callback


def format_logs(logs: dict[str, Any]) -> str:
    """``loss: 0.1234 - accuracy: 0.9650 - lr: 0.001`` (time is shown separately)."""
    parts = []
    for key, value in logs.items():
        if key == "time":
            continue
        parts.append(f"{key}: {_fmt(key, value)}")
    return " - ".join(parts)


def _fmt(key: str, value: Any) -> str:
    if not isinstance(value, float) or not math.isfinite(value):
        return str(value)
    return f"{value:.3g}" if key == "lr" else f"{value:.4f}"


class ProgressBar(Callback):
    """What ``fit(verbose=...)`` prints: 1 = a bar per epoch on a terminal and one
    line per epoch otherwise (CI logs); 2 = always one line per epoch.

    The bar shows the running mean loss and the learning rate while the epoch runs,
    then every epoch log (metrics, validation) when it ends.
    """

    order = 200  # last: it shows what the other callbacks put in the logs

    def __init__(self, verbose: int = 1, file: TextIO | None = None) -> None:
        super().__init__()
        self.verbose = verbose
        self.file = file
        self.bar: Any = None

    def _stream(self) -> TextIO:
        return self.file if self.file is not None else sys.stdout

    def _use_bar(self) -> bool:
        stream = self._stream()
        if self.verbose != 1 or not getattr(stream, "isatty", lambda: False)():
            return False
        try:  # a terminal 0 columns wide (mpiexec gives its ranks one) would show no bar
            return os.get_terminal_size(stream.fileno()).columns > 0
        except (OSError, ValueError):  # no file descriptor (a stream that only says tty)
            return True

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        assert self.state is not None
        self._loss_sum = 0.0
        self._count = 0
        self._last_refresh = 0.0
        if self._use_bar():
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=self.state.steps_per_epoch,
                desc=f"Epoch {epoch + 1}/{self.state.epochs}",
                unit="batch",
                file=self._stream(),
                leave=True,
                dynamic_ncols=True,
                bar_format="{desc} {n_fmt}/{total_fmt} |{bar:16}| {elapsed}{postfix}",
            )

    def on_batch_end(self, step: int, logs: dict[str, Any] | None = None) -> None:
        if self.bar is None or logs is None:
            return
        self._loss_sum += logs["loss"] * logs["size"]
        self._count += logs["size"]
        self.bar.update(1)
        now = time.monotonic()
        if now - self._last_refresh >= 0.2:  # formatting the postfix is the costly part
            self._last_refresh = now
            loss = self._loss_sum / self._count
            self.bar.set_postfix_str(f"loss: {loss:.4f} - lr: {logs['lr']:.3g}", refresh=False)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        if self.bar is not None:
            self.bar.set_postfix_str(format_logs(logs), refresh=False)
            self.bar.close()
            self.bar = None
            return
        assert self.state is not None
        seconds = logs.get("time", float("nan"))
        line = f"Epoch {epoch + 1}/{self.state.epochs} - {seconds:.2f}s - {format_logs(logs)}"
        print(line, file=self._stream(), flush=True)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self.bar is not None:  # training stopped inside an epoch
            self.bar.close()
            self.bar = None
