"""Convolution, pooling, padding, normalisation and embedding: gradchecked in float64, and
matched against PyTorch (forward and gradients, float32 and float64) where it is installed."""

from __future__ import annotations

import numpy as np
import pytest

import gradwell as gw

F = gw.nn.functional

# (name, gradwell function, torch function name, input shapes, keyword arguments)
CONV = [
    ("conv2d", F.conv2d, "conv2d", [(2, 3, 7, 6), (4, 3, 3, 3), (4,)], {"padding": 1}),
    ("conv2d_groups", F.conv2d, "conv2d", [(2, 4, 9, 8), (6, 2, 3, 3), (6,)],
     {"stride": 2, "dilation": 2, "groups": 2}),
    ("conv2d_same_even", F.conv2d, "conv2d", [(1, 2, 5, 6), (3, 2, 2, 4)], {"padding": "same"}),
    ("conv2d_rect", F.conv2d, "conv2d", [(2, 3, 8, 8), (4, 3, 3, 2)],
     {"stride": (2, 1), "padding": (1, 0)}),
    ("conv2d_one_channel", F.conv2d, "conv2d", [(3, 1, 9, 8), (2, 1, 5, 3), (2,)],
     {"padding": (2, 1), "stride": (1, 2)}),
    ("conv2d_one_channel_direct", F.conv2d, "conv2d", [(3, 1, 9, 8), (2, 1, 5, 3), (2,)],
     {"padding": (2, 1), "dilation": (1, 2)}),
    ("conv2d_pointwise", F.conv2d, "conv2d", [(2, 5, 4, 3), (3, 5, 1, 1), (3,)], {}),
    ("conv1d", F.conv1d, "conv1d", [(2, 3, 9), (4, 3, 3), (4,)], {"stride": 2, "padding": 1}),
    ("conv1d_same", F.conv1d, "conv1d", [(2, 4, 7), (2, 2, 3)], {"padding": "same", "groups": 2}),
    ("max_pool2d", F.max_pool2d, "max_pool2d", [(2, 3, 7, 6)], {"kernel_size": 3, "stride": 2,
                                                               "padding": 1}),
    ("max_pool2d_dilated", F.max_pool2d, "max_pool2d", [(1, 2, 8, 8)],
     {"kernel_size": 2, "dilation": 2}),
    ("avg_pool2d", F.avg_pool2d, "avg_pool2d", [(2, 3, 6, 7)], {"kernel_size": (2, 3),
                                                               "padding": 1}),
    ("max_pool1d", F.max_pool1d, "max_pool1d", [(2, 3, 9)], {"kernel_size": 3, "stride": 2}),
    ("avg_pool1d", F.avg_pool1d, "avg_pool1d", [(2, 3, 9)], {"kernel_size": 2}),
    ("adaptive_avg_pool2d", F.adaptive_avg_pool2d, "adaptive_avg_pool2d", [(2, 3, 7, 5)],
     {"output_size": (3, 2)}),
    ("pad_reflect", F.pad, "pad", [(2, 3, 4, 5)], {"pad": (2, 1, 1, 3), "mode": "reflect"}),
    ("pad_replicate", F.pad, "pad", [(2, 3, 4)], {"pad": (3, 1), "mode": "replicate"}),
    ("pad_constant", F.pad, "pad", [(2, 3, 4)], {"pad": (1, 2, 0, 1), "value": 0.5}),
    ("conv_transpose2d", F.conv_transpose2d, "conv_transpose2d",
     [(2, 3, 4, 5), (3, 2, 3, 3), (2,)], {"stride": 2, "padding": 1, "output_padding": 1}),
    ("conv_transpose2d_groups", F.conv_transpose2d, "conv_transpose2d",
     [(1, 4, 3, 4), (4, 3, 2, 3), (6,)], {"stride": (2, 1), "groups": 2, "dilation": (1, 2)}),
    ("conv_transpose2d_plain", F.conv_transpose2d, "conv_transpose2d", [(2, 2, 3, 3), (2, 3, 3, 3)],
     {}),
    ("max_pool2d_ceil", F.max_pool2d, "max_pool2d", [(2, 3, 8, 6)],
     {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}),
    ("max_pool1d_ceil", F.max_pool1d, "max_pool1d", [(2, 3, 8)],
     {"kernel_size": 3, "stride": 2, "ceil_mode": True}),
    ("avg_pool2d_ceil", F.avg_pool2d, "avg_pool2d", [(2, 3, 7, 6)],
     {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}),
    ("avg_pool2d_no_pad_count", F.avg_pool2d, "avg_pool2d", [(2, 3, 6, 7)],
     {"kernel_size": (2, 3), "padding": 1, "count_include_pad": False}),
    ("avg_pool2d_ceil_no_pad_count", F.avg_pool2d, "avg_pool2d", [(1, 2, 8, 5)],
     {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True, "count_include_pad": False}),
    ("avg_pool1d_ceil", F.avg_pool1d, "avg_pool1d", [(2, 3, 9)],
     {"kernel_size": 2, "ceil_mode": True, "count_include_pad": False}),
    ("nearest_size", F.interpolate, "interpolate", [(2, 3, 4, 5)], {"size": (7, 3)}),
    ("nearest_scale", F.interpolate, "interpolate", [(2, 3, 4, 5)], {"scale_factor": 2.5}),
    ("nearest_1d", F.interpolate, "interpolate", [(2, 3, 5)], {"scale_factor": 2}),
    ("bilinear_size", F.interpolate, "interpolate", [(2, 3, 4, 5)],
     {"size": (7, 9), "mode": "bilinear", "align_corners": False}),
    ("bilinear_down", F.interpolate, "interpolate", [(1, 2, 9, 7)],
     {"size": (4, 3), "mode": "bilinear"}),
    ("bilinear_scale", F.interpolate, "interpolate", [(2, 3, 4, 5)],
     {"scale_factor": (1.5, 2.0), "mode": "bilinear"}),
    ("bilinear_corners", F.interpolate, "interpolate", [(2, 3, 4, 5)],
     {"size": (8, 1), "mode": "bilinear", "align_corners": True}),
    ("bilinear_corners_scale", F.interpolate, "interpolate", [(1, 1, 3, 4)],
     {"scale_factor": 3, "mode": "bilinear", "align_corners": True}),
    ("layer_norm", F.layer_norm, "layer_norm", [(3, 4, 5), (4, 5), (4, 5)],
     {"normalized_shape": (4, 5)}),
    ("group_norm", F.group_norm, "group_norm", [(3, 6, 4, 2), (6,), (6,)], {"num_groups": 3}),
]  # fmt: skip


