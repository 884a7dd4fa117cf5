"""Each built-in layer as ONNX nodes: one converter per module type, in one table.

:func:`convert` walks the model with a real input, so every converter knows the shape
and dtype of the value it receives (a Flatten or an adaptive pooling needs them), and
emits the nodes that compute what the module's ``forward`` computes in eval mode.
An activation with no ONNX operator of its own is composed from the definition in
``gradwell.nn.functional`` (GELU from Erf, SiLU from Sigmoid, Mish from Softplus).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import nn
from ..autograd.tensor import Tensor
from ..nn.conv import _padding, _pair, _single
from ..nn.pooling import _bins
from ..nn.upsampling import interpolation_matrices
from .graph import ExportError, Graph

#: module type -> fn(graph, module, input name, input value) -> output name
Converter = Callable[[Graph, Any, str, np.ndarray], str]
CONVERTERS: dict[type, Converter] = {}


def converts(*types: type) -> Callable[[Converter], Converter]:
    def add(fn: Converter) -> Converter:
        for t in types:
            CONVERTERS[t] = fn
        return fn

    return add


def supported() -> list[str]:
    """The names of the module types that export, sorted."""
    return sorted({t.__name__ for t in CONVERTERS} | {"Sequential"})


def convert(g: Graph, module: Any, x: str, value: np.ndarray, path: str = "") -> tuple[str, Any]:
    """Append ``module``'s nodes to ``g``; returns the output's name and value.

    The model must be in eval mode under ``no_grad`` (the caller's job). Types are
    matched exactly: a subclass may have changed ``forward``, so it is not exported
    as its base class.
    """
    if type(module) is nn.Sequential:  # as its forward runs: a layer used twice runs twice
        for name, child in module._modules.items():
            x, value = convert(g, child, x, value, f"{path}.{name}" if path else name)
        return x, value
    converter = CONVERTERS.get(type(module))
    where = f"module {path!r}" if path else "the model"
    if converter is None:
        raise ExportError(
            f"export_onnx: {where} is a {type(module).__name__}, which has no ONNX conversion; "
            f"supported: {', '.join(supported())}"
        )
    out = module(Tensor(value))
    out_value = out.data if isinstance(out, Tensor) else np.asarray(out)
    try:
        name = converter(g, module, x, value)
    except ExportError as e:
        raise ExportError(f"export_onnx: {where} ({type(module).__name__}): {e}") from None
    return name, out_value


def _scalar(g: Graph, v: float, like: np.ndarray) -> str:
    return g.constant(np.asarray(v, dtype=like.dtype), "scalar")


# ------------------------------------------------------------------ layers
@converts(nn.Linear)
def _linear(g: Graph, m: Any, x: str, value: np.ndarray) -> str:
    y = g.op("MatMul", [x, g.constant(m.weight.data.T, "weight")], "linear")
    return y if m.bias is None else g.op("Add", [y, g.constant(m.bias.data, "bias")], "linear")


@converts(nn.Dropout, nn.Identity)
def _identity(g: Graph, m: Any, x: str, value: np.ndarray) -> str:
    return x  # eval mode: Dropout passes its input through


@converts(nn.Flatten)
def _flatten(g: Graph, m: Any, x: str, value: np.ndarray) -> str:
    start, end = m.start_axis % value.ndim, m.end_axis % value.ndim
    # 0 copies the (batch) axes before the merged ones; the axes after it are fixed sizes.
    shape = [0] * start + [-1] + list(value.shape[end + 1 :])
    return g.op("Reshape", [x, g.constant(np.array(shape, np.int64), "shape")], "flatten")


@converts(nn.BatchNorm1d, nn.BatchNorm2d)
def _batch_norm(g: Graph, m: Any, x: str, value: np.ndarray) -> str:
    if not m.track_running_stats:
        raise ExportError(
            "track_running_stats=False normalises with the statistics of each batch even in "
            "eval mode; ONNX BatchNormalization needs running statistics"
        )
    c, dt = m.num_features, value.dtype
    scale = m.weight.data if m.affine else np.ones(c, dt)
    shift = m.bias.data if m.affine else np.zeros(c, dt)
    inputs = [x, g.constant(scale, "bn_scale"), g.constant(shift, "bn_bias")]
    inputs += [g.constant(m.running_mean.data, "bn_mean"), g.constant(m.running_var.data, "bn_var")]
    return g.op("BatchNormalization", inputs, "batch_norm", epsilon=m.eps)


@converts(nn.LayerNorm)
def _layer_norm(g: Graph, m: Any, x: str, value: np.ndarray) -> str:
    shape, dt = m.normalized_shape, value.dtype
    scale = m.weight.data if m.weight is not None else np.ones(shape, dt)
    inputs = [x, g.constant(scale, "ln_scale")]
    if m.bias is not None:
        inputs.append(g.constant(m.bias.data, "ln_bias"))
    return g.op("LayerNormalization", inputs, "layer_norm", axis=-len(shape), epsilon=m.eps)


@converts(nn.GroupNorm)
def _group_norm(g: Graph, m: Any, x: str, value: np.ndarray) -> str:
    # As gradwell.nn.normalization.group_norm: each group over its channels and positions.
    grouped = g.op("Reshape", [x, g.constant(np.array([0, m.num_groups, -1]), "shape")])
    centred = g.op("Sub", [grouped, g.op("ReduceMean", [grouped], axes=[2], keepdims=1)])
    var = g.op("ReduceMean", [g.op("Mul", [centred, centred])], axes=[2], keepdims=1)
    std = g.op("Sqrt", [g.op("Add", [var, _scalar(g, m.eps, value)])])
    out = g.op("Reshape", [g.op("Div", [centred, std]), g.op("Shape", [x])], "group_norm")
    per_channel = (m.num_channels,) + (1,) * (value.ndim - 2)
    if m.weight is not None:
        out = g.op("Mul", [out, g.constant(m.weight.data.reshape(per_channel), "gn_scale")])
    if m.bias is not None:
        out = g.op("Add", [out, g.constant(m.bias.data.reshape(per_channel), "gn_bias")])
    return out


@converts(nn.Embedding)
def _embedding(g: Graph, m: Any, x: str, value: np.ndarray) -> str:
    return g.op("Gather", [g.constant(m.weight.data, "embedding"), x], "embedding", axis=0)


# ------------------------------------------------------------------ convolution and pooling
def _spatial(m: Any, value: np.ndarray, kernel: tuple[int, ...]) -> dict[str, Any]:
    """strides, pads ([begins..., ends...]) and dilations as ONNX wants them, 1-D or 2-D.

    A 1-D layer is computed by gradwell as a 2-D one of height 1; ONNX takes it as is."""
    one = value.ndim == 3
    who = type(m).__name__

    def pair(v: Any, name: str) -> tuple[int, int]:
        return (1, _single(v, name, who)) if one else _pair(v, name, who)

    k2 = (1, kernel[0]) if one else (kernel[0], kernel[1])
    stride = k2 if m.stride is None else pair(m.stride, "stride")
    dilation = pair(getattr(m, "dilation", 1), "dilation")
    padding = m.padding
    if one and not isinstance(padding, str):
        padding = (0, _single(padding, "padding", who))
    (top, bottom), (left, right) = _padding(padding, k2, dilation, stride, who)
    if one:
        return {"strides": [stride[1]], "pads": [left, right], "dilations": [dilation[1]]}
    return {
        "strides": list(stride),
        "pads": [top, left, bottom, right],
        "dilations": list(dilation),
    }


@converts(nn.Conv1d, nn.Conv2d)
def _conv(g: Graph, m: Any, x: str, value: np.ndarray) -> str:
    inputs = [x, g.constant(m.weight.data, "conv_weight")]
    if m.bias is not None:
        inputs.append(g.constant(m.bias.data, "conv_bias"))
    attrs = _spatial(m, value, m.kernel_size)
    return g.op("Conv", inputs, "conv", kernel_shape=list(m.kernel_size), group=m.groups, **attrs)


def _kernel(m: Any, value: np.ndarray) -> tuple[int, ...]:
    who = type(m).__name__
    if value.ndim == 3:
        return (_single(m.kernel_size, "kernel_size", who),)
    return _pair(m.kernel_size, "kernel_size", who)


@converts(nn.MaxPool1d, nn.MaxPool2d)
def _max_pool(g: Graph, m: Any, x: str, value: np.ndarray) -> str:
    kernel = _kernel(m, value)
    attrs = _spatial(m, value, kernel)
    return g.op("MaxPool", [x], "max_pool", kernel_shape=list(kernel),
                ceil_mode=int(m.ceil_mode), **attrs)  # fmt: skip


@converts(nn.AvgPool1d, nn.AvgPool2d)
def _avg_pool(g: Graph, m: Any, x: str, value: np.ndarray) -> str:
    kernel = _kernel(m, value)
    attrs = _spatial(m, value, kernel)
    del attrs["dilations"]  # AveragePool has none before opset 19
    return g.op(
        "AveragePool", [x], "avg_pool", kernel_shape=list(kernel),
        count_include_pad=int(m.count_include_pad), ceil_mode=int(m.ceil_mode), **attrs,
    )  # fmt: skip


@converts(nn.AdaptiveAvgPool2d)
def _adaptive_avg_pool(g: Graph, m: Any, x: str, value: np.ndarray) -> str:
    # The same two products as gradwell's: Ph @ x @ Pw.T, with the bins of this input's size.
    size = m.output_size
    size = (size, size) if isinstance(size, (int, np.integer)) or size is None else size
    oh, ow = (s if o is None else o for o, s in zip(size, value.shape[2:]))
    rows = g.constant(_bins(value.shape[2], oh, value.dtype), "pool_rows")
    cols = g.constant(_bins(value.shape[3], ow, value.dtype).T, "pool_cols")
    return g.op("MatMul", [g.op("MatMul", [rows, x]), cols], "adaptive_avg_pool")


@converts(nn.ConvTranspose2d)
def _conv_transpose(g: Graph, m: Any, x: str, value: np.ndarray) -> str:
    # ONNX's weight layout is PyTorch's and gradwell's: (in, out/groups, kh, kw)
    inputs = [x, g.constant(m.weight.data, "conv_transpose_weight")]
    if m.bias is not None:
        inputs.append(g.constant(m.bias.data, "conv_transpose_bias"))
    who = type(m).__name__
    ph, pw = _pair(m.padding, "padding", who, minimum=0)
    return g.op(
        "ConvTranspose", inputs, "conv_transpose", kernel_shape=list(m.kernel_size),
        strides=list(_pair(m.stride, "stride", who)), pads=[ph, pw, ph, pw],
        dilations=list(_pair(m.dilation, "dilation", who)), group=m.groups,
        output_padding=list(_pair(m.output_padding, "output_padding", who, minimum=0)),
    )  # fmt: skip


@converts(nn.Upsample)
def _upsample(g: Graph, m: Any, x: str, value: np.ndarray) -> str:
    # The same products as gradwell's: x @ Aw.T, then Ah @ (...), for this input's size.
    mats = interpolation_matrices(value.shape, m.size, m.scale_factor, m.mode, m.align_corners,
                                  value.dtype)  # fmt: skip
    out = g.op("MatMul", [x, g.constant(mats[-1].T, "upsample_cols")], "upsample")
    if len(mats) == 2:
        out = g.op("MatMul", [g.constant(mats[0], "upsample_rows"), out], "upsample")
    return out


# ------------------------------------------------------------------ activations
def _unary(op_type: str, **attributes: Any) -> Converter:
    """One ONNX operator; an attribute is a constant or a function of the module."""

    def fn(g: Graph, m: Any, x: str, value: np.ndarray) -> str:
        attrs = {k: v(m) if callable(v) else v for k, v in attributes.items()}
        return g.op(op_type, [x], op_type.lower(), **attrs)

    return fn


CONVERTERS.update(
    {
        nn.ReLU: _unary("Relu"),
        nn.Sigmoid: _unary("Sigmoid"),
        nn.Tanh: _unary("Tanh"),
        nn.Softsign: _unary("Softsign"),
        nn.Hardsigmoid: _unary("HardSigmoid", alpha=1.0 / 6.0, beta=0.5),
        nn.Hardswish: _unary("HardSwish"),
        # scale * elu(x, alpha) with the constants of gradwell.nn.functional.selu
        nn.SELU: _unary("Selu", alpha=1.6732632423543772, gamma=1.0507009873554805),
        nn.LeakyReLU: _unary("LeakyRelu", alpha=lambda m: m.negative_slope),
        nn.ELU: _unary("Elu", alpha=lambda m: m.alpha),
        nn.CELU: _unary("Celu", alpha=lambda m: m.options["alpha"]),
        nn.Softmax: _unary("Softmax", axis=lambda m: m.axis),
        nn.LogSoftmax: _unary("LogSoftmax", axis=lambda m: m.axis),
    }
)


@converts(nn.Hardtanh, nn.ReLU6)
def _clip(g: Graph, m: Any, x: str, value: np.ndarray) -> str:
    low, high = (m.options["min_val"], m.options["max_val"]) if m.options else (0.0, 6.0)
    return g.op("Clip", [x, _scalar(g, low, value), _scalar(g, high, value)], "clip")


def softplus(
    g: Graph, x: str, value: np.ndarray, beta: float = 1.0, threshold: float = 20.0
) -> str:
    """log(1 + exp(beta x)) / beta, and x itself where beta x > threshold (as gradwell's)."""
    bx = x if beta == 1.0 else g.op("Mul", [x, _scalar(g, beta, value)])
    soft = g.op("Softplus", [bx])
    if beta != 1.0:
        soft = g.op("Div", [soft, _scalar(g, beta, value)])
    linear = g.op("Greater", [bx, _scalar(g, threshold, value)])
    return g.op("Where", [linear, x, soft], "softplus")


@converts(nn.Softplus)
def _softplus(g: Graph, m: Any, x: str, value: np.ndarray) -> str:
    return softplus(g, x, value, m.beta, m.threshold)


@converts(nn.LogSigmoid)
def _log_sigmoid(g: Graph, m: Any, x: str, value: np.ndarray) -> str:
    return g.op("Neg", [softplus(g, g.op("Neg", [x]), value)], "log_sigmoid")  # -softplus(-x)


@converts(nn.SiLU)
def _silu(g: Graph, m: Any, x: str, value: np.ndarray) -> str:
    return g.op("Mul", [x, g.op("Sigmoid", [x])], "silu")


@converts(nn.Mish)
def _mish(g: Graph, m: Any, x: str, value: np.ndarray) -> str:
    return g.op("Mul", [x, g.op("Tanh", [softplus(g, x, value)])], "mish")


@converts(nn.GELU)
def _gelu(g: Graph, m: Any, x: str, value: np.ndarray) -> str:
    half_x = g.op("Mul", [x, _scalar(g, 0.5, value)])
    if m.approximate == "none":  # x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2))
        inner = g.op("Erf", [g.op("Mul", [x, _scalar(g, 1.0 / math.sqrt(2.0), value)])])
    else:  # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        cube = g.op("Mul", [g.op("Mul", [x, x]), x])
        poly = g.op("Add", [x, g.op("Mul", [cube, _scalar(g, 0.044715, value)])])
        inner = g.op("Tanh", [g.op("Mul", [poly, _scalar(g, math.sqrt(2.0 / math.pi), value)])])
    return g.op("Mul", [half_x, g.op("Add", [inner, _scalar(g, 1.0, value)])], "gelu")
