"""RNN, LSTM and GRU: against PyTorch (outputs, states and every gradient), the fused
recurrences against their references, and the layers' arguments and errors."""

import numpy as np
import pytest

import gradwell as gw
from gradwell.nn import recurrence

LAYERS = {"RNN": gw.nn.RNN, "LSTM": gw.nn.LSTM, "GRU": gw.nn.GRU}
VARIANTS = [
    {},
    {"num_layers": 2, "batch_first": True},
    {"num_layers": 2, "bidirectional": True},
    {"bias": False},
]


def _states(h):
    return list(h) if isinstance(h, tuple) else [h]


def _pair(name, kwargs, dtype):
    """A gradwell layer and a PyTorch layer holding the same numbers (loaded from ours)."""
    torch = pytest.importorskip("torch")
    ours = LAYERS[name](3, 4, rng=0, dtype=dtype, **kwargs)
    theirs = getattr(torch.nn, name)(3, 4, **kwargs).to(getattr(torch, np.dtype(dtype).name))
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    return torch, ours, theirs


def _compare(ours, theirs, torch, x, hx, dtype):
    """Outputs, final states and the gradients of input, initial state and parameters."""
    tol = {"rtol": 1e-4, "atol": 1e-5} if dtype == np.float32 else {"rtol": 1e-9, "atol": 1e-11}
    xg = gw.tensor(x, dtype=dtype, requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    hg = None if hx is None else [gw.tensor(h, dtype=dtype, requires_grad=True) for h in hx]
    ht = None if hx is None else [torch.tensor(h, requires_grad=True) for h in hx]
    pack = (lambda s: s[0]) if not isinstance(ours, gw.nn.LSTM) else tuple
    out, h_n = ours(xg, None if hg is None else pack(hg))
    out_t, h_n_t = theirs(xt, None if ht is None else pack(ht))
    np.testing.assert_allclose(out.numpy(), out_t.detach().numpy(), **tol)
    for a, b in zip(_states(h_n), _states(h_n_t)):
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), **tol)
    rng = np.random.default_rng(1)
    weights = [rng.standard_normal(out.shape).astype(dtype)]
    weights += [rng.standard_normal(h.shape).astype(dtype) for h in _states(h_n)]
    ours_out, theirs_out = [out, *_states(h_n)], [out_t, *_states(h_n_t)]
    loss = sum((a * gw.tensor(w, dtype=dtype)).sum() for a, w in zip(ours_out, weights))
    loss_t = sum((a * torch.tensor(w)).sum() for a, w in zip(theirs_out, weights))
    loss.backward()
    loss_t.backward()
    np.testing.assert_allclose(xg.grad.numpy(), xt.grad.numpy(), **tol)
    for a, b in zip(hg or [], ht or []):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), **tol)
    theirs_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), theirs_params[name].grad.numpy(), **tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kwargs", VARIANTS, ids=lambda k: ",".join(k) or "default")
@pytest.mark.parametrize("name", LAYERS)
def test_matches_pytorch(name, kwargs, dtype):
    torch, ours, theirs = _pair(name, kwargs, dtype)
    x = np.random.default_rng(0).standard_normal((5, 2, 3)).astype(dtype)
    _compare(ours, theirs, torch, x, None, dtype)


@pytest.mark.parametrize("name", LAYERS)
def test_matches_pytorch_from_a_given_state_and_unbatched(name):
    torch, ours, theirs = _pair(name, {"num_layers": 2, "bidirectional": True}, np.float64)
    rng = np.random.default_rng(2)
    states = 2 if name == "LSTM" else 1
    x = rng.standard_normal((5, 3, 3))
    _compare(ours, theirs, torch, x, [rng.standard_normal((4, 3, 4)) for _ in range(states)],
             np.float64)  # fmt: skip
    for p in ours.parameters():
        p.grad = None
    for p in theirs.parameters():
        p.grad = None
    _compare(ours, theirs, torch, x[:, 0], [rng.standard_normal((4, 4)) for _ in range(states)],
             np.float64)  # fmt: skip


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "kwargs",
    [{}, {"num_layers": 2, "bidirectional": True}],
    ids=["one layer", "2 layers, both ways"],
)
def test_lstm_with_proj_size_matches_pytorch(kwargs, dtype):
    torch, ours, theirs = _pair("LSTM", {"proj_size": 2, **kwargs}, dtype)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 2, 3)).astype(dtype)
    _compare(ours, theirs, torch, x, None, dtype)
    layers = 2 * kwargs.get("num_layers", 1) if kwargs else 1
    for p in [*ours.parameters(), *theirs.parameters()]:
        p.grad = None
    hx = [rng.standard_normal((layers, 2, size)).astype(dtype) for size in (2, 4)]
    _compare(ours, theirs, torch, x, hx, dtype)


