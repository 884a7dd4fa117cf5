"""The Doctor's mechanics: it measures what it says, never changes training, cleans up."""

from __future__ import annotations

import io
import math
import sys
import warnings

import numpy as np
import pytest
from doctor.kit import dataset, mlp

import gradwell as gw
from gradwell.doctor import Doctor, Thresholds
from gradwell.doctor.probes import UPDATE_ENTRIES, watched_stride


def _fit(model, X, y, doctor, lr=0.05, epochs=3, opt="adam", quiet=True, **kw):
    cls = gw.optim.Adam if opt == "adam" else gw.optim.SGD
    kw.setdefault("verbose", 0)
    with warnings.catch_warnings():
        if quiet:  # the pathological runs overflow on purpose
            warnings.simplefilter("ignore", RuntimeWarning)
        return gw.fit(model, (X, y), loss="cross_entropy", optimizer=cls(model.parameters(), lr=lr),
                      epochs=epochs, batch_size=32, seed=0, doctor=doctor, **kw)  # fmt: skip


def _weights(model):
    return {n: p.data.copy() for n, p in model.named_parameters()} | {
        n: b.data.copy() for n, b in model.named_buffers()
    }


@pytest.mark.parametrize("lr,opt", [(0.01, "adam"), (5.0, "sgd")])  # healthy, and one into NaN
def test_the_doctor_never_changes_training(lr, opt):
    X, y, C = dataset("blobs", 0)
    runs = []
    for doctor in (False, True, Doctor(sample_every=1, verbose=False)):
        model = mlp(X.shape[1], [16, 16], C, seed=0, dropout=0.3, batchnorm=True)
        history = _fit(model, X, y, doctor, lr=lr, opt=opt)
        runs.append((history.steps["loss"], _weights(model)))
    (loss0, w0), *others = runs
    for loss, w in others:
        assert np.array_equal(loss, loss0, equal_nan=True)
        assert w.keys() == w0.keys()
        for k in w0:
            assert np.array_equal(w[k], w0[k], equal_nan=True), k


def test_hooks_are_removed_after_fit():
    X, y, C = dataset("blobs", 0)
    model = mlp(X.shape[1], [16, 16], C, seed=0, dropout=0.2)
    _fit(model, X, y, Doctor(sample_every=1, verbose=False, raise_errors=True))
    assert all(not m._forward_hooks for m in model.modules())
    assert all(not p._hooks for p in model.parameters())
    assert not gw.autograd.recording.observers  # nothing left registered on the seam


def test_history_carries_the_findings_and_the_doctor():
    X, y, C = dataset("blobs", 0)
    model = mlp(X.shape[1], [16], C, seed=0, dropout=1.0)
    history = _fit(model, X, y, True)
    assert isinstance(history.doctor, Doctor)
    assert [f.kind for f in history.findings][:1] == ["dropout_misconfigured"]
    assert [f.to_dict() for f in history.findings] == [f.to_dict() for f in history.doctor.findings]
    off = _fit(mlp(X.shape[1], [16], C, seed=0, dropout=1.0), X, y, False)
    assert off.findings == [] and off.doctor is None


def test_sampling_interval_defaults_to_sixteen_or_four_samples_an_epoch():
    X, y, C = dataset("blobs", 0, n=3200)  # 100 steps an epoch: every 16th step
    d = Doctor(verbose=False, raise_errors=True)
    _fit(mlp(X.shape[1], [16], C, seed=0), X, y, d, epochs=1, lr=0.01)
    assert list(d.trace.samples) == list(range(0, 100, 16))
    X, y, C = dataset("blobs", 0, n=320)  # 10 steps an epoch: every 10 // 4 = 2nd step
    d = Doctor(verbose=False, raise_errors=True)
    _fit(mlp(X.shape[1], [16], C, seed=0), X, y, d, epochs=2, lr=0.01)
    assert list(d.trace.samples) == list(range(0, 20, 2))
    assert len(d.trace.loss) == 20  # the loss of every step


def test_alarm_samples_every_step_when_the_loss_jumps():
    X, y, C = dataset("blobs", 0, n=3200)
    d = Doctor(verbose=False, raise_errors=True)
    _fit(mlp(X.shape[1], [16, 16], C, seed=0), X, y, d, epochs=1, lr=5.0, opt="sgd")
    loss = np.asarray(d.trace.loss)
    # the starting level: the median of the first 5 losses (of those seen so far)
    ref = np.array([np.inf] + [np.median(loss[: min(i, 5)]) for i in range(1, len(loss))])
    first_jump = int(np.argmax(~(loss <= 3 * ref)))
    assert first_jump > 0
    assert list(range(first_jump + 1, first_jump + 6)) == [
        s for s in d.trace.samples if first_jump < s <= first_jump + 5
    ]


