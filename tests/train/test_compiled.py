"""compile_step: a replayed step is the eager step, bit for bit, or it runs eagerly."""

import warnings

import numpy as np
import pytest

import gradwell as gw

nn = gw.nn


def _mlp(momentum=0.1, dtype="float32"):
    return nn.Sequential(
        nn.Linear(5, 16, rng=0, dtype=dtype),
        nn.BatchNorm1d(16, momentum=momentum, dtype=dtype),
        nn.ReLU(),
        nn.Dropout(0.3, rng=1),
        nn.Linear(16, 8, rng=2, dtype=dtype),
        nn.Tanh(),
        nn.Linear(8, 3, rng=3, dtype=dtype),
    )


def _batches(n_batches=4, sizes=(32,), dtype=np.float32, regression=False):
    rng = np.random.default_rng(0)
    out = []
    for i in range(n_batches):
        n = sizes[i % len(sizes)]
        x = gw.Tensor(rng.standard_normal((n, 5)).astype(dtype))
        y = rng.standard_normal((n, 3)).astype(dtype) if regression else rng.integers(0, 3, n)
        out.append((x, gw.Tensor(y)))
    return out


def _train(model, loss_fn, batches, steps, compiled, opt_cls=gw.optim.Adam, **opt_kw):
    opt = opt_cls(model.parameters(), **{"lr": 0.01, **opt_kw})
    step = gw.compile_step(model, loss_fn) if compiled else None
    losses = []
    for i in range(steps):
        x, y = batches[i % len(batches)]
        opt.zero_grad()
        if step is None:
            loss = loss_fn(model(x), y)
            loss.backward()
        else:
            _, loss = step(x, y)
        opt.step()
        losses.append(loss.item())
    return losses, step


def _eager_and_compiled(make_model, loss_fn, batches, steps, opt_cls=gw.optim.Adam, **opt_kw):
    """The same training run eagerly and through compile_step: (eager model, its
    losses), (compiled model, its losses, the CompiledStep)."""
    eager = make_model()
    eager_losses, _ = _train(eager, loss_fn, batches, steps, False, opt_cls, **opt_kw)
    model = make_model()
    losses, step = _train(model, loss_fn, batches, steps, True, opt_cls, **opt_kw)
    return (eager, eager_losses), (model, losses, step)


def _stepped(model, batches):
    """A compile_step of ``model`` with cross-entropy, run once on every batch."""
    step = gw.compile_step(model, nn.CrossEntropyLoss())
    for x, y in batches:
        step(x, y)
    return step


def _same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        np.testing.assert_array_equal(sa[k].data, sb[k].data, err_msg=k)


@pytest.mark.parametrize(
    ("loss_fn", "regression", "opt_cls", "opt_kw", "momentum", "dtype"),
    [
        (nn.CrossEntropyLoss(), False, gw.optim.Adam, {}, 0.1, np.float32),
        (nn.MSELoss(), True, gw.optim.SGD, {"momentum": 0.9}, None, np.float32),
        (nn.CrossEntropyLoss(label_smoothing=0.1), False, gw.optim.AdamW, {}, 0.3, np.float64),
    ],
)
def test_replay_equals_eager_bit_for_bit(loss_fn, regression, opt_cls, opt_kw, momentum, dtype):
    batches = _batches(regression=regression, sizes=(32, 32, 32, 7), dtype=dtype)
    (eager, eager_losses), (model, losses, step) = _eager_and_compiled(
        lambda: _mlp(momentum, np.dtype(dtype).name), loss_fn, batches, 16, opt_cls, **opt_kw
    )
    assert losses == eager_losses
    _same_state(eager, model)  # weights, running statistics, num_batches_tracked
    assert model[3].rng.bit_generator.state == eager[3].rng.bit_generator.state
    # Two recordings per batch shape (32 and 7 rows), every other step replayed.
    assert step.replays == 16 - 4
    assert step.fallback_reason is None