def test_relu_rnn_matches_pytorch():
    torch, ours, theirs = _pair("RNN", {"nonlinearity": "relu", "num_layers": 2}, np.float64)
    _compare(ours, theirs, torch, np.random.default_rng(3).standard_normal((6, 2, 3)), None,
             np.float64)  # fmt: skip


def test_parameters_are_pytorchs_names_shapes_and_init_range():
    torch = pytest.importorskip("torch")
    for name, kwargs in (("LSTM", {"num_layers": 2, "bidirectional": True}), ("GRU", {})):
        ours = LAYERS[name](3, 16, rng=0, **kwargs)
        theirs = getattr(torch.nn, name)(3, 16, **kwargs)
        assert {k: v.shape for k, v in ours.state_dict().items()} == {
            k: tuple(v.shape) for k, v in theirs.state_dict().items()
        }
        values = np.concatenate([p.numpy().ravel() for p in ours.parameters()])
        assert np.abs(values).max() <= 0.25 and np.abs(values).max() > 0.24  # U(-1/4, 1/4)


# --------------------------------------------------------------------------- fused ops


def _leaf(shape, seed):
    return gw.tensor(np.random.default_rng(seed).standard_normal(shape), "float64", True)


RECURRENCES = {
    "rnn tanh": (recurrence.rnn, 1, 1, {"nonlinearity": "tanh"}),
    "rnn relu": (recurrence.rnn, 1, 1, {"nonlinearity": "relu"}),
    "lstm": (recurrence.lstm, 4, 2, {}),
    "gru": (recurrence.gru, 3, 1, {}),
}