def _args(name, arrays, kwargs):
    """Positional order differs: norms take (x, shape/groups, weight, bias)."""
    if name == "layer_norm":
        return (arrays[0], kwargs["normalized_shape"], *arrays[1:]), {}
    if name == "group_norm":
        return (arrays[0], kwargs["num_groups"], *arrays[1:]), {}
    return tuple(arrays), kwargs


def _inputs(shapes, seed, dtype):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


@pytest.mark.parametrize("case", CONV, ids=[c[0] for c in CONV])
def test_gradcheck_float64(case):
    name, fn, _, shapes, kwargs = case
    xs = [gw.tensor(a, dtype="float64", requires_grad=True) for a in _inputs(shapes, 0, np.float64)]

    def f(*ts):
        args, kw = _args(name, ts, kwargs)
        return fn(*args, **kw)

    assert gw.gradcheck(f, xs)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CONV, ids=[c[0] for c in CONV])
def test_matches_pytorch(case, dtype):
    torch = pytest.importorskip("torch")
    name, fn, torch_name, shapes, kwargs = case
    arrays = _inputs(shapes, 1, dtype)
    ours = [gw.tensor(a, dtype=dtype, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    a, k = _args(name, ours, kwargs)
    out = fn(*a, **k)
    a, k = _args(name, theirs, kwargs)
    expected = getattr(torch.nn.functional, torch_name)(*a, **k)
    assert out.dtype == dtype
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), rtol=tol, atol=tol)
    weights = np.random.default_rng(2).standard_normal(out.shape).astype(dtype)
    (out * gw.tensor(weights, dtype=dtype)).sum().backward()
    (expected * torch.tensor(weights)).sum().backward()
    for mine, ref in zip(ours, theirs):
        assert mine.grad.dtype == dtype
        np.testing.assert_allclose(mine.grad.numpy(), ref.grad.numpy(), rtol=tol, atol=tol)


def test_conv2d_layer_shapes_and_errors():
    conv = gw.nn.Conv2d(3, 8, 3, padding="same", rng=0)
    assert conv(gw.zeros(2, 3, 10, 10)).shape == (2, 8, 10, 10)
    assert conv.weight.shape == (8, 3, 3, 3) and conv.bias.shape == (8,)
    with pytest.raises(ValueError, match="in_channels .* divisible by groups"):
        gw.nn.Conv2d(3, 8, 3, groups=2)
    with pytest.raises(ValueError, match="padding='same' needs stride 1"):
        gw.nn.Conv2d(3, 8, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match=r"expected a \(N, C, H, W\) input"):
        conv(gw.zeros(3, 10, 10))
    with pytest.raises(ValueError, match="input has 4 channels"):
        conv(gw.zeros(1, 4, 10, 10))
    with pytest.raises(ValueError, match="does not fit"):
        gw.nn.Conv2d(1, 1, 5)(gw.zeros(1, 1, 3, 3))