def test_gradients_land_in_grad_as_backward_puts_them():
    batches = _batches()
    model, twin = _mlp(), _mlp()
    step = gw.compile_step(model, nn.CrossEntropyLoss())
    for x, y in batches:  # record, record, replay, replay
        model.zero_grad()
        twin.zero_grad()
        outputs, loss = step(x, y)
        expected = nn.CrossEntropyLoss()(twin(x), y)
        expected.backward()
        assert loss.item() == expected.item()
        for p, q in zip(model.parameters(), twin.parameters()):
            np.testing.assert_array_equal(p.grad.data, q.grad.data)
            assert p.grad.data.flags.writeable and p.grad.data.flags.owndata
    assert step.replays == 2
    # Without zero_grad, gradients accumulate, as with backward().
    before = [p.grad.data.copy() for p in model.parameters()]
    step(*batches[0])
    assert step.replays == 3
    twin_grads = [p.grad.data.copy() for p in twin.parameters()]
    nn.CrossEntropyLoss()(twin(batches[0][0]), batches[0][1]).backward()
    for p, b, q, t in zip(model.parameters(), before, twin.parameters(), twin_grads):
        np.testing.assert_allclose(p.grad.data - b, q.grad.data - t, rtol=1e-6, atol=1e-6)


def test_the_replayed_outputs_equal_the_eager_outputs():
    batches = _batches()
    model = _mlp().eval()  # no dropout draw, no running-statistics change: comparable
    step = gw.compile_step(model, nn.CrossEntropyLoss())
    for x, y in batches * 2:
        outputs, _ = step(x, y)
        np.testing.assert_array_equal(outputs.data, model(x).data)
    assert step.replays == 6


class _FreshConstant(nn.Module):
    """Adds a tensor made outside gradwell's ops, new on every call."""

    def forward(self, x):
        return x + gw.Tensor(np.ones(x.shape[1], x.dtype))


