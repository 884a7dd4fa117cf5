"""Every exportable layer, run by onnxruntime, against gradwell's own outputs.

Tolerance (``kit``): float32 inputs; ``|onnx - gradwell| <= 1e-5 + 1e-5 * |gradwell|``.
Each file is run on a batch of a different size than the example it was traced with,
so the batch axis is free.
"""

import numpy as np
import pytest
from export.kit import ATOL, RTOL, run_onnx

import gradwell as gw

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
nn = gw.nn


def randn(*shape, seed=0, scale=1.0):
    return (np.random.default_rng(seed).normal(size=shape) * scale).astype(np.float32)


def trained_statistics(model, x):
    """A few training-mode passes, so BatchNorm's running statistics are not the defaults."""
    model.train()
    with gw.no_grad():
        for k in range(3):
            model(gw.tensor(x * (1 + k) + k))
    model.eval()


def randomised(model, seed=0):
    """Weights away from their initial values (a BatchNorm's gamma 1 and beta 0 hide bugs)."""
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        p.data[...] = rng.normal(size=p.shape).astype(p.data.dtype) * 0.5
    return model


def check(tmp_path, model, example, batch):
    path = tmp_path / "model.onnx"
    gw.export_onnx(model, path, example)
    got = run_onnx(path, {"input": batch})["output"]
    np.testing.assert_allclose(got, gw.predict(model, batch), rtol=RTOL, atol=ATOL)


ACTIVATIONS = [
    nn.ReLU(),
    nn.LeakyReLU(0.1),
    nn.ELU(0.7),
    nn.GELU(),
    nn.GELU("tanh"),
    nn.Sigmoid(),
    nn.Tanh(),
    nn.Softplus(),
    nn.Softplus(beta=2.0, threshold=5.0),
    nn.Softmax(),
    nn.LogSoftmax(),
    nn.SiLU(),
    nn.SELU(),
    nn.CELU(0.5),
    nn.Mish(),
    nn.Hardtanh(-0.5, 2.0),
    nn.ReLU6(),
    nn.Hardsigmoid(),
    nn.Hardswish(),
    nn.Softsign(),
    nn.LogSigmoid(),
]


@pytest.mark.parametrize("activation", ACTIVATIONS, ids=lambda m: repr(m))
def test_activations(tmp_path, activation):
    # inputs from -30 to 30: both sides of softplus' threshold, the clips and saturation
    batch = np.concatenate([np.linspace(-30, 30, 61, dtype=np.float32), randn(19, scale=4)])
    model = nn.Sequential(nn.Linear(4, 4, rng=0), activation)
    model[0].weight.data[...] = np.eye(4, dtype=np.float32)
    check(tmp_path, model, randn(2, 4), batch.reshape(20, 4))


@pytest.mark.parametrize(
    ("model", "shape"),
    [
        (nn.Linear(5, 3, rng=0), (5,)),
        (nn.Linear(5, 3, bias=False, rng=0), (5,)),
        (nn.Linear(5, 3, rng=0), (4, 5)),  # any leading axes
        (
            nn.Sequential(nn.Linear(5, 8, rng=0), nn.Dropout(0.5, rng=0), nn.Linear(8, 2, rng=1)),
            (5,),
        ),
        (nn.Sequential(nn.Identity(), nn.Sequential(nn.Linear(5, 4, rng=0), nn.ReLU())), (5,)),
        (nn.Sequential(*[nn.Linear(5, 5, rng=0)] * 2), (5,)),  # one layer used twice
        (nn.Flatten(), (2, 3, 4)),
        (nn.Flatten(1, 2), (2, 3, 4)),
        (nn.Flatten(2, 3), (2, 3, 4)),
        (nn.LayerNorm(6), (6,)),
        (nn.LayerNorm((3, 4), elementwise_affine=False), (2, 3, 4)),
        (nn.LayerNorm(4, bias=False), (3, 4)),
        (nn.GroupNorm(2, 4), (4, 5)),
        (nn.GroupNorm(3, 6), (6, 3, 3)),
    ],
    ids=repr,
)
def test_layers(tmp_path, model, shape):
    randomised(model)
    check(tmp_path, model, randn(2, *shape, seed=1), randn(7, *shape, seed=2, scale=3))


@pytest.mark.parametrize(
    ("model", "shape"),
    [
        (nn.BatchNorm1d(4), (4,)),
        (nn.BatchNorm1d(4, affine=False), (4,)),
        (nn.BatchNorm1d(3), (3, 6)),
        (nn.BatchNorm2d(3, eps=1e-3), (3, 4, 5)),
    ],
    ids=repr,
)
def test_batch_norm_in_eval_mode(tmp_path, model, shape):
    randomised(model)
    trained_statistics(model, randn(16, *shape, seed=3))
    assert not np.allclose(model.running_mean.data, 0)
    check(tmp_path, model, randn(2, *shape), randn(5, *shape, seed=4, scale=2))


