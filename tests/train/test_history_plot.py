"""History.plot(): one panel per logged quantity, training and validation curves per epoch."""

import numpy as np
import pytest

import gradwell as gw


def trained(epochs=4):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 2)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    model = gw.nn.Sequential(gw.nn.Linear(2, 8, rng=0), gw.nn.ReLU(), gw.nn.Linear(8, 2, rng=1))
    return gw.fit(model, (X, y), loss="cross_entropy", optimizer="adam", epochs=epochs,
                  validation_split=0.25, metrics=["accuracy"], verbose=0, seed=0)  # fmt: skip


def test_the_curves_are_the_logged_numbers(tmp_path):
    history = trained()
    fig = history.plot()
    axes = fig.get_axes()
    assert [ax.get_title() for ax in axes] == ["loss", "accuracy"]
    for ax, key in zip(axes, ["loss", "accuracy"], strict=True):
        lines = {line.get_label(): line for line in ax.get_lines()}
        assert set(lines) == {key, f"val_{key}"}
        for name, line in lines.items():
            assert line.get_xdata().tolist() == [1, 2, 3, 4]
            np.testing.assert_allclose(line.get_ydata(), history[name])
    fig.savefig(tmp_path / "curves.png")  # no display needed
    assert (tmp_path / "curves.png").stat().st_size > 1000


def test_chosen_panels_and_refusals():
    history = trained(epochs=2)
    assert [ax.get_title() for ax in history.plot(["lr"]).get_axes()] == ["lr"]
    with pytest.raises(ValueError, match="expected keys among"):
        history.plot(["f1"])
    with pytest.raises(ValueError, match="nothing to plot"):
        gw.History().plot()
