"""One page's session: its settings, its current run, and the messages both ways.

The page sends commands (validated here, field by field); the session answers with a
``setup`` message when a run starts and a ``frame`` after each epoch. Frames come
from the run's training thread; only the latest one waits to be sent, so a slow
page skips frames rather than falling behind, and pause, step and reset act on the
next epoch boundary.
"""

from __future__ import annotations

import asyncio
import math
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from .build import split
from .config import MAX_CLASSES, Config, first_applicable, preset
from .run import EXTENT, Run

MAX_CUSTOM_POINTS = 2000


class Session:
    """The state of one page (one WebSocket): its settings, its run, its own points, and the
    messages waiting to go out. Commands arrive through :meth:`handle`, one at a time."""

    def __init__(self, send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        self.id = secrets.token_urlsafe(12)
        self.send = send
        self.loop = asyncio.get_running_loop()
        self.config = Config()
        self.run: Run | None = None
        self.custom: dict[str, np.ndarray] | None = None
        self.findings: list[dict[str, Any]] = []
        self._messages: list[dict[str, Any]] = []
        self._frame: dict[str, Any] | None = None
        self._wake = asyncio.Event()
        self._sender = asyncio.ensure_future(self._send_loop())

    # --- messages out ----------------------------------------------------------
    def _offer(self, run: Run, frame: dict[str, Any]) -> None:
        """(On the event loop.) Keep ``frame`` as the one to send next, if ``run`` is current."""
        if run is not self.run:
            return
        if frame.get("type") == "frame":
            self.findings = frame["findings"]
            self._frame = frame
        else:
            self._messages.append(frame)
        self._wake.set()

    def _say(self, message: dict[str, Any]) -> None:
        self._messages.append(message)
        self._wake.set()

    async def _send_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._messages:
                await self.send(self._messages.pop(0))
            if self._frame is not None:
                frame, self._frame = self._frame, None
                await self.send(frame)

    def close(self) -> None:
        if self.run is not None:
            self.run.stop()
        self._sender.cancel()

    # --- runs ------------------------------------------------------------------
    async def start(self, config: Config, play: bool = False) -> None:
        """Build a new run from ``config`` (a bad one raises, changing nothing), and throw the
        current one away."""

        def publish(frame: dict[str, Any]) -> None:
            self.loop.call_soon_threadsafe(self._offer, run, frame)

        run = await asyncio.to_thread(Run, config, publish, self.custom)
        if self.run is not None:
            self.run.stop()
        self.run, self.config, self.findings, self._frame = run, config, [], None
        self._say(await asyncio.to_thread(run.setup))
        frame = await self.locked(lambda: run.frame(play))
        self._offer(run, frame)
        self.play(play)

    async def locked(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` with the current run held (between two epochs), off the event loop."""
        run = self.run
        assert run is not None

        def call() -> Any:
            with run.lock:
                return fn()

        return await asyncio.to_thread(call)

    def play(self, on: bool) -> None:
        """Play or pause; the page learns the state from the message said here (frames made
        before it may still arrive)."""
        run = self.run
        assert run is not None
        on = on and run.error is None
        run.gate.play(on)
        if on:
            run.start()
        self._say({"type": "state", "playing": on})

    # --- messages in -----------------------------------------------------------
    async def handle(self, message: Any) -> None:
        """Act on one message from the page; a bad one is answered with an error."""
        try:
            await self._handle(message)
        except ValueError as e:
            self._say({"type": "error", "message": str(e)})
        except Exception as e:  # a bug: said on the page, and the session goes on
            self._say({"type": "error", "message": f"server error: {type(e).__name__}: {e}"})

    async def _handle(self, m: Any) -> None:
        if not isinstance(m, dict) or not isinstance(m.get("type"), str):
            raise ValueError('message: expected an object with a "type"')
        kind = m["type"]
        run = self.run
        if kind == "config":
            new = Config.from_dict(m.get("config"), base=self.config)
            if new.dataset == "custom" and self.custom is None:
                raise ValueError("dataset 'custom': no points yet; upload a CSV or add points")
            if run is None or self.config.changes_network(new):
                await self.start(new)
            else:
                self.config = new
                run.set_live(new)
                self._say({"type": "config", "config": new.to_dict()})
        elif run is None:
            raise ValueError(f"{kind}: send the settings first")
        elif kind == "play":
            self.play(True)
        elif kind == "pause":
            self.play(False)
        elif kind == "step":
            if run.error is None:
                run.gate.step()
                run.start()
            self._say({"type": "state", "playing": False})
        elif kind == "reset":
            await self.start(self.config)
        elif kind == "regenerate":
            await self.start(self.config.with_(seed=secrets.randbelow(2**31)))
        elif kind == "preset":
            await self.start(preset(_text(m, "name"), self.config), play=True)
        elif kind == "apply_remedy":
            await self.apply_remedy(_text(m, "kind"), m.get("where"))
        elif kind == "set_weight":
            await self.set_weight(m)
        elif kind == "add_point":
            self.add_point(m)
            config = self.config.with_(dataset="custom", custom_task="classification")
            await self.start(config.with_(classes=self._classes()))
        else:
            raise ValueError(f"message: unknown type {kind!r}")

    async def apply_remedy(self, kind: str, where: Any) -> None:
        """Apply the top applicable action of the finding (and of the other findings of
        its kind, which name other places: each Dropout layer has its own), restart."""
        same = [f for f in self.findings if f["kind"] == kind]
        chosen = [f for f in same if f["where"] == where] or same
        if not chosen:
            raise ValueError(f"apply_remedy: no current finding {kind!r}")
        assert self.run is not None
        new, applied, skipped = self.config, [], []
        for finding in [chosen[0], *(f for f in same if f is not chosen[0])]:
            new, action, why = first_applicable(new, finding["actions"], self.run.dropout_layer)
            skipped += why
            if action is not None:
                applied.append(action)
        if not applied:
            self._say({"type": "remedy", "ok": False, "kind": kind, "skipped": skipped})
            return
        old = self.config.to_dict()
        changes = {k: [old[k], v] for k, v in new.to_dict().items() if old[k] != v}
        await self.start(new, play=True)
        self._say({"type": "remedy", "ok": True, "kind": kind, "actions": applied,
                   "changes": changes, "skipped": skipped})  # fmt: skip

    async def set_weight(self, m: dict[str, Any]) -> None:
        run = self.run
        assert run is not None
        layer = _integer(m, "layer", 0, len(run.linears) - 1)
        linear = run.linears[layer]
        value = m.get("value")
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or abs(value) > 1e3
        ):
            raise ValueError(f"set_weight: expected a value in [-1000, 1000]; got {value!r}")
        to = _integer(m, "to", 0, linear.out_features - 1)
        index: tuple[int, ...]
        if m.get("from") is None:
            target, index = linear.bias, (to,)
        else:
            target, index = linear.weight, (to, _integer(m, "from", 0, linear.in_features - 1))
        assert target is not None

        def edit() -> dict[str, Any]:
            target.data[index] = value
            return run.frame(run.gate.playing)

        self._offer(run, await self.locked(edit))

    def add_point(self, m: dict[str, Any]) -> None:
        if self.config.problem != "classification":
            raise ValueError("add_point: points can be added to classification data only")
        x1, x2 = (_coordinate(m, k) for k in ("x1", "x2"))
        label = _integer(m, "label", 0, MAX_CLASSES - 1)
        if self.config.dataset != "custom" or self.custom is None:
            run = self.run
            assert run is not None
            self.custom = {"X": run.data.X, "y": np.asarray(run.data.y), "train": run.data.train}
        c = self.custom
        if len(c["X"]) >= MAX_CUSTOM_POINTS:
            raise ValueError(f"add_point: at most {MAX_CUSTOM_POINTS} points")
        self.custom = {
            "X": np.vstack([c["X"], [[x1, x2]]]).astype(np.float32),
            "y": np.append(c["y"], label).astype(np.int64),
            "train": np.append(c["train"], True),
        }

    def _classes(self) -> int:
        assert self.custom is not None
        return int(max(2, self.custom["y"].max() + 1))

    async def use_points(self, X: np.ndarray, y: np.ndarray, task: str) -> None:
        """Train on uploaded points (split by the current train ratio and seed)."""
        train = split(len(X), self.config.train_ratio, self.config.seed)
        if train.all() and len(X) > 1:
            train[np.flatnonzero(train)[-1]] = False
        self.custom = {"X": X, "y": y, "train": train}
        classes = self._classes() if task == "classification" else 2
        await self.start(self.config.with_(dataset="custom", custom_task=task, classes=classes))


def _text(m: dict[str, Any], key: str) -> str:
    v = m.get(key)
    if not isinstance(v, str) or len(v) > 100:
        raise ValueError(f"{m['type']}: expected {key!r} to be a short string; got {v!r}")
    return v


def _integer(m: dict[str, Any], key: str, lo: int, hi: int) -> int:
    v = m.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ValueError(
            f"{m['type']}: expected {key!r} to be an integer in [{lo}, {hi}]; got {v!r}"
        )
    return v


def _coordinate(m: dict[str, Any], key: str) -> float:
    v = m.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not -EXTENT <= v <= EXTENT:
        raise ValueError(f"{m['type']}: expected {key!r} in [-6, 6]; got {v!r}")
    return float(v)
