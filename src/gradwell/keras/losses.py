"""Keras' losses as the doctor calls and names them.

The doctor calls a loss as ``loss(predictions, targets)`` and knows it by name: a Keras
loss is named by its class (``MeanSquaredError``), a cross-entropy with its
``from_logits`` (``SparseCategoricalCrossentropy(from_logits=True)``), whether it was given
as an object or by its name (``loss="sparse_categorical_crossentropy"`` is the function,
whose ``from_logits`` is False), so that the setup checks
(:mod:`gradwell.doctor.detectors_setup`) know what output it expects.
"""

from __future__ import annotations

from typing import Any

import keras
import torch

#: Keras' loss functions (what ``loss="mse"`` resolves to) under their classes' names.
LOSS_CLASSES = {
    "sparse_categorical_crossentropy": "SparseCategoricalCrossentropy",
    "categorical_crossentropy": "CategoricalCrossentropy",
    "binary_crossentropy": "BinaryCrossentropy",
    "mean_squared_error": "MeanSquaredError",
    "mean_absolute_error": "MeanAbsoluteError",
    "huber": "Huber",
}
#: The losses that take ``from_logits``: their name says which output they expect.
WITH_LOGITS_ARGUMENT = ("SparseCategoricalCrossentropy", "CategoricalCrossentropy",
                        "BinaryCrossentropy")  # fmt: skip


def keras_loss_name(loss: Any) -> str:
    """The name the doctor knows a Keras loss (an object or a function) by: its class's
    name, with ``from_logits`` for a cross-entropy; a function of the user's by its name."""
    if isinstance(loss, keras.losses.Loss):
        name = type(loss).__name__
        from_logits = bool(loss.get_config().get("from_logits", False))
    else:
        own = str(getattr(loss, "__name__", type(loss).__name__))
        if getattr(loss, "__module__", "").startswith("keras.") and own in LOSS_CLASSES:
            name, from_logits = LOSS_CLASSES[own], False  # (the functions' default)
        else:
            return own
    return f"{name}(from_logits={from_logits})" if name in WITH_LOGITS_ARGUMENT else name


class KerasLoss:
    """A Keras loss (a ``keras.losses`` object, a function or its name) called as the
    doctor calls a loss, ``loss(predictions, targets)``, reduced to one number; its
    ``__name__`` is :func:`keras_loss_name`'s."""

    def __init__(self, loss: Any) -> None:
        self.loss = keras.losses.get(loss) if isinstance(loss, str) else loss
        self.__name__ = keras_loss_name(self.loss)

    def __call__(self, predictions: Any, targets: Any) -> Any:
        out = self.loss(targets, predictions)
        return out.mean() if isinstance(out, torch.Tensor) and out.ndim else out

    @property
    def builtin(self) -> bool:
        """One of Keras' own losses (stateless: calling it once more changes nothing)."""
        module = getattr(self.loss, "__module__", None) or type(self.loss).__module__
        return module.startswith("keras.")


def is_keras_loss(loss_fn: Any) -> bool:
    return isinstance(loss_fn, KerasLoss) and loss_fn.builtin
