"""One training run of the playground: its data, its network, and ``gw.fit`` on a thread.

A run is built from a :class:`~gradwell.playground.config.Config` from scratch; a
change that needs a new network makes a new run. Training is ``gw.fit`` with the
doctor, in a thread of its own: a callback waits between epochs for its turn
(play, or one step), lets a frame be taken after each epoch, and stops when the run
is thrown away. Everything the page draws comes from :meth:`Run.frame`.
"""

from __future__ import annotations

import base64
import functools
import math
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import nn
from ..autograd import no_grad
from ..doctor import Doctor, Thresholds
from ..train import fit
from ..train.callbacks import Callback
from .build import (
    ACTIVATIONS,
    FEATURE_FUNCTIONS,
    Regularized,
    build_model,
    build_optimizer,
    make_data,
)
from .config import Config

GRID = 50  # cells per side of the heatmaps over [-6, 6]^2
EXTENT = 6.0
MAX_FPS = 60.0


# ---------------------------------------------------------------------------- pictures
def grid_points() -> np.ndarray:
    """Cell centres of the heatmap, row by row from the top (x2 = +6) down."""
    c = -EXTENT + (np.arange(GRID) + 0.5) * (2 * EXTENT / GRID)
    x1, x2 = np.meshgrid(c, c[::-1])
    return np.column_stack([x1.ravel(), x2.ravel()]).astype(np.float32)


def encode(values: np.ndarray) -> str:
    """Values in [-1, 1] (NaN shown as 0) as base64 bytes 0..255 (127.5 is zero)."""
    v = np.nan_to_num(np.clip(values, -1.0, 1.0), nan=0.0)
    return base64.b64encode(np.round((v + 1.0) * 127.5).astype(np.uint8).tobytes()).decode()