def test_ceil_mode_keeps_the_last_partial_window():
    x = gw.zeros(1, 1, 8, 6)
    assert F.max_pool2d(x, 3, 2, 1).shape == (1, 1, 4, 3)
    assert F.max_pool2d(x, 3, 2, 1, ceil_mode=True).shape == (1, 1, 5, 4)
    assert gw.nn.AvgPool1d(2, ceil_mode=True)(gw.zeros(2, 3, 9)).shape == (2, 3, 5)
    # the last window holds the input's last value alone: its mean is that value
    out = F.avg_pool1d(gw.arange(9.0).reshape(1, 1, 9), 2, ceil_mode=True)
    assert out.numpy()[0, 0].tolist() == [0.5, 2.5, 4.5, 6.5, 8.0]


def test_conv_transpose2d_is_the_adjoint_of_conv2d():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 9, 8))
    w = rng.standard_normal((6, 2, 3, 3))  # conv: 4 -> 6 channels, groups 2
    kw = {"stride": 2, "padding": 1, "dilation": (1, 2), "groups": 2}
    f64 = lambda a: gw.tensor(a, dtype="float64")  # noqa: E731
    y = F.conv2d(f64(x), f64(w), **kw).numpy()
    g = rng.standard_normal(y.shape)
    # <conv(x), g> = <x, conv_transpose(g)>, the transpose with the same weight and output_padding
    # that gives back x's size
    back = F.conv_transpose2d(f64(g), f64(w), output_padding=(0, 1), **kw).numpy()
    assert back.shape == x.shape
    assert np.sum(y * g) == pytest.approx(np.sum(x * back), rel=1e-10)


def test_conv_transpose2d_layer_and_upsample_match_pytorch_modules():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal((2, 4, 5, 6)).astype(np.float32)
    ours = gw.nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2, rng=0)
    theirs = torch.nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2)
    assert tuple(theirs.weight.shape) == ours.weight.shape == (4, 3, 3, 3)  # (in, out/groups, ..)
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(ours.weight.numpy()))
        theirs.bias.copy_(torch.tensor(np.arange(6, dtype=np.float32)))
    ours.bias.data[...] = np.arange(6)
    expected = theirs(torch.tensor(x)).detach().numpy()
    np.testing.assert_allclose(ours(gw.tensor(x)).numpy(), expected, rtol=1e-5, atol=1e-5)
    for kw in ({"scale_factor": 2}, {"size": (7, 4), "mode": "bilinear", "align_corners": True}):
        up = gw.nn.Upsample(**kw)(gw.tensor(x)).numpy()
        np.testing.assert_allclose(up, torch.nn.Upsample(**kw)(torch.tensor(x)).numpy(), atol=1e-6)


def test_conv_transpose2d_and_interpolate_errors_name_the_argument():
    with pytest.raises(ValueError, match="output_padding .* smaller than the stride"):
        F.conv_transpose2d(gw.zeros(1, 2, 3, 3), gw.zeros(2, 2, 3, 3), output_padding=1)
    with pytest.raises(ValueError, match=r"input has 3 channels and the weight 2"):
        gw.nn.ConvTranspose2d(2, 4, 3)(gw.zeros(1, 3, 5, 5))
    with pytest.raises(ValueError, match="divisible by groups"):
        gw.nn.ConvTranspose2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="exactly one of size and scale_factor"):
        F.interpolate(gw.zeros(1, 1, 4, 4))
    with pytest.raises(ValueError, match="mode must be one of nearest, bilinear"):
        gw.nn.Upsample(scale_factor=2, mode="bicubic")
    with pytest.raises(ValueError, match="align_corners applies to mode='bilinear' only"):
        F.interpolate(gw.zeros(1, 1, 4, 4), scale_factor=2, align_corners=True)
    with pytest.raises(ValueError, match=r"expects a \(N, C, H, W\) input"):
        F.interpolate(gw.zeros(1, 1, 4), scale_factor=2, mode="bilinear")
    with pytest.raises(ValueError, match="size must be a positive integer or 2 of them"):
        F.interpolate(gw.zeros(1, 1, 4, 4), size=(3,))