def _hand_loop(model, opt, X, y, doctor, steps, loss_fn=None, record=None):
    loss_fn = loss_fn or gw.nn.CrossEntropyLoss()
    batches = list(gw.data.DataLoader((X, y), batch_size=32))
    for s in range(steps):
        xb, yb = batches[s % len(batches)]
        opt.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        if record is not None:
            record(s, xb, yb)
        doctor.step(loss, xb, yb)
        opt.step()


def test_gradient_norms_update_ratios_and_signal_follow_their_formulas():
    X, y, C = dataset("blobs", 0)
    model = mlp(X.shape[1], [8, 8], C, seed=0)
    lr = 0.1
    opt = gw.optim.SGD(model.parameters(), lr=lr)
    doctor = Doctor(model, opt, sample_every=1, verbose=False, raise_errors=True)
    expected: dict[int, dict] = {}

    def record(s, xb, yb):
        # independent float64 computations from the gradients backward just produced
        g = {n: p.grad.data.astype(np.float64) for n, p in model.named_parameters()}
        w = {n: p.data.astype(np.float64) for n, p in model.named_parameters()}
        # the gradient reaching the first Linear's output, by gw.grad on a fresh forward
        z = model[0](xb)
        rest = gw.nn.Sequential(*list(model)[1:])
        (dz,) = gw.grad(gw.nn.CrossEntropyLoss()(rest(z), yb), z)
        expected[s] = {
            "norm": {n: float(np.linalg.norm(v)) for n, v in g.items()},
            # plain SGD: w' - w = -lr g, so |update| / |w| = lr |g| / |w|
            "ratio": {
                n: lr * float(np.linalg.norm(g[n]) / np.linalg.norm(w[n]))
                for n in g
                if w[n].ndim == 2
            },  # fmt: skip
            "signal": float(np.sqrt(np.mean(dz.numpy().astype(np.float64) ** 2))),
        }

    _hand_loop(model, opt, X, y, doctor, steps=6, record=record)
    doctor.finish()
    tr = doctor.trace
    assert list(tr.samples) == list(range(6))
    for i, s in enumerate(tr.samples):
        for n, v in expected[s]["norm"].items():
            assert tr.grad_norm[n][i] == pytest.approx(v, rel=1e-5)
        for n, v in expected[s]["ratio"].items():
            assert tr.update_ratio[n][i] == pytest.approx(v, rel=1e-4)
        assert tr.signal["0"][i] == pytest.approx(expected[s]["signal"], rel=1e-5)