class Gate:
    """When the training thread may run its next epoch: while playing, or once per step."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.playing = False
        self.cancelled = False
        self._steps = 0

    def play(self, on: bool) -> None:
        with self._cond:
            self.playing = on
            self._cond.notify_all()

    def step(self) -> None:
        with self._cond:
            self.playing = False
            self._steps += 1
            self._cond.notify_all()

    def cancel(self) -> None:
        with self._cond:
            self.cancelled = True
            self._cond.notify_all()

    def wait_turn(self) -> bool:
        """Block until the next epoch may run; False once the run is cancelled."""
        with self._cond:
            while not (self.cancelled or self.playing or self._steps):
                self._cond.wait()
            if self.cancelled:
                return False
            if not self.playing:
                self._steps -= 1
            return True


# ------------------------------------------------------------------------------- run
class Run:
    """The data, network, optimizer and doctor of one configuration, and its training."""

    def __init__(
        self,
        config: Config,
        publish: Callable[[dict[str, Any]], None],
        custom: dict[str, np.ndarray] | None = None,
    ) -> None:
        self.config = config
        self.publish = publish
        self.data = data = make_data(config, custom)
        self.grid_F = data.inputs(grid_points())
        self.k = config.n_classes
        n_out = 1 if config.problem == "regression" else self.k
        self.model = build_model(config, data.F.shape[1], n_out)
        self.optimizer = build_optimizer(config, self.model)
        self.base_loss = nn.CrossEntropyLoss() if config.loss == "cross_entropy" else nn.MSELoss()
        self.linears = [m for m in self.model if isinstance(m, nn.Linear)]
        weights = [m.weight for m in self.linears]
        self.loss = Regularized(self.base_loss, weights, config.regularization, config.reg_rate)
        self.thresholds = Thresholds()
        self.doctor = Doctor(feature_names=list(config.features), verbose=False)
        self.dropout_layer = {}  # Dropout module path -> hidden layer number
        self.hidden_activations = []  # positions of the hidden layers' activations
        layer = -1
        for i, m in enumerate(self.model):
            if isinstance(m, nn.Linear):
                layer += 1
            elif isinstance(m, nn.Dropout):
                self.dropout_layer[str(i)] = layer
                m.register_forward_hook(functools.partial(self._dropout_hook, layer))
            elif type(m) in ACTIVATIONS.values():
                self.hidden_activations.append(i)
        self.dropped: dict[int, list[int]] = {}
        self.gate = Gate()
        # Held by whoever computes with this run's model: an epoch, a frame, an edit, an
        # explain page. Runs of different pages train side by side (grad mode is per thread).
        self.lock = threading.Lock()
        self.holding = False  # whether this run's training thread holds the lock
        self.epoch = 0
        self.pending_lr: float | None = None
        self.before_step: list[np.ndarray] | None = None
        self.norm_reference: float | None = None
        self.thread: threading.Thread | None = None
        self.last_frame_time = 0.0
        self.error: str | None = None

    # --- training --------------------------------------------------------------
    def start(self) -> None:
        if self.thread is None:
            self.thread = threading.Thread(target=self._train, name="playground-run", daemon=True)
            self.thread.start()

    def stop(self) -> None:
        self.gate.cancel()

    def _train(self) -> None:
        test = ~self.data.train
        try:
            # a run broken on purpose overflows: the page shows the NaN, the console stays quiet
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                self._fit(test)
        except Cancelled:
            pass
        except Exception as e:  # shown on the page; the server goes on
            self.release()
            self.error = f"training stopped: {type(e).__name__}: {e}"
            self.gate.play(False)
            self.publish({"type": "error", "message": self.error})

    def _fit(self, test: np.ndarray) -> None:
        data = self.data
        fit(
            self.model,
            (data.F[data.train], data.targets[data.train]),
            loss=self.loss,
            optimizer=self.optimizer,
            epochs=10**9,
            batch_size=self.config.batch_size,
            validation=(data.F[test], data.targets[test]) if test.any() else None,
            seed=self.config.seed,
            verbose=0,
            clip_grad_norm=self.config.clip or None,
            doctor=self.doctor,
            callbacks=[_Watch(self)],
        )

    def hold(self) -> None:
        """The training thread takes the run for one epoch (edits wait meanwhile)."""
        self.lock.acquire()
        self.holding = True

    def release(self) -> None:
        if self.holding:
            self.holding = False
            self.lock.release()

    def set_live(self, config: Config) -> None:
        """Apply the settings that change no network: learning rate, regularization."""
        self.config = config
        self.pending_lr = config.lr
        self.loss.kind, self.loss.rate = config.regularization, config.reg_rate

    def _dropout_hook(self, layer: int, module: Any, inputs: Any, output: Any) -> None:
        """Which units the layer's Dropout zeroed for the batch's first example."""
        if module.training:
            x, out = inputs[0].data, output.data
            self.dropped[layer] = np.flatnonzero((out[0] == 0) & (x[0] != 0)).tolist()

    def copy_of_model(self) -> nn.Sequential:
        """A new model with this run's current weights and statistics (and no hooks)."""
        model = build_model(self.config, self.data.F.shape[1], self.linears[-1].out_features)
        model.load_state_dict(self.model.state_dict())
        return model

    # --- the picture -----------------------------------------------------------
    def setup(self) -> dict[str, Any]:
        """What stays fixed during the run: the points, the features' thumbnails, the shape."""
        grid = grid_points()
        thumbs = {}  # every feature's value over the plane (scaled to [-1, 1]), for its tile
        for name, fn in FEATURE_FUNCTIONS.items():
            col = fn(grid[:, 0], grid[:, 1])
            thumbs[name] = encode(col / (float(np.max(np.abs(col))) or 1.0))
        return {
            "type": "setup",
            "config": self.config.to_dict(),
            "problem": self.config.problem,
            "classes": self.k,
            "grid": GRID,
            "points": np.round(self.data.X, 3).tolist(),
            "labels": np.asarray(self.data.y).tolist(),
            "train": self.data.train.astype(int).tolist(),
            "features": list(self.config.features),
            "feature_thumbs": thumbs,
            "feature_range": [
                [float(self.data.F[:, j].min()), float(self.data.F[:, j].max())]
                for j in range(self.data.F.shape[1])
            ],
            "grid_size": len(grid),
            "layers": list(self.config.layers),
        }

    def frame(self, playing: bool) -> dict[str, Any]:
        """The network's state now: heatmaps, losses, weights, gradients, health."""
        model = self.model
        was_training = model.training
        model.eval()
        try:
            with no_grad():
                grid_acts, grid_out = self._forward(self.grid_F)
                data_acts, data_out = self._forward(self.data.F)
                losses: dict[str, float | None] = {}
                for part, mask in (("train", self.data.train), ("test", ~self.data.train)):
                    if mask.any():
                        out = self.base_loss(data_out[mask], self.data.targets[mask])
                        losses[part] = float(out.item())
                    else:
                        losses[part] = None
        finally:
            model.train(was_training)
        frame: dict[str, Any] = {
            "type": "frame",
            "epoch": self.epoch,
            "playing": playing,
            "train_loss": _finite(losses["train"]),
            "test_loss": _finite(losses["test"]),
            "neurons": [encode(a.T) for a in grid_acts],
        }
        frame.update(self._output(grid_out.data, data_out.data))
        frame.update(self._network())
        frame["units"] = self._units(data_acts)
        frame["dropped"] = {str(k): v for k, v in self.dropped.items()}
        frame["findings"] = [f.to_dict() for f in self.doctor.findings]
        return frame

    def _forward(self, F: np.ndarray) -> tuple[list[np.ndarray], Any]:
        from ..autograd.creation import tensor

        h: Any = tensor(F)
        acts = []
        for i, m in enumerate(self.model):
            h = m(h)
            if i in self.hidden_activations:
                acts.append(h.data)
        return acts, h

    def _output(self, grid: np.ndarray, data: np.ndarray) -> dict[str, Any]:
        c = self.config
        if c.problem == "regression":
            return {"output": encode(grid[:, 0])}
        if c.loss == "cross_entropy":
            grid_p = _softmax(grid)
            data_p = _softmax(data)
        else:
            grid_p, data_p = grid, data
        out: dict[str, Any] = {}
        if self.k == 2:
            value = grid_p[:, 1] - grid_p[:, 0]  # 2 p1 - 1 for probabilities
            out["output"] = encode(value)
        else:
            out["output_class"] = base64.b64encode(
                np.argmax(grid_p, axis=1).astype(np.uint8).tobytes()
            ).decode()
            out["output"] = encode(2 * np.clip(grid_p.max(axis=1), 0, 1) - 1)
        predicted = np.argmax(data_p, axis=1)
        y = np.asarray(self.data.y)
        for part, mask in (("train", self.data.train), ("test", ~self.data.train)):
            acc = float(np.mean(predicted[mask] == y[mask])) if mask.any() else None
            out[f"{part}_accuracy"] = acc
        return out

    def _network(self) -> dict[str, Any]:
        links, norms = [], []
        before = self.before_step
        for i, m in enumerate(self.linears):
            w = m.weight.data
            g = m.weight.grad.data if m.weight.grad is not None else None
            bias = m.bias
            assert bias is not None
            entry = {
                "w": _rounded(w),
                "b": _rounded(bias.data),
                "grad": _rounded(g) if g is not None else None,
                "bgrad": _rounded(bias.grad.data) if bias.grad is not None else None,
                "update": None,
            }
            if before is not None and i < len(before):
                old = before[i]
                with np.errstate(divide="ignore", invalid="ignore"):
                    ratio = np.abs(w - old) / np.maximum(np.abs(old), 1e-12)
                entry["update"] = _rounded(np.minimum(ratio, 1e6))
            links.append(entry)
            norms.append(
                float(np.sqrt(np.sum(np.square(g, dtype=np.float64)))) if g is not None else None
            )
        shown = [n if n is not None and math.isfinite(n) else None for n in norms]
        return {"links": links, "grad_norms": shown, "grad_marks": self._marks(norms)}

    def _marks(self, norms: list[float | None]) -> list[str]:
        """Per layer: "vanishing", "exploding" or "" at the doctor's own thresholds: a layer's
        gradient below ``vanishing_ratio`` of the strongest later layer's; the total norm
        ``explode_growth`` times its size at the first measured epoch."""
        t = self.thresholds
        finite = [n for n in norms if n is not None and math.isfinite(n)]
        marks = ["" for _ in norms]
        if len(finite) != len(norms) and any(n is not None for n in norms):
            return ["exploding" if n is None or not math.isfinite(n) else "" for n in norms]
        if not finite:
            return marks
        total = math.sqrt(sum(n * n for n in finite))
        if self.norm_reference is None and total > 0:
            self.norm_reference = total
        exploding = (
            self.norm_reference is not None and total >= t.explode_growth * self.norm_reference
        )
        for i, n in enumerate(norms):
            later = [x for x in norms[i + 1 : -1] if x is not None] if i < len(norms) - 1 else []
            strongest = max(later, default=0.0)
            if strongest > 0 and n is not None and n < t.vanishing_ratio * strongest:
                marks[i] = "vanishing"
            elif exploding:
                marks[i] = "exploding"
        return marks

    def _units(self, acts: list[np.ndarray]) -> list[dict[str, list[int]]]:
        t, kind = self.thresholds, self.config.activation
        result = []
        for a in acts:
            dead = np.flatnonzero(np.all(a <= 0, axis=0)) if kind == "relu" else np.array([], int)
            if kind == "tanh":
                sat = np.abs(a) > t.tanh_limit
            elif kind == "sigmoid":
                sat = (a < t.sigmoid_margin) | (a > 1 - t.sigmoid_margin)
            else:
                sat = np.zeros_like(a, dtype=bool)
            pinned = np.flatnonzero(sat.mean(axis=0) >= t.pinned_unit)
            result.append({"dead": dead.tolist(), "saturated": pinned.tolist()})
        return result