class _Counter(nn.Module):
    """Scales by a Python number that changes on every call."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.__dict__["calls"] += 1
        return x * (1.0 / self.__dict__["calls"])


@pytest.mark.parametrize(
    ("extra", "reason"),
    [(_FreshConstant(), "different tensor on every call"), (_Counter(), "op 'mul'")],
)
def test_a_step_that_differs_between_calls_runs_eagerly_and_says_why(extra, reason):
    batches = _batches()
    models = [nn.Sequential(nn.Linear(5, 3, rng=0), extra) for _ in range(2)]
    eager_losses, _ = _train(models[0], nn.CrossEntropyLoss(), batches, 6, False)
    if isinstance(extra, _Counter):
        extra.__dict__["calls"] = 0
    with pytest.warns(RuntimeWarning, match="compile_step: running eagerly"):
        losses, step = _train(models[1], nn.CrossEntropyLoss(), batches, 6, True)
    assert reason in step.fallback_reason
    assert step.replays == 0
    assert losses == eager_losses


def test_hooks_anomaly_mode_and_no_grad_run_eagerly():
    batches = _batches()
    model = _mlp()
    step = gw.compile_step(model, nn.CrossEntropyLoss())
    step(*batches[0])
    step(*batches[1])
    step(*batches[2])
    assert step.replays == 1
    seen = []
    handle = model[2].register_forward_hook(lambda m, i, o: seen.append(o.shape))
    step(*batches[3])
    assert seen == [(32, 16)] and step.replays == 1
    handle.remove()
    step(*batches[0])
    assert step.replays == 2
    with gw.detect_anomaly():
        step(*batches[1])
    assert step.replays == 2 and not gw.autograd.recording.observers
    x = gw.Tensor(batches[2][0].data, requires_grad=True)
    step(x, batches[2][1])
    assert step.replays == 2 and x.grad is not None


def test_a_replay_fires_parameter_hooks_as_backward_does():
    """Each parameter's hooks see its complete gradient, top layer first as in eager
    backward, and may replace it: how DataParallel averages. (A fused op's parameters
    complete together, so their hooks may fire in another order than eagerly.)"""
    batches = _batches()
    runs = []
    for compiled in (False, True):
        model = _mlp()
        params = dict(model.named_parameters())
        events: list = []
        for name, p in params.items():
            p.register_hook(lambda g, n=name, seen=events: seen.append((n, g.numpy().tobytes())))
        params["0.bias"].register_hook(lambda g: g * 0.5)
        losses, step = _train(model, nn.CrossEntropyLoss(), batches, 5, compiled)
        grads = [p.grad.numpy().tobytes() for p in params.values()]
        runs.append((losses, events, grads, step))
    (eager_losses, eager_events, eager_grads, _), (losses, events, grads, step) = runs
    assert step.replays == 3
    by_step = [[run[k : k + 8] for k in range(0, len(run), 8)] for run in (eager_events, events)]
    for step_events in by_step[0] + by_step[1]:
        order = [n for n, _ in step_events]
        assert order[:4] == ["6.weight", "6.bias", "4.weight", "4.bias"]
        assert sorted(order[4:]) == ["0.bias", "0.weight", "1.bias", "1.weight"]
    assert [dict(e) for e in by_step[0]] == [dict(e) for e in by_step[1]]
    assert losses == eager_losses and grads == eager_grads


def test_changes_to_the_model_are_seen():
    batches = _batches()
    model = _mlp()
    step = _stepped(model, batches)
    assert step.replays == 2
    # A layer frozen after capture gets no gradient in the replay either.
    model[0].requires_grad_(False)
    model.zero_grad()
    step(*batches[0])
    assert model[0].weight.grad is None and model[4].weight.grad is not None
    # A changed attribute (the dropout rate) makes the step record again.
    model[3].rate = 0.0
    replays = step.replays
    step(*batches[1])
    step(*batches[2])
    step(*batches[3])
    assert step.replays == replays + 1
    twin = _mlp()
    twin[0].requires_grad_(False)
    twin[3].rate = 0.0
    twin.load_state_dict(model.state_dict())
    model.zero_grad()
    _, loss = step(*batches[0])
    expected = nn.CrossEntropyLoss()(twin(batches[0][0]), batches[0][1])
    assert loss.item() == expected.item()
    # train()/eval() and load_state_dict record again too.
    model.eval()
    _, loss = step(*batches[1])
    twin.eval()
    assert loss.item() == nn.CrossEntropyLoss()(twin(batches[1][0]), batches[1][1]).item()


def test_fit_with_compile_equals_fit_without():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 5)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
    runs = []
    for compile in (False, True):
        model = _mlp()
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no fallback warning
            history = gw.fit(
                model,
                (X, y),
                loss="cross_entropy",
                optimizer=gw.optim.Adam(model.parameters(), lr=0.01),
                epochs=4,
                batch_size=32,  # 200 rows: a short last batch of 8
                seed=0,
                verbose=0,
                metrics=["accuracy"],
                compile=compile,
            )
        runs.append((model, history))
    (a, ha), (b, hb) = runs
    assert ha.steps["loss"] == hb.steps["loss"]
    assert ha["accuracy"] == hb["accuracy"]
    _same_state(a, b)
    with pytest.raises(TypeError, match="compile"):
        gw.fit(a, (X, y), loss="cross_entropy", optimizer=gw.optim.SGD(a.parameters(), 0.1),
               epochs=1, compile="yes")  # fmt: skip


def test_many_input_shapes_keep_a_few_plans_and_each_shape_replays():
    rng = np.random.default_rng(0)
    model, twin = nn.Linear(5, 3, rng=0), nn.Linear(5, 3, rng=0)
    step = gw.compile_step(model, nn.CrossEntropyLoss())
    for n in range(1, 13):  # 12 batch sizes, each three times: record, record, replay
        x, y = (
            gw.Tensor(rng.standard_normal((n, 5)).astype(np.float32)),
            gw.Tensor(rng.integers(0, 3, n)),
        )
        for _ in range(3):
            _, loss = step(x, y)
            assert loss.item() == nn.CrossEntropyLoss()(twin(x), y).item()
            assert len(step._plans) <= 8
    assert step.replays == 12


def test_targets_of_another_dtype_are_cast_inside_the_replay():
    rng = np.random.default_rng(0)
    model = nn.Sequential(nn.Linear(5, 3, rng=0))
    step = gw.compile_step(model, nn.MSELoss())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(4):
            x = rng.standard_normal((8, 5))  # float64 arrays for a float32 model
            y = rng.standard_normal((8, 3))
            model.zero_grad()
            _, loss = step(x, y)
            expected = nn.MSELoss()(model(x), y)
            assert loss.item() == expected.item() and loss.dtype == np.float32
            assert model[0].weight.grad.dtype == np.float32
    assert step.replays == 2


def test_a_bad_class_index_is_a_clear_error_in_a_replay_too():
    batches = _batches()
    model = _mlp()
    step = _stepped(model, batches)
    assert step.replays == 2
    labels = batches[0][1].data.copy()
    labels[5] = 3  # 3 classes: 0, 1, 2
    with pytest.raises(ValueError, match=r"target class 3 at row 5 is outside \[0, 3\)"):
        step(batches[0][0], gw.Tensor(labels))


def test_the_doctor_sees_the_same_run_with_compile_including_a_late_nan():
    rng = np.random.default_rng(0)
    X = rng.uniform(-3, 3, size=(256, 2)).astype(np.float32)
    y = (X[:, :1] * 2.0 + X[:, 1:] ** 2).astype(np.float32)
    runs = []
    for compile in (False, True):
        model = nn.Sequential(nn.Linear(2, 16, rng=0), nn.ReLU(), nn.Linear(16, 1, rng=1))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # the overflow is the point
            history = gw.fit(
                model, (X, y), loss="mse", optimizer=gw.optim.SGD(model.parameters(), lr=3.0),
                epochs=3, batch_size=32, seed=0, verbose=0, compile=compile,
                doctor=gw.doctor.Doctor(verbose=False, raise_errors=True),
            )  # fmt: skip
        runs.append(history)
    eager, compiled = runs
    np.testing.assert_array_equal(eager.steps["loss"], compiled.steps["loss"])  # NaN == NaN here
    assert [(f.kind, f.step, f.where) for f in eager.findings] == [
        (f.kind, f.step, f.where) for f in compiled.findings
    ]
    nan = next(f for f in compiled.findings if f.kind == "nan_trap")
    assert nan.step > 2  # a step that replayed: the doctor's replay still names the op
    assert nan.evidence["anomaly"] is not None


class _Tied(nn.Module):
    """One weight used twice (its gradient sums two contributions), a reshape, a GELU."""

    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten()
        self.a = nn.Linear(6, 6, rng=0)
        self.act = nn.GELU()
        self.out = nn.Linear(6, 1, rng=1)

    def forward(self, x):
        h = self.act(self.a(self.flatten(x)))
        return self.out(self.act(self.a(h)) + h)


def test_shared_weights_reshapes_and_a_logistic_loss_replay_exactly():
    rng = np.random.default_rng(0)
    batches = [
        (gw.Tensor(rng.standard_normal((16, 2, 3)).astype(np.float32)),
         gw.Tensor(rng.integers(0, 2, (16, 1)).astype(np.float32)))
        for _ in range(3)
    ]  # fmt: skip
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=gw.tensor([2.0]))
    (eager, eager_losses), (model, losses, step) = _eager_and_compiled(
        _Tied, loss_fn, batches, 8, gw.optim.SGD, momentum=0.9
    )
    assert losses == eager_losses and step.replays == 6
    _same_state(eager, model)


class _BatchNormUsedTwice(nn.Module):
    """A batch-norm output that feeds the relu and a skip connection: not fusable."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(5, 8, rng=0)
        self.bn = nn.BatchNorm1d(8)
        self.act = nn.ReLU()
        self.drop = nn.Dropout(0.2, rng=3)
        self.out = nn.Linear(8, 3, rng=1)

    def forward(self, x):
        h = self.bn(self.lin(x))
        return self.out(self.drop(self.act(h)) + h)


