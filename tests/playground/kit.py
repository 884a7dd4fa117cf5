"""Helpers for the playground tests: a run trained for a while, its serious findings."""

import time

import pytest

from gradwell.playground.run import Run


def train(config, epochs, stop_on=(), timeout=30.0):
    """Train ``config`` until ``epochs`` (or a serious finding of a kind in ``stop_on``);
    return the run and its frames, the first one taken before training."""
    frames = []
    run = Run(config, frames.append)
    frames.append(run.frame(False))
    run.gate.play(True)
    run.start()
    started = time.monotonic()
    while time.monotonic() - started < timeout and run.gate.playing:
        last = frames[-1] if frames else None
        if last is not None and last["type"] != "frame":
            pytest.fail(f"the run stopped: {last}")
        if last is not None and (
            last["epoch"] >= epochs
            or any(f["kind"] in stop_on and f["severity"] != "info" for f in last["findings"])
        ):
            break
        time.sleep(0.005)
    run.gate.play(False)
    run.stop()
    run.thread.join(timeout=10)
    assert frames and frames[-1]["type"] == "frame", frames[-1:]
    return run, frames


def serious(frame, kinds=None):
    return [
        f
        for f in frame["findings"]
        if f["severity"] != "info" and (kinds is None or f["kind"] in kinds)
    ]