class Cancelled(Exception):
    """The run was thrown away while its thread waited for its next epoch."""


class _Watch(Callback):
    """The run's hooks in ``gw.fit``: wait for a turn, apply live settings, take frames."""

    def __init__(self, run: Run) -> None:
        super().__init__()
        self.run = run
        self.last_step = 0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        run = self.run
        assert self.state is not None
        if not run.gate.wait_turn():
            raise Cancelled  # out of fit at once: not one more step of a discarded run
        run.hold()
        self.last_step = (self.state.steps_per_epoch or 1) - 1

    def on_batch_begin(self, step: int, logs: dict[str, Any] | None = None) -> None:
        lr = self.run.pending_lr
        if lr is not None:
            for group in self.run.optimizer.param_groups:
                group["lr"] = lr
            self.run.pending_lr = None

    def on_after_backward(self, step: int, logs: dict[str, Any] | None = None) -> None:
        if step == self.last_step:  # the update ratios are those of the epoch's last step
            self.run.before_step = [m.weight.data.copy() for m in self.run.linears]

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        run = self.run
        try:
            run.epoch = epoch + 1
            frame = run.frame(run.gate.playing)
            if frame["train_loss"] is None:  # NaN or inf: nothing more to learn
                run.gate.play(False)
                frame["playing"] = False
                frame["stopped"] = "the loss is not finite: training paused"
        finally:
            run.release()
        run.publish(frame)
        wait = 1.0 / MAX_FPS - (time.perf_counter() - run.last_frame_time)
        if wait > 0 and run.gate.playing:
            time.sleep(wait)
        run.last_frame_time = time.perf_counter()


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _finite(v: float | None) -> float | None:
    return v if v is not None and math.isfinite(v) else None


def _rounded(a: np.ndarray) -> list[Any]:
    """A float array as nested lists of 4 significant digits (NaN and inf as None)."""
    out = np.asarray(a, dtype=np.float64)
    rounded = [float(f"{v:.4g}") if math.isfinite(v) else None for v in out.ravel().tolist()]
    if out.ndim == 2:
        cols = out.shape[1]
        return [rounded[r * cols : (r + 1) * cols] for r in range(out.shape[0])]
    return rounded
