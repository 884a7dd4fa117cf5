"""gw.lr_find: the exponential sweep, the suggestion, the onsets, and the restore."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from doctor.kit import dataset, mlp

import gradwell as gw
from gradwell.doctor.lr_find import falling_stretch


def _sweep(model, opt, X, y, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the sweep ends in overflow on purpose
        return gw.lr_find(model, (X, y), gw.nn.CrossEntropyLoss(), opt, **kw)


@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
def test_model_and_optimizer_are_restored_exactly(opt_name):
    X, y, C = dataset("blobs", 0)
    model = mlp(X.shape[1], [16, 16], C, seed=0, batchnorm=True, dropout=0.1)
    cls = gw.optim.SGD if opt_name == "sgd" else gw.optim.Adam
    opt = cls(model.parameters(), lr=0.01)
    # one real step first, so the optimizer has state (Adam moments) to restore
    loss = gw.nn.CrossEntropyLoss()(model(gw.tensor(X[:32])), y[:32])
    loss.backward()
    opt.step()
    model.eval()
    before_model = {k: v.copy() for k, v in model.state_dict().items()}
    before_opt = opt.state_dict()
    _sweep(model, opt, X, y, num_steps=40)
    after_model = model.state_dict()
    assert before_model.keys() == after_model.keys()
    for k in before_model:
        assert np.array_equal(before_model[k], after_model[k]), k
    after_opt = opt.state_dict()
    assert after_opt["param_groups"] == before_opt["param_groups"]
    for i, state in before_opt["state"].items():
        for k, v in state.items():
            assert np.array_equal(np.asarray(after_opt["state"][i][k]), np.asarray(v))
    assert not model.training  # the mode is restored too
    assert all(p.grad is None for p in model.parameters())
    assert all(not m._forward_hooks for m in model.modules())


def test_learning_rates_rise_exponentially_and_the_sweep_stops_at_divergence():
    X, y, C = dataset("blobs", 0)
    model = mlp(X.shape[1], [16, 16], C, seed=0)
    opt = gw.optim.SGD(model.parameters(), lr=0.1)
    r = _sweep(model, opt, X, y, start_lr=1e-4, end_lr=100.0, num_steps=60)
    n = 60
    expected = [1e-4 * (1e6) ** (i / (n - 1)) for i in range(len(r.lrs))]
    assert r.lrs == pytest.approx(expected, rel=1e-9)
    assert len(r.lrs) < n  # stopped: SGD at lr 100 diverges
    assert r.explosion_lr is not None or r.nan_lr is not None
    stop = r.explosion_lr or r.nan_lr
    assert stop == r.lrs[-1]
    # the smoothed loss is the bias-corrected moving average of the raw losses (beta 0.9)
    avg = 0.0
    for i, value in enumerate(r.losses[: len(r.smoothed)]):
        avg = 0.9 * avg + 0.1 * value
        assert r.smoothed[i] == pytest.approx(avg / (1 - 0.9 ** (i + 1)))
    # the suggestion lies where the loss still falls, well before the blow-up
    assert 1e-4 < r.suggested_lr < stop
    assert r.suggested_lr <= r.min_loss_lr


#: (data set, hidden widths, optimizer): the issue's failing case first (z-scored breast
#: cancer with SGD once suggested 6.4e-7 while its loss fell only between 1e-2 and 1).
SWEEPS = [("breast_cancer", [], "sgd"), ("circle", [16, 16], "sgd"), ("blobs", [16], "adam")]


@pytest.mark.parametrize(("name", "widths", "opt_name"), SWEEPS)
def test_the_suggestion_lies_where_the_loss_falls_and_is_stable_over_20_seeds(
    name, widths, opt_name
):
    X, y, C = dataset(name, 0, n=256)  # breast cancer: all 569 tumours
    suggestions = []
    for seed in range(20):
        model = mlp(X.shape[1], widths, C, seed=seed)
        cls = gw.optim.SGD if opt_name == "sgd" else gw.optim.Adam
        r = _sweep(model, cls(model.parameters(), lr=0.1), X, y, seed=seed)  # 100 steps
        stretch = falling_stretch(r.smoothed)
        assert stretch is not None and r.suggested_lr is not None, seed
        start, k, end = stretch
        sm = np.asarray(r.smoothed)
        base = float(np.median(sm[: max(3, sm.size // 10)]))
        assert r.lrs[start] <= r.suggested_lr == r.lrs[k] <= r.lrs[end], seed
        drop = base - sm.min()
        assert sm.min() + 0.1 * drop < sm[k] <= base - 0.5 * drop, seed  # half-way down
        assert sm[k] < sm[k - 1] and sm[k] < sm[start - 1 if start else 0], seed  # falling here
        assert r.suggested_lr <= r.min_loss_lr
        suggestions.append(r.suggested_lr)
    assert max(suggestions) / min(suggestions) < 10  # within one decade over the seeds
    if name == "breast_cancer":
        assert 1e-2 <= min(suggestions) and max(suggestions) <= 1.0


def test_no_fall_no_suggestion():
    assert falling_stretch([1.0, 1.0, 0.99, 1.0, 1.01, 1.0]) is None
    assert falling_stretch([1.0, 1.0]) is None
    assert falling_stretch([2.0, 2.0, 2.0, 1.5, 1.0, 0.6, 0.5, 3.0]) == (3, 4, 5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_suggested_learning_rate_trains_well(seed):
    X, y, C = dataset("circle", seed)
    model = mlp(X.shape[1], [32, 32], C, seed=seed)
    opt = gw.optim.SGD(model.parameters(), lr=1e-3)
    r = _sweep(model, opt, X, y, num_steps=80, end_lr=50.0)
    for g in opt.param_groups:
        g["lr"] = r.suggested_lr
    history = gw.fit(model, (X, y), loss="cross_entropy", optimizer=opt, epochs=15, seed=seed,
                     verbose=0, doctor=False)  # fmt: skip
    assert history["loss"][-1] < 0.5 * history["loss"][0]


def test_dead_units_onset_is_reported_for_relu_networks():
    X, y, C = dataset("circle", 0)
    model = mlp(X.shape[1], [32, 32], C, seed=0)
    opt = gw.optim.SGD(model.parameters(), lr=0.1)
    r = _sweep(model, opt, X, y, num_steps=100, end_lr=100.0, diverge=1e9)
    assert r.dead_units_lr is not None
    i = r.lrs.index(r.dead_units_lr)
    base = float(np.median(r.silent_fraction[: max(3, len(r.silent_fraction) // 10)]))
    assert r.silent_fraction[i] >= base + 0.25
    assert r.dead_units_lr > r.suggested_lr


def test_result_prints_plots_and_saves(tmp_path):
    X, y, C = dataset("blobs", 0)
    model = mlp(X.shape[1], [16], C, seed=0)
    r = _sweep(model, gw.optim.SGD(model.parameters(), lr=0.1), X, y, num_steps=50)
    text = str(r)
    assert "suggested lr:" in text and f"{r.suggested_lr:.3g}" in text
    fig = r.plot()
    assert fig.axes[0].get_xscale() == "log"
    png = r.save(tmp_path / "lr.png")
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    svg = open(r.save(tmp_path / "lr.svg")).read()
    assert "<svg" in svg
    data = json.load(open(r.save(tmp_path / "lr.json")))
    assert data["suggested_lr"] == pytest.approx(r.suggested_lr)
    with pytest.raises(ValueError, match=r"expected a .png, .svg, .pdf or .json path"):
        r.save(tmp_path / "lr.txt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lr.json", "lr.png", "lr.svg"]


def test_bad_arguments():
    X, y, C = dataset("blobs", 0)
    model = mlp(X.shape[1], [4], C)
    opt = gw.optim.SGD(model.parameters(), lr=0.1)
    loss = gw.nn.CrossEntropyLoss()
    with pytest.raises(ValueError, match="expected 0 < start_lr < end_lr"):
        gw.lr_find(model, (X, y), loss, opt, start_lr=1.0, end_lr=0.1)
    with pytest.raises(ValueError, match="num_steps must be an int >= 2"):
        gw.lr_find(model, (X, y), loss, opt, num_steps=1)
    with pytest.raises(TypeError, match=r"pair of arrays \(X, y\) or a DataLoader"):
        gw.lr_find(model, X, loss, opt)
    assert opt.param_groups[0]["lr"] == 0.1 and math.isfinite(opt.param_groups[0]["lr"])