def test_max_pool_hands_a_tie_to_the_first_maximum_and_a_nan_wins():
    # PyTorch's rule: the first of equal maxima in the window's row-major order, and NaN
    # over numbers; with overlapping windows a place can take several gradients.
    x = gw.tensor([[[[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, np.nan, 2.0]]]], requires_grad=True)
    out = F.max_pool2d(x, 2, stride=1)
    np.testing.assert_array_equal(out.numpy()[0, 0], [[1.0, 1.0], [np.nan, np.nan]])
    out.backward(gw.tensor(np.array([[[[1.0, 10.0], [100.0, 1000.0]]]], np.float32)))
    np.testing.assert_array_equal(x.grad.numpy()[0, 0], [[1, 10, 0], [0, 0, 0], [0, 1100, 0]])


def test_conv_outputs_are_channels_last_in_memory():
    # the layout the next layer reads without a copy (docs/architecture.md)
    x = gw.randn(2, 3, 8, 8, rng=0)
    y = F.max_pool2d(gw.nn.Conv2d(3, 4, 3, rng=0)(x), 2)
    assert y.shape == (2, 4, 3, 3) and y.data.transpose(0, 2, 3, 1).flags.c_contiguous


def test_batchnorm2d_and_1d_on_sequences_match_pytorch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal((4, 3, 5, 6)).astype(np.float32)
    for ours, theirs, arr in [
        (gw.nn.BatchNorm2d(3), torch.nn.BatchNorm2d(3), x),
        (gw.nn.BatchNorm1d(3), torch.nn.BatchNorm1d(3), x[:, :, :, 0]),
    ]:
        for _ in range(2):
            t = torch.tensor(arr, requires_grad=True)
            g = gw.tensor(arr, requires_grad=True)
            out, ref = ours(g), theirs(t)
            np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), atol=1e-5)
            (out * out).sum().backward()
            (ref * ref).sum().backward()
            np.testing.assert_allclose(g.grad.numpy(), t.grad.numpy(), atol=1e-4)
            np.testing.assert_allclose(ours.weight.grad.numpy(), theirs.weight.grad.numpy(),
                                       rtol=1e-4)  # fmt: skip
            ours.weight.grad = None
            theirs.weight.grad = None
        np.testing.assert_allclose(ours.running_var.numpy(), theirs.running_var.numpy(), rtol=1e-5)
        ours.eval()
        theirs.eval()
        np.testing.assert_allclose(
            ours(gw.tensor(arr)).numpy(), theirs(torch.tensor(arr)).detach().numpy(), atol=1e-5
        )
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        gw.nn.BatchNorm2d(3)(gw.zeros(2, 3))


def test_embedding_padding_idx_takes_no_gradient():
    emb = gw.nn.Embedding(5, 3, padding_idx=0, rng=0)
    assert np.all(emb.weight.numpy()[0] == 0)
    ids = np.array([[0, 2, 2], [4, 0, 1]])
    out = emb(ids)
    assert out.shape == (2, 3, 3)
    out.sum().backward()
    counts = np.bincount(ids.ravel(), minlength=5).astype(np.float32)
    counts[0] = 0
    np.testing.assert_array_equal(emb.weight.grad.numpy(), np.repeat(counts[:, None], 3, 1))
    with pytest.raises(IndexError, match="id 5 is out of range for 5"):
        emb([[5]])
    with pytest.raises(TypeError, match="integer ids"):
        emb([[0.5]])