def _replayed_ops(step):
    """The names of the ops that the step's first plan replays, after fusion."""
    plan = next(iter(step._plans.values()))
    return [op.name for op, *_ in plan.steps]


def test_a_chain_whose_middle_is_used_elsewhere_is_not_fused_and_replays_exactly():
    batches = _batches()
    (eager, eager_losses), (model, losses, step) = _eager_and_compiled(
        _BatchNormUsedTwice, nn.CrossEntropyLoss(), batches, 8
    )
    assert losses == eager_losses and step.replays == 6
    _same_state(eager, model)
    names = _replayed_ops(step)
    assert "batch_norm_relu_dropout" not in names
    assert "linear_batch_norm_relu_dropout" not in names
    # ...while the plain chain of the other tests is fused
    model = _mlp()
    step = _stepped(model, batches)
    # (with the Linear before it: the whole block is one op)
    assert _replayed_ops(step).count("linear_batch_norm_relu_dropout") == 1


def test_wide_blocks_fuse_with_their_linear_and_replay_exactly():
    # Past the compiled small products: the Linear's bias is added inside batch norm's
    # kernel and its gradient summed there; short (24) and plain (80) batches.
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((n, 40)).astype(np.float32) for n in (24, 80)]
    batches = [(gw.Tensor(x), gw.Tensor(rng.integers(0, 3, len(x)))) for x in xs]

    def model():
        return nn.Sequential(
            nn.Linear(40, 128, rng=0), nn.BatchNorm1d(128), nn.ReLU(), nn.Dropout(0.2, rng=1),
            nn.Linear(128, 64, rng=2), nn.BatchNorm1d(64, affine=False), nn.ReLU(),
            nn.Linear(64, 3, rng=3),
        )  # fmt: skip

    (eager, eager_losses), (m, losses, step) = _eager_and_compiled(
        model, nn.CrossEntropyLoss(), batches, 10
    )
    assert losses == eager_losses and step.replays == 6
    _same_state(eager, m)
    assert _replayed_ops(step).count("linear_batch_norm_relu_dropout") == 2