def test_update_ratio_of_a_large_weight_is_estimated_from_a_fixed_sample_of_its_entries():
    # 64 -> 128: 8,192 entries, twice UPDATE_ENTRIES; Adam updates every entry by about
    # lr, so the ratio is a sum over all of them, which the sample must estimate
    rng = np.random.default_rng(0)
    X = rng.standard_normal((256, 64)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    model = gw.nn.Sequential(
        gw.nn.Linear(64, 128, rng=0), gw.nn.ReLU(), gw.nn.Linear(128, 2, rng=1)
    )
    opt = gw.optim.Adam(model.parameters(), lr=0.01)
    doctor = Doctor(model, opt, sample_every=1, verbose=False, raise_errors=True)
    exact = []
    for s in range(4):
        xb, yb = gw.tensor(X[s * 64 : (s + 1) * 64]), gw.tensor(y[s * 64 : (s + 1) * 64])
        opt.zero_grad()
        loss = gw.nn.CrossEntropyLoss()(model(xb), yb)
        loss.backward()
        doctor.step(loss, xb, yb)
        before = {n: p.data.astype(np.float64) for n, p in model.named_parameters()}
        opt.step()
        exact.append({
            n: float(np.linalg.norm(p.data - before[n]) / np.linalg.norm(before[n]))
            for n, p in model.named_parameters()
        })  # fmt: skip
    doctor.finish()
    ratios = doctor.trace.update_ratio
    assert model[0].weight.data.size > UPDATE_ENTRIES >= model[2].weight.data.size
    for i in range(4):
        assert ratios["0.weight"][i] == pytest.approx(exact[i]["0.weight"], rel=0.05)
        assert ratios["0.weight"][i] != pytest.approx(exact[i]["0.weight"], rel=1e-6)  # a sample
        assert ratios["2.weight"][i] == pytest.approx(exact[i]["2.weight"], rel=1e-5)  # all


@pytest.mark.parametrize("shape", [(512, 784), (256, 512), (1024, 1024), (10, 1568),
                                   (32, 16, 3, 3), (64, 64), (4096,), (7, 3)])  # fmt: skip
def test_the_watched_entries_of_a_weight_walk_through_every_row_and_column(shape):
    size = int(np.prod(shape))
    k = watched_stride(shape)
    flat = np.arange(size)[::k]  # the flat indices watched
    assert flat.size <= UPDATE_ENTRIES
    if size <= UPDATE_ENTRIES:
        assert k == 1
        return
    assert flat.size >= UPDATE_ENTRIES // 8  # (a stride stepping over small factors)
    index = np.unravel_index(flat, shape)
    # every position of each later dimension is watched (with enough entries), and the
    # first dimension (a layer's output units) is covered evenly, without long gaps
    for d in range(1, len(shape)):
        assert np.unique(index[d]).size == min(shape[d], flat.size)
    gaps = np.diff(np.unique(index[0]))
    assert gaps.size == 0 or gaps.max() <= -(-shape[0] // flat.size) + 1


def test_activation_and_batchnorm_statistics():
    X, y, C = dataset("blobs", 0)
    model = mlp(X.shape[1], [16], C, seed=0, batchnorm=True)
    opt = gw.optim.Adam(model.parameters(), lr=0.01)
    doctor = Doctor(model, opt, sample_every=1, verbose=False, raise_errors=True)
    seen = []
    model[2].register_forward_hook(lambda m, i, out: seen.append(out.numpy().copy()))
    _hand_loop(model, opt, X, y, doctor, steps=5)
    doctor.finish()
    relu = doctor.trace.activations["2"]
    assert relu.kind == "relu" and relu.units == 16
    for i, out in enumerate(seen):
        assert relu.active_fraction[i] == pytest.approx(float((out > 0).mean()))
        assert relu.silent_fraction[i] == pytest.approx(1 - float((out > 0).any(axis=0).mean()))
    # batch norm's running statistics: at each diagnosis (here the final one, after 5 steps)
    bn = doctor.trace.batchnorm["1"]
    assert list(bn["step"]) == [5]
    rm, rv = (b.numpy().astype(np.float64) for b in (model[1].running_mean, model[1].running_var))
    assert bn["rms_running_mean"][-1] == pytest.approx(float(np.sqrt(np.mean(rm**2))))
    assert bn["mean_running_var"][-1] == pytest.approx(float(rv.mean()))
    assert bn["min_running_var"][-1] == pytest.approx(float(rv.min()))
    report = doctor.report()  # (it used to fail on a model with batch norm)
    assert "BatchNorm running statistics" in report
    assert f"{float(rv.min()):.3g}" in report


def test_hand_written_loop_finds_dead_units_with_epochs():
    X, y, C = dataset("circle", 0)
    model = mlp(X.shape[1], [32, 32], C, seed=0)
    opt = gw.optim.SGD(model.parameters(), lr=3.0)
    doctor = Doctor(model, opt, loss=gw.nn.CrossEntropyLoss(), verbose=False, raise_errors=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for _ in range(4):
            _hand_loop(model, opt, X, y, doctor, steps=16)
            doctor.end_epoch()
    kinds = {f.kind for f in doctor.finish() if f.severity != "info"}
    assert "dead_relu" in kinds


def test_printed_line_when_a_problem_first_appears_and_the_summary(monkeypatch):
    X, y, C = dataset("blobs", 0)
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    model = mlp(X.shape[1], [16], C, seed=0, dropout=1.0)
    _fit(model, X, y, True, verbose=1, epochs=5)
    lines = out.getvalue().splitlines()
    first = [line for line in lines if line.startswith("doctor: [critical] dropout_misconfigured")]
    assert len(first) == 1  # once, when it first appears
    assert lines.index(first[0]) < lines.index(next(x for x in lines if x.startswith("Epoch 1/5")))
    # the summary shows the chain: the dropout, and the stalled run it led to
    summary = next(i for i, line in enumerate(lines) if line.startswith("doctor: 2 problems"))
    assert lines[summary].startswith("doctor: 2 problems found (1 critical, 1 warning")
    assert lines[summary + 1].startswith("  [critical] dropout_misconfigured")
    assert lines[summary + 2].startswith("      which led to: [warning] stalled_training")
    assert "history.doctor.save_html" in lines[-1]


def test_the_live_line_and_the_summary_agree_on_onset_and_severity(monkeypatch):
    X, y, C = dataset("blobs", 0)
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    model = mlp(X.shape[1], [32, 32], C, "Tanh", seed=0)
    history = _fit(model, X * 60, y, True, verbose=1, epochs=6, lr=0.01)
    lines = out.getvalue().splitlines()
    for f in (f for f in history.findings if f.rank >= 1):
        live = [x for x in lines if x.startswith("doctor: [") and f"] {f.kind} at " in x]
        assert live, f.kind
        # the last line printed for it names the severity and onset of the final finding
        assert live[-1].startswith(f"doctor: [{f.severity}] {f.kind} at {f.where}"), live
        if f.step is not None:
            assert f"(epoch {f.epoch + 1}, step {f.step})" in live[-1], live


def test_progress_bar_is_not_broken(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    X, y, C = dataset("blobs", 0)
    out = Tty()
    monkeypatch.setattr(sys, "stdout", out)
    _fit(mlp(X.shape[1], [16], C, seed=0, dropout=1.0), X, y, True, verbose=1, epochs=2)
    text = out.getvalue()
    assert "doctor: [critical] dropout_misconfigured" in text and "Epoch 2/2" in text


def test_an_internal_error_switches_the_doctor_off_and_training_goes_on(monkeypatch):
    import gradwell.doctor.doctor as module

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug in a detector")

    X, y, C = dataset("blobs", 0)
    ref = _fit(mlp(X.shape[1], [16], C, seed=0), X, y, False)
    monkeypatch.setattr(module, "detect_all", broken)
    with pytest.warns(RuntimeWarning, match="switched off after an internal error"):
        model = mlp(X.shape[1], [16], C, seed=0)
        history = _fit(model, X, y, Doctor(verbose=False), quiet=False)
    assert history.steps["loss"] == ref.steps["loss"]
    assert all(not m._forward_hooks for m in model.modules())
    with pytest.raises(ZeroDivisionError):
        _fit(mlp(X.shape[1], [16], C, seed=0), X, y, Doctor(verbose=False, raise_errors=True))


def test_bad_configuration_is_a_clear_error():
    X, y, C = dataset("blobs", 0)
    with pytest.raises(ValueError, match="sample_every must be an int >= 1"):
        Doctor(sample_every=0)
    with pytest.raises(TypeError, match="thresholds must be a gw.doctor.Thresholds"):
        Doctor(thresholds={"dead_warning": 0.5})
    with pytest.raises(
        ValueError, match="feature_names has 2 names but the training inputs have 6"
    ):
        _fit(mlp(X.shape[1], [4], C), X, y, Doctor(feature_names=["a", "b"]))
    with pytest.raises(RuntimeError, match="no model attached"):
        Doctor().step(1.0)


def test_thresholds_can_be_tuned():
    X, y, C = dataset("blobs", 0)
    model = mlp(X.shape[1], [16], C, seed=0, dropout=0.5)
    strict = Doctor(thresholds=Thresholds(dropout_high=0.5), verbose=False, raise_errors=True)
    history = _fit(model, X, y, strict)
    assert [f.severity for f in history.findings if f.kind == "dropout_misconfigured"] == [
        "warning"
    ]


def test_nonfinite_loss_in_a_hand_loop_without_the_batch_is_reported_honestly():
    model = mlp(2, [4], 2, seed=0)
    opt = gw.optim.SGD(model.parameters(), lr=0.1)
    doctor = Doctor(model, opt, verbose=False, raise_errors=True)
    doctor.step(1.0)
    doctor.step(math.inf)
    f = next(f for f in doctor.finish() if f.kind == "nan_trap")
    assert f.step == 1 and f.where == "loss"
    assert "pass inputs= and targets=" in f.explanation


def test_a_failed_pre_flight_check_leaves_the_rest_of_the_doctor_on(monkeypatch):
    import gradwell.doctor.doctor as module

    def broken(*args, **kwargs):
        raise RuntimeError("cannot copy this model")

    monkeypatch.setattr(module, "preflight", broken)
    X, y, C = dataset("blobs", 0)
    history = _fit(mlp(X.shape[1], [16], C, seed=0, dropout=1.0), X, y, Doctor(verbose=False))
    assert history.findings[0].kind == "dropout_misconfigured"
    assert "cannot copy this model" in history.doctor.trace.setup["error"]


@pytest.mark.parametrize("loss", [np.ones(3), gw.tensor(np.ones((2, 2))), "low", None])
def test_a_loss_that_is_not_one_number_is_the_callers_error_and_says_what_came(loss):
    model = gw.nn.Sequential(gw.nn.Linear(2, 2, rng=0))
    doctor = Doctor(model, gw.optim.SGD(model.parameters(), lr=0.1), verbose=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not the doctor switching itself off
        with pytest.raises(ValueError, match="Doctor.step: the loss must be one number") as e:
            doctor.step(loss)
    shape = getattr(getattr(loss, "data", loss), "shape", None)
    assert (f"of shape {tuple(shape)}" if shape is not None else repr(loss)) in str(e.value)
    doctor.step(gw.tensor(np.array(0.5)))  # and it goes on watching
    assert list(doctor.trace.loss) == [0.5]