def _fast_and_reference_agree(op, inputs, attrs):
    out = op(*inputs, **attrs)
    ref = op.reference(out.data, *inputs, **attrs)
    np.testing.assert_allclose(out.data, ref.data, rtol=1e-12, atol=1e-13)
    w = gw.tensor(np.random.default_rng(9).standard_normal(out.shape), "float64")
    fast = gw.grad((out * w).sum(), inputs)
    slow = gw.grad((ref * w).sum(), inputs)
    for a, b in zip(fast, slow):
        np.testing.assert_allclose(a.data, b.data, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("case", RECURRENCES)
def test_the_fused_recurrence_equals_its_reference(case, reverse):
    """Output and every gradient of the fast loop equal those of the step-by-step reference
    in core primitives (also what create_graph differentiates)."""
    op, gates, n_states, attrs = RECURRENCES[case]
    h = 3
    inputs = [_leaf((4, 2, gates * h), 0)] + [_leaf((2, h), 1 + s) for s in range(n_states)]
    inputs += [_leaf((gates * h, h), 5), _leaf((gates * h,), 6)]
    _fast_and_reference_agree(op, inputs, {"reverse": reverse, **attrs})


@pytest.mark.parametrize("reverse", [False, True])
def test_the_projected_lstm_equals_its_reference(reverse):
    h, p = 3, 2
    inputs = [_leaf((4, 2, 4 * h), 0), _leaf((2, p), 1), _leaf((2, h), 2)]
    inputs += [_leaf((4 * h, p), 3), _leaf((p, h), 4), _leaf((4 * h,), 5)]
    _fast_and_reference_agree(recurrence.lstm_projected, inputs, {"reverse": reverse})


def test_observers_see_every_gate_and_training_is_unchanged():
    """While ops are observed the reference runs beside the fused op, unrecorded: the
    observer sees each gate as an op of the layer, and the numbers are those of an
    unobserved run, bit for bit (the doctor never changes training)."""
    lstm = gw.nn.LSTM(3, 4, num_layers=2, dropout=0.3, rng=0)
    twin = gw.nn.LSTM(3, 4, num_layers=2, dropout=0.3, rng=0)
    x = gw.randn(5, 2, 3, rng=0)
    eager, _ = lstm(x)
    eager.sum().backward()
    with gw.autograd.record() as tape:
        watched, _ = twin(x)
    watched.sum().backward()
    names = [step.op.name for step in tape]
    assert names.count("lstm") == 2
    assert names.count("sigmoid") == 2 * 3 * 5 and names.count("tanh") == 2 * 2 * 5
    gates = [step for step in tape if step.op.name == "sigmoid"]
    assert {step.scope for step in gates} == {twin}
    assert not any(step.output.requires_grad for step in gates)
    np.testing.assert_array_equal(watched.numpy(), eager.numpy())
    for (name, p), q in zip(lstm.named_parameters(), twin.parameters()):
        np.testing.assert_array_equal(p.grad.numpy(), q.grad.numpy(), err_msg=name)


# --------------------------------------------------------------------------- the layers


def test_dropout_between_layers_in_training_only():
    lstm = gw.nn.LSTM(3, 8, num_layers=2, dropout=0.5, rng=0)
    x = gw.randn(4, 2, 3, rng=1)
    a, b = lstm(x)[0].numpy(), lstm(x)[0].numpy()
    assert not np.allclose(a, b)  # a fresh mask per call
    lstm.eval()
    np.testing.assert_array_equal(lstm(x)[0].numpy(), lstm(x)[0].numpy())
    single = gw.nn.LSTM(3, 8, dropout=0.5, rng=0)  # one layer: nothing between layers
    np.testing.assert_array_equal(single(x)[0].numpy(), single(x)[0].numpy())


def test_plain_arrays_take_the_weights_dtype():
    gru = gw.nn.GRU(2, 3, rng=0)
    out, h = gru(np.ones((4, 1, 2)))
    assert out.dtype == np.float32 and h.dtype == np.float32


def test_errors_name_the_layer_and_the_expected_shape():
    lstm = gw.nn.LSTM(3, 4, num_layers=2)
    with pytest.raises(ValueError, match=r"LSTM.*\(L, N, input_size\).*input_size=3.*\(5, 2, 4\)"):
        lstm(gw.zeros(5, 2, 4))
    with pytest.raises(ValueError, match=r"expected c0 of shape \(2, 2, 4\).*got \(1, 2, 4\)"):
        lstm(gw.zeros(5, 2, 3), (gw.zeros(2, 2, 4), gw.zeros(1, 2, 4)))
    with pytest.raises(TypeError, match="h0 and c0"):
        lstm(gw.zeros(5, 2, 3), gw.zeros(2, 2, 4))
    with pytest.raises(ValueError, match="nonlinearity"):
        gw.nn.RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="hidden_size"):
        gw.nn.GRU(3, 0)
    with pytest.raises(ValueError, match=r"proj_size \(4\) must be smaller than hidden_size \(4\)"):
        gw.nn.LSTM(3, 4, proj_size=4)
    with pytest.raises(ValueError, match="GRU: proj_size is an LSTM's only .* got 2"):
        gw.nn.GRU(3, 4, proj_size=2)  # as PyTorch refuses it: a GRU has no projection
    with pytest.raises(ValueError, match=r"expected h0 of shape \(1, 2, 2\).*proj_size"):
        gw.nn.LSTM(3, 4, proj_size=2)(gw.zeros(5, 2, 3), (gw.zeros(1, 2, 4), gw.zeros(1, 2, 4)))


@pytest.mark.parametrize(
    "layer",
    [
        gw.nn.LSTM(3, 4, num_layers=2, bias=False, bidirectional=True, rng=0),
        gw.nn.GRU(3, 4, batch_first=True, dropout=0.2, rng=0),
        gw.nn.RNN(3, 4, nonlinearity="relu", rng=0),
        gw.nn.LSTM(3, 4, proj_size=2, rng=0),
        gw.nn.MultiheadAttention(8, 2, kdim=5, bias=False, rng=0),
        gw.nn.MultiheadAttention(8, 2, add_bias_kv=True, add_zero_attn=True, rng=0),
    ],
    ids=lambda m: type(m).__name__,
)
def test_architecture_round_trip_rebuilds_the_same_layer(layer):
    """A checkpoint's JSON description rebuilds the layer, and its state dict loads."""
    from gradwell.train.architecture import build, describe

    rebuilt = build(describe(layer))
    assert describe(rebuilt) == describe(layer)
    rebuilt.load_state_dict(layer.state_dict())