@pytest.mark.parametrize(
    ("model", "shape"),
    [
        (nn.Conv2d(3, 4, 3, rng=0), (3, 8, 7)),
        (nn.Conv2d(4, 6, (3, 2), stride=2, padding=1, dilation=(2, 1), groups=2, rng=0), (4, 9, 8)),
        (nn.Conv2d(3, 4, 4, padding="same", bias=False, rng=0), (3, 6, 6)),  # odd pad after
        (nn.Conv1d(3, 4, 3, stride=2, padding=2, dilation=2, rng=0), (3, 11)),
        (nn.Conv1d(4, 4, 2, padding="same", groups=4, rng=0), (4, 7)),
        (nn.MaxPool2d(2), (3, 8, 6)),
        (nn.MaxPool2d(3, stride=2, padding=1), (2, 7, 7)),
        (nn.MaxPool2d(2, stride=1, dilation=2), (2, 6, 5)),
        (nn.MaxPool1d(3, 2, 1), (2, 9)),
        (nn.AvgPool2d(3, stride=2, padding=1), (2, 7, 6)),
        (nn.AvgPool2d((2, 3)), (2, 6, 6)),
        (nn.AvgPool1d(2), (3, 8)),
        (nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True), (2, 8, 6)),
        (nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False), (2, 7, 6)),
        (nn.AvgPool2d(3, stride=2, ceil_mode=True), (2, 8, 6)),
        (nn.AvgPool1d(2, ceil_mode=True, count_include_pad=False), (3, 9)),
        (nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=1, rng=0), (3, 5, 4)),
        (
            nn.ConvTranspose2d(
                4, 6, (2, 3), stride=(1, 2), dilation=(2, 1), groups=2, bias=False, rng=0
            ),
            (4, 4, 5),
        ),  # fmt: skip
        (nn.Upsample(scale_factor=2), (2, 3, 4)),
        (nn.Upsample(size=(7, 5), mode="bilinear"), (2, 4, 3)),
        (nn.Upsample(scale_factor=1.5, mode="bilinear", align_corners=True), (2, 4, 4)),
        (nn.Upsample(size=7), (3, 5)),
        (nn.AdaptiveAvgPool2d((2, 3)), (3, 7, 5)),
        (nn.AdaptiveAvgPool2d(1), (3, 4, 4)),
        (nn.AdaptiveAvgPool2d((None, 2)), (2, 3, 5)),
    ],
    ids=repr,
)
def test_convolution_and_pooling(tmp_path, model, shape):
    check(tmp_path, model, randn(2, *shape), randn(3, *shape, seed=5))


def test_a_small_cnn(tmp_path):
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, rng=0), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 8, 3, padding=1, rng=1), nn.BatchNorm2d(8), nn.GELU(),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Dropout(0.3, rng=0), nn.Linear(32, 10, rng=2),
    )  # fmt: skip
    trained_statistics(model, randn(8, 1, 12, 12))
    check(tmp_path, model, randn(1, 1, 12, 12), randn(6, 1, 12, 12, seed=7))


def test_embedding_takes_int64_ids(tmp_path):
    model = nn.Sequential(
        nn.Embedding(10, 3, padding_idx=0, rng=0), nn.Flatten(), nn.Linear(12, 2, rng=1)
    )
    path = tmp_path / "ids.onnx"
    proto = gw.export_onnx(model, path, np.zeros((1, 4), np.int64))
    assert proto.graph.input[0].type.tensor_type.elem_type == 7  # INT64
    ids = np.random.default_rng(0).integers(0, 10, size=(5, 4))
    got = run_onnx(path, {"input": ids})["output"]
    np.testing.assert_allclose(got, gw.predict(model, ids), rtol=RTOL, atol=ATOL)


def test_float64_models_export_in_float64(tmp_path):
    model = nn.Sequential(nn.Linear(3, 4, rng=0, dtype=np.float64), nn.Tanh())
    x = np.random.default_rng(0).normal(size=(4, 3))
    check(tmp_path, model, x, x)


def test_export_leaves_the_modes_and_the_model_as_they_were(tmp_path):
    model = nn.Sequential(nn.Linear(3, 4, rng=0), nn.BatchNorm1d(4), nn.Dropout(0.5, rng=0))
    model.train()
    before = {k: v.copy() for k, v in model.state_dict().items()}
    gw.export_onnx(model, tmp_path / "m.onnx", randn(4, 3))
    assert all(m.training for m in model.modules())
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])  # BatchNorm's statistics did not move


class Doubler(nn.Module):
    def forward(self, x):
        return x * 2


class MyLinear(nn.Linear):
    def forward(self, x):
        return super().forward(x) + 1


@pytest.mark.parametrize(
    ("model", "where"),
    [
        (nn.Sequential(nn.Linear(3, 3), nn.Sequential(nn.ReLU(), Doubler())),
         "module '1.1' is a Doubler"),
        (Doubler(), "the model is a Doubler"),
        (nn.Sequential(MyLinear(3, 3)), "module '0' is a MyLinear"),  # not taken for its base
        (nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3, track_running_stats=False)),
         "module '1' (BatchNorm1d): track_running_stats=False"),
    ],
    ids=["nested", "root", "subclass", "batch-statistics"],
)  # fmt: skip
def test_an_unsupported_module_is_named_and_nothing_is_written(tmp_path, model, where):
    path = tmp_path / "m.onnx"
    with pytest.raises(gw.export.ExportError, match=where.replace("(", r"\(").replace(")", r"\)")):
        gw.export_onnx(model, path, randn(2, 3))
    assert list(tmp_path.iterdir()) == []


def test_a_bad_example_is_refused():
    with pytest.raises(ValueError, match=r"shape \(N, ...\) with N >= 1"):
        gw.export_onnx(nn.Linear(3, 2), "never.onnx", np.zeros((0, 3), np.float32))
    with pytest.raises(TypeError, match="expected a gw.nn.Module"):
        gw.export_onnx(lambda x: x, "never.onnx", np.zeros((1, 3), np.float32))
