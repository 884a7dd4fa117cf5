"""A Keras model described for the doctor: its layers by name, in order.

A layer's path is its Keras name (``dense_1``); an activation computed inside a layer
(``Dense(16, activation="relu")``) is ``dense_1/activation``, so that the layer (its
kernel, the gradient reaching its pre-activation output) and the activation (its units'
activity) are two places, as a Linear and a ReLU are in PyTorch. Parameters are
``dense_1/kernel`` and ``dense_1/bias``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import keras

from ..doctor.profile import ACTIVATION_FAMILIES, ModelProfile

#: Keras' activation functions under the class names the diagnosis knows (ReLU, Sigmoid...).
ACTIVATION_CLASSES = {
    "relu": "ReLU", "sigmoid": "Sigmoid", "tanh": "Tanh", "leaky_relu": "LeakyReLU",
    "elu": "ELU", "gelu": "GELU", "softplus": "Softplus", "softmax": "Softmax",
    "log_softmax": "LogSoftmax", "selu": "SELU", "silu": "SiLU", "swish": "SiLU",
    "relu6": "ReLU6", "exponential": "Exp", "hard_sigmoid": "Hardsigmoid",
}  # fmt: skip
#: Layers that keep a stack linear: between two Dense layers they add no non-linearity.
LINEAR_PASSTHROUGH = ("Dropout", "BatchNormalization", "Identity", "Flatten")
INSIDE = "/activation"


class KerasProfile(ModelProfile):
    """A :class:`~gradwell.doctor.profile.ModelProfile` whose remedies name Keras' layers."""

    def batchnorm_for(self, layer: str) -> str:
        return "BatchNormalization"


def activation_class(fn: Any) -> str | None:
    """The class name of an activation (a function of ``keras.activations`` or a layer);
    None for the identity (``activation=None`` is ``linear``)."""
    fn = getattr(fn, "__wrapped__", fn)  # (the probes' watch of a sampled step)
    if fn is None:
        return None
    if isinstance(fn, keras.layers.Layer):
        return type(fn).__name__
    name = getattr(fn, "__name__", type(fn).__name__)
    return None if name == "linear" else ACTIVATION_CLASSES.get(name, name)


def leaf_layers(model: Any) -> list[tuple[str, Any]]:
    """(name, layer) of every layer in call order, the layers of nested models in their place
    (a custom layer's own sublayers are part of it)."""
    return list(_walk(model))


def _walk(model: Any) -> Iterator[tuple[str, Any]]:
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _walk(layer)
        elif not isinstance(layer, keras.layers.InputLayer):
            yield layer.name, layer


def has_kernel(layer: Any) -> bool:
    """Dense, Conv*D and their like: a weight matrix (or filter bank) named ``kernel``."""
    kernel = getattr(layer, "kernel", None)
    return kernel is not None and len(kernel.shape) >= 2


def layer_activation(layer: Any) -> str | None:
    """The class name of the activation a layer applies itself: ``Activation("relu")`` and
    ``keras.layers.ReLU`` are activations; so is ``Dense(..., activation="relu")`` inside."""
    if isinstance(layer, keras.layers.Activation):
        return activation_class(layer.activation)
    name = type(layer).__name__
    if name in ACTIVATION_FAMILIES or name in ACTIVATION_CLASSES.values():
        return name
    return activation_class(getattr(layer, "activation", None)) if has_kernel(layer) else None


def learning_rate_of(optimizer: Any) -> float:
    """The optimizer's learning rate now (a schedule's current value)."""
    lr = optimizer.learning_rate  # a Variable, or a schedule's value as a tensor
    return float(getattr(lr, "value", lr))


def profile_keras(
    model: Any,
    optimizer: Any = None,
    call_order: list[str] | None = None,
    output_module: str | None = None,
) -> KerasProfile:
    """Describe a Keras ``model`` and ``optimizer`` (as :func:`~gradwell.doctor.profile.
    profile_model` describes a module tree). The order is that of ``model.layers`` (the
    call order of a Sequential or functional model); ``call_order`` is not needed."""
    prof = KerasProfile()
    for path, layer in leaf_layers(model):
        prof.order.append(path)
        prof.types[path] = type(layer).__name__
        act = layer_activation(layer)
        if has_kernel(layer):
            kernel = layer.kernel
            prof.layers.append(path)
            prof.out_features[path] = int(kernel.shape[-1])
            prof.spatial_dims[path] = len(kernel.shape) - 2
            for v in layer.trainable_weights:
                prof.param_module[f"{path}/{v.name}"] = path
            if act is not None:  # applied inside the layer: a place of its own, after it
                prof.order.append(path + INSIDE)
                prof.types[path + INSIDE] = act
                if act in ACTIVATION_FAMILIES:
                    prof.activations[path + INSIDE] = ACTIVATION_FAMILIES[act]
            continue
        for v in layer.trainable_weights:
            prof.param_module[f"{path}/{v.name}"] = path
        if act is not None:
            prof.types[path] = act
            if act in ACTIVATION_FAMILIES:
                prof.activations[path] = ACTIVATION_FAMILIES[act]
        if isinstance(layer, keras.layers.BatchNormalization):
            prof.batchnorm.append(path)
        if isinstance(layer, keras.layers.Dropout):
            prof.dropouts[path] = float(layer.rate)
    prof.linear_pairs = _linear_pairs(model)
    prof.output_module = output_module or (prof.order[-1] if prof.order else None)
    if optimizer is not None:
        optimizer = getattr(optimizer, "inner_optimizer", optimizer)  # (loss scaling)
        prof.optimizer = type(optimizer).__name__
        prof.lrs = [learning_rate_of(optimizer)]
        prof.weight_decay = float(getattr(optimizer, "weight_decay", None) or 0.0)
        prof.momentum = float(getattr(optimizer, "momentum", None) or 0.0)
    return prof


def _linear_pairs(model: Any) -> list[tuple[str, str]]:
    """Dense layers without an activation followed by another Dense, in a Sequential, with
    only layers of :data:`LINEAR_PASSTHROUGH` between them: together, one linear map."""
    pairs: list[tuple[str, str]] = []
    if isinstance(model, keras.Sequential):
        last = None
        for layer in model.layers:
            if isinstance(layer, keras.Model):
                pairs += _linear_pairs(layer)
                last = None
            elif isinstance(layer, keras.layers.Dense):
                if last is not None:
                    pairs.append((last, layer.name))
                last = layer.name if layer_activation(layer) is None else None
            elif type(layer).__name__ not in LINEAR_PASSTHROUGH:
                last = None
    return pairs
