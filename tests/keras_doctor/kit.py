"""Small Keras models and fits for the Keras doctor's tests: the doctor issue's recipes
rebuilt in Keras (the data of the gradwell doctor's kit)."""

from __future__ import annotations

import warnings
from typing import Any

import keras
from doctor.kit import dataset  # noqa: F401  (the same data as gradwell's recipes)

from gradwell.keras import DoctorCallback


def mlp(n_in: int, widths: list[int], n_out: int, act: str = "relu", *, seed: int = 0,
        separate: bool = False, dropout: float | None = None) -> keras.Sequential:  # fmt: skip
    """Dense blocks with ``act`` inside (``Dense(w, activation=act)``), or as a layer of its
    own after a linear Dense (``separate``), [Dropout], then a linear Dense; Glorot init for
    sigmoid/tanh and He init for the rest (as the gradwell kit)."""
    keras.utils.set_random_seed(seed)
    init = "glorot_normal" if act in ("sigmoid", "tanh") else "he_normal"
    layers: list[Any] = [keras.Input((n_in,))]
    for w in widths:
        if separate:
            layers += [keras.layers.Dense(w, kernel_initializer=init), keras.layers.Activation(act)]
        else:
            layers.append(keras.layers.Dense(w, activation=act, kernel_initializer=init))
        if dropout is not None:
            layers.append(keras.layers.Dropout(dropout))
    layers.append(keras.layers.Dense(n_out, kernel_initializer=init))
    return keras.Sequential(layers)


def optimizer(name: str, lr: float) -> keras.optimizers.Optimizer:
    return {
        "sgd": lambda: keras.optimizers.SGD(learning_rate=lr),
        "momentum": lambda: keras.optimizers.SGD(learning_rate=lr, momentum=0.9),
        "adam": lambda: keras.optimizers.Adam(learning_rate=lr),
    }[name]()


def fit(model: keras.Model, X: Any, y: Any, opt: Any, *, loss: Any = None, epochs: int = 4,
        batch_size: int = 32, **options: Any) -> DoctorCallback:  # fmt: skip
    """``model.fit`` with the doctor in its callbacks; returns the callback."""
    loss = (
        loss if loss is not None else keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    model.compile(optimizer=opt, loss=loss)
    doctor = DoctorCallback(verbose=False, raise_errors=True, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", DeprecationWarning)  # (Keras' own np.array calls)
        model.fit(X, y, epochs=epochs, batch_size=batch_size, verbose=0, callbacks=[doctor])
    return doctor


def serious(doctor: DoctorCallback) -> list[Any]:
    return [f for f in doctor.findings if f.severity in ("warning", "critical")]


def kinds(doctor: DoctorCallback) -> dict[str, list[str]]:
    """kind -> the `where` of each serious finding of that kind."""
    out: dict[str, list[str]] = {}
    for f in serious(doctor):
        out.setdefault(f.kind, []).append(f.where)
    return out


def dense_names(model: keras.Model) -> list[str]:
    return [layer.name for layer in model.layers if isinstance(layer, keras.layers.Dense)]


def relu_places(model: keras.Model) -> list[str]:
    """Where the ReLUs are: ``dense/activation`` inside a Dense, or an Activation layer."""
    out = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Activation):
            out.append(layer.name)
        elif isinstance(layer, keras.layers.Dense) and layer.activation.__name__ == "relu":
            out.append(layer.name + "/activation")
    return out