def test_small_cnn_learns_synthetic_images():
    """Bright blob top-left vs bottom-right: a conv net separates them within a few steps."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 64)
    x = rng.standard_normal((64, 1, 8, 8)).astype(np.float32) * 0.5
    for i, label in enumerate(y):
        x[i, 0, 4 * label : 4 * label + 4, 4 * label : 4 * label + 4] += 1.5
    model = gw.nn.Sequential(
        gw.nn.Conv2d(1, 4, 3, padding=1, rng=0), gw.nn.BatchNorm2d(4), gw.nn.ReLU(),
        gw.nn.MaxPool2d(2), gw.nn.Flatten(), gw.nn.Linear(64, 2, rng=0),
    )  # fmt: skip
    opt = gw.optim.Adam(model.parameters(), lr=0.05)
    loss_fn = gw.nn.CrossEntropyLoss()
    for _ in range(30):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
    model.eval()
    accuracy = (model(x).numpy().argmax(1) == y).mean()
    assert accuracy > 0.95


def test_small_conv_autoencoder_learns_to_reconstruct():
    """Down with a strided conv and max pooling, up with ConvTranspose2d and Upsample."""
    rng = np.random.default_rng(0)
    x = np.zeros((32, 1, 8, 8), np.float32)
    for i, (r, c) in enumerate(rng.integers(0, 6, (32, 2))):
        x[i, 0, r : r + 3, c : c + 3] = 1.0  # a bright square somewhere
    nn = gw.nn
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, stride=2, padding=1, rng=0), nn.ReLU(), nn.MaxPool2d(2),  # 2x2
        nn.Upsample(scale_factor=2, mode="bilinear"), nn.ConvTranspose2d(8, 8, 4, 2, 1, rng=1),
        nn.ReLU(), nn.Conv2d(8, 1, 3, padding=1, rng=2),
    )  # fmt: skip
    assert model(gw.tensor(x)).shape == x.shape
    opt = gw.optim.Adam(model.parameters(), lr=0.02)
    losses = []
    for _ in range(60):
        opt.zero_grad()
        loss = gw.nn.functional.mse_loss(model(gw.tensor(x)), gw.tensor(x))
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * x.var()  # far better than the mean pixel everywhere


# Bad arguments are refused at construction (or call) with what was expected, what was
# received and where: the layer or function and the argument, 1-D ones as given.
BAD_LAYERS = [
    (lambda: gw.nn.Conv2d(3, 4, 2.5), "Conv2d: kernel_size must be an integer >= 1 or a pair"),
    (lambda: gw.nn.Conv1d(3, 4, 0), "Conv1d: kernel_size must be an integer >= 1; got 0"),
    (lambda: gw.nn.Conv1d(3, 4, 3, stride=0), "Conv1d: stride must be an integer >= 1; got 0$"),
    (lambda: gw.nn.Conv1d(3, 4, 3, padding=-1), "Conv1d: padding must be an integer >= 0; got -1"),
    (lambda: gw.nn.Conv2d(3, 4, 3, init=5), "Conv2d: init must be a name or a callable; got 5"),
    (lambda: gw.nn.ConvTranspose2d(2, 4, 3, stride=2, output_padding=2),
     r"ConvTranspose2d: output_padding \(2, 2\) must be smaller than the stride"),
    (lambda: gw.nn.MaxPool2d(0), "MaxPool2d: kernel_size must be an integer >= 1"),
    (lambda: gw.nn.MaxPool2d(2, stride=0), "MaxPool2d: stride must be an integer >= 1"),
    (lambda: gw.nn.MaxPool1d(2, padding=2), r"MaxPool1d: padding \(2,\) must be at most half"),
    (lambda: gw.nn.AvgPool2d((2,)), r"AvgPool2d: kernel_size .* or a pair of them; got \(2,\)"),
    (lambda: gw.nn.AvgPool1d(3, padding=-1), "AvgPool1d: padding must be an integer >= 0"),
    (lambda: gw.nn.AdaptiveAvgPool2d((2, 3, 4)), r"output_size .*; got \(2, 3, 4\)"),
    (lambda: gw.nn.AdaptiveAvgPool2d(0), "AdaptiveAvgPool2d: output_size must be an integer"),
    (lambda: F.conv2d(gw.zeros(1, 2, 5, 5), gw.zeros(2, 2, 3, 3), groups=0),
     "conv2d: groups must be a positive integer; got 0"),
]  # fmt: skip


@pytest.mark.parametrize("make, match", BAD_LAYERS)
def test_bad_layer_arguments_are_refused_naming_layer_and_argument(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_call_errors_name_the_function_and_the_layer():
    with pytest.raises(ValueError, match=r"conv1d in Conv1d\(3, 4, .*input has 2 channels"):
        gw.nn.Conv1d(3, 4, 3)(gw.zeros(1, 2, 8))
    with pytest.raises(ValueError, match=r"conv1d: a kernel of \(5,\) .* padded input of 3$"):
        F.conv1d(gw.zeros(1, 3, 3), gw.zeros(4, 3, 5))
    with pytest.raises(ValueError, match=r"conv2d in Conv2d\(.*expected a \(N, C, H, W\) input"):
        gw.nn.Conv2d(3, 4, 3)(gw.zeros(3, 8, 8))
    with pytest.raises(ValueError, match=r"avg_pool2d in AvgPool2d\(.*\) does not fit"):
        gw.nn.AvgPool2d(5)(gw.zeros(1, 3, 3, 3))
    with pytest.raises(ValueError, match=r"max_pool1d: expected a \(N, C, L\) input"):
        F.max_pool1d(gw.zeros(3, 8), 2)
