"""A playground run: gw.fit with the doctor on a thread, frames, presets and their cures."""

import base64
import subprocess
import sys
import time

import numpy as np
import pytest
from playground.kit import serious, train

from gradwell.playground.backprop import explain_page
from gradwell.playground.config import PRESETS, Config, first_applicable, preset
from gradwell.playground.export import python_script
from gradwell.playground.run import GRID, Run


def test_a_frame_holds_the_pictures_and_the_numbers():
    run = Run(Config.from_dict({"dataset": "gauss", "classes": 3, "layers": [5]}), lambda f: None)
    frame = run.frame(False)
    assert frame["epoch"] == 0 and frame["train_loss"] > 0 and 0 <= frame["train_accuracy"] <= 1
    assert len(base64.b64decode(frame["output"])) == GRID * GRID
    classes = np.frombuffer(base64.b64decode(frame["output_class"]), np.uint8)
    assert classes.size == GRID * GRID and classes.max() <= 2
    assert len(base64.b64decode(frame["neurons"][0])) == 5 * GRID * GRID
    assert [np.shape(link["w"]) for link in frame["links"]] == [(5, 2), (3, 5)]
    setup = run.setup()
    assert setup["classes"] == 3 and sorted(set(setup["labels"])) == [0, 1, 2]
    assert len(setup["points"]) == len(setup["train"]) == 500 and sum(setup["train"]) == 250


def test_step_runs_exactly_one_epoch_and_the_learning_rate_changes_live():
    frames = []
    run = Run(Config(), frames.append)
    run.start()
    for expected in (1, 2):
        run.gate.step()
        deadline = time.monotonic() + 30
        while len(frames) < expected and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.1)  # a second epoch would have had time to run
        assert [f["epoch"] for f in frames] == list(range(1, expected + 1))
    run.set_live(run.config.with_(lr=0.3))
    run.gate.step()
    while len(frames) < 3:
        time.sleep(0.005)
    assert run.optimizer.param_groups[0]["lr"] == 0.3
    run.stop()
    run.thread.join(timeout=10)
    assert not run.thread.is_alive()


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_each_preset_is_diagnosed_and_its_remedy_repairs_the_run(name, seed):
    kinds = PRESETS[name][1]
    config = preset(name, Config(seed=seed))
    run, frames = train(config, 30, stop_on=kinds)
    found = serious(frames[-1], kinds)
    assert found, (
        f"{name}: expected one of {kinds}; got {[f['kind'] for f in frames[-1]['findings']]}"
    )
    for f in found:  # what the page's button does: the top applicable action of each
        config, action, _ = first_applicable(config, f["actions"], run.dropout_layer)
    assert config != preset(name, Config(seed=seed))
    _, after = train(config, 15)
    assert not serious(after[-1], kinds), after[-1]["findings"]
    assert after[-1]["train_loss"] < 0.7 * after[0]["train_loss"]


def test_the_network_marks_dead_units_and_vanishing_layers():
    _, frames = train(preset("dead-relu", Config()), 30, stop_on=("dead_relu",))
    assert any(u["dead"] for u in frames[-1]["units"])
    _, frames = train(preset("vanishing", Config()), 3)
    assert frames[-1]["grad_marks"][0] == "vanishing" and frames[-1]["grad_marks"][-1] == ""


def test_dropped_units_of_the_current_batch_are_shown():
    _, frames = train(Config(layers=(8,), dropout=(0.5,)), 2)
    dropped = frames[-1]["dropped"]["0"]
    assert 0 < len(dropped) < 8 and all(0 <= j < 8 for j in dropped)


def test_the_exported_script_reproduces_the_run(tmp_path):
    config = Config.from_dict(
        {
            "dataset": "xor",
            "layers": [5, 3],
            "activation": "relu",
            "optimizer": "adam",
            "lr": 0.01,
            "features": ["x1", "x2", "x1x2"],
            "regularization": "l1",
            "reg_rate": 0.001,
            "dropout": [0.1, 0.0],
            "scaling": "scaled",
            "batchnorm": True,
            "clip": 1.0,
        }
    )
    _, frames = train(config, 4)
    epochs = frames[-1]["epoch"]
    path = tmp_path / "run.py"
    path.write_text(python_script(config, epochs, None))
    out = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    line = next(x for x in out.stdout.splitlines() if x.startswith("train loss"))
    loss = float(line.split()[2].rstrip(","))
    assert loss == pytest.approx(frames[-1]["train_loss"], rel=1e-3)


def test_explain_opens_on_the_nearest_point_at_the_current_weights():
    run, frames = train(Config(layers=(3,), dropout=(0.2,), batchnorm=True), 2)
    weights = run.model[0].weight.data.copy()
    page = explain_page(run, 2.0, -1.0)
    assert "update: w ← w − α·∂E/∂w" in page and f"epoch {run.epoch}:" in page
    nearest = np.argmin(np.hypot(run.data.X[:, 0] - 2.0, run.data.X[:, 1] + 1.0))
    assert f"({run.data.X[nearest, 0]:.4g}, {run.data.X[nearest, 1]:.4g})" in page
    assert np.array_equal(run.model[0].weight.data, weights)  # the run's model is untouched
    assert run.model.training and run.model[0].weight.grad is not None


def test_a_run_held_by_its_page_leaves_another_pages_run_training():
    """Each run has its own lock (an epoch, a frame, an edit or an explain page holds it):
    grad mode is per thread, so runs of different pages need not take turns."""
    held = Run(Config(seed=0), lambda f: None)
    held.hold()  # as an edit or an explain page computing on it would
    try:
        _, frames = train(Config(seed=1), 3, timeout=20)
    finally:
        held.release()
    assert frames[-1]["epoch"] >= 3 and np.isfinite(frames[-1]["train_loss"])
