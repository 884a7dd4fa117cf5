"""History: what ``fit`` measured, per epoch and per optimizer step."""

from __future__ import annotations

from typing import Any


class History:
    """The record of a ``fit`` run, as in Keras.

    ``epoch`` lists the epochs run (0-based); ``history[key]`` one value per
    epoch for ``"loss"``, ``"val_loss"``, each metric (``"accuracy"``,
    ``"val_accuracy"``, ...), ``"lr"`` (the learning rate of the epoch's last
    step, first parameter group) and ``"time"`` (seconds of the epoch, validation
    included). ``steps["loss"]`` and ``steps["lr"]`` hold one value per optimizer step.

    >>> h = History()
    >>> h.record_epoch(0, {"loss": 0.5, "lr": 0.1})
    >>> h["loss"], h.epoch
    ([0.5], [0])
    """

    def __init__(self) -> None:
        self.epoch: list[int] = []
        self.history: dict[str, list[float]] = {}
        self.steps: dict[str, list[float]] = {"loss": [], "lr": []}
        self.params: dict[str, Any] = {}
        self.findings: list[Any] = []  # the training doctor's findings (gw.doctor.Finding)
        self.doctor: Any = None  # the gw.doctor.Doctor that watched the run, if any

    def record_epoch(self, epoch: int, logs: dict[str, float]) -> None:
        # A key that first appears late (e.g. a metric added by a callback) is padded
        # with NaN so every list stays aligned with ``epoch``.
        n = len(self.epoch)
        self.epoch.append(epoch)
        for key, value in logs.items():
            values = self.history.setdefault(key, [float("nan")] * n)
            values.append(value)
        for values in self.history.values():
            if len(values) == n:
                values.append(float("nan"))

    def __getitem__(self, key: str) -> list[float]:
        return self.history[key]

    def __contains__(self, key: object) -> bool:
        return key in self.history

    def plot(self, keys: Any = None) -> Any:
        """Curves per epoch: one panel for the loss and one per metric, training and
        validation (``val_*``) together. ``keys``: the panels to draw (default: every
        logged quantity but ``lr`` and ``time``). Returns a matplotlib ``Figure``, drawn
        without pyplot (no window, works headless): ``history.plot().savefig("curves.png")``.
        """
        from matplotlib.figure import Figure

        keys = list(keys) if keys is not None else [
            k for k in self.history if not k.startswith("val_") and k not in ("lr", "time")
        ]  # fmt: skip
        unknown = [k for k in keys if k not in self.history and f"val_{k}" not in self.history]
        if unknown or not keys:
            raise ValueError(
                f"History.plot: expected keys among {sorted(self.history)}; got "
                f"{unknown or 'nothing to plot (no epoch was recorded)'}"
            )
        fig = Figure(figsize=(4.0 * len(keys), 3.2), dpi=100, layout="constrained")
        epochs = [e + 1 for e in self.epoch]  # as the progress bar counts them
        for key, ax in zip(keys, fig.subplots(1, len(keys), squeeze=False)[0]):
            for name, style in ((key, "o-"), (f"val_{key}", "s--")):
                if name in self.history:
                    ax.plot(epochs, self.history[name], style, ms=3, label=name)
            ax.set_xlabel("epoch")
            ax.set_title(key)
            ax.legend(fontsize=8)
        return fig

    def __repr__(self) -> str:
        keys = ", ".join(self.history)
        return f"History(epochs={len(self.epoch)}, keys=[{keys}], steps={len(self.steps['loss'])})"