def _peak_bytes(step, model, x, y):
    """The most numpy memory (tracemalloc) that one more call of ``step`` holds at once."""
    import tracemalloc

    for _ in range(3):  # two recordings, then replays
        model.zero_grad()
        step(x, y)
    model.zero_grad()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        step(x, y)
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(("act", "dtype"), [(nn.ReLU, "float32"), (nn.Tanh, "float64")])
def test_a_replay_lets_go_of_each_array_after_its_last_use_as_backward_does(act, dtype):
    # Holding every slot to the end of the step cost 1.4-1.5x eager's peak here.
    def make():
        return nn.Sequential(
            nn.Linear(20, 64, rng=0, dtype=dtype), act(), nn.Linear(64, 64, rng=1, dtype=dtype),
            act(), nn.Linear(64, 5, rng=2, dtype=dtype),
        )  # fmt: skip

    rng = np.random.default_rng(0)
    x, y = gw.Tensor(rng.standard_normal((64, 20)).astype(dtype)), gw.Tensor(rng.integers(0, 5, 64))
    loss_fn, eager_model, model = nn.CrossEntropyLoss(), make(), make()
    eager = _peak_bytes(lambda a, b: loss_fn(eager_model(a), b).backward(), eager_model, x, y)
    step = gw.compile_step(model, loss_fn)
    compiled = _peak_bytes(step, model, x, y)
    assert step.replays == 2
    assert compiled <= 1.05 * eager, (compiled, eager)


def test_a_compiled_lenet_step_equals_the_eager_step_bit_for_bit():
    """Both convolution kernels (direct for one input channel, im2col with runs of few
    channels) and max pooling, eagerly and through compile_step: the same numbers."""

    def lenet():
        return nn.Sequential(
            nn.Conv2d(1, 3, 5, padding=2, rng=0), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(3, 4, 3, rng=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(16, 3, rng=2),
        )  # fmt: skip

    rng = np.random.default_rng(0)
    batches = [
        (gw.tensor(rng.standard_normal((4, 1, 12, 12)).astype(np.float32)),
         gw.tensor(rng.integers(0, 3, 4)))
        for _ in range(2)
    ]  # fmt: skip
    (eager, eager_losses), (model, losses, step) = _eager_and_compiled(
        lenet, nn.CrossEntropyLoss(), batches, 4
    )
    assert step.replays > 0 and step.fallback_reason is None
    assert losses == eager_losses
    _same_state(eager, model)
