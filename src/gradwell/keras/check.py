"""The pre-flight check for a Keras setup: ``gw.doctor.check``'s checks, Keras' probe."""

from __future__ import annotations

from typing import Any

import keras

from ..doctor.check import check_rows, setup_findings
from ..doctor.findings import Finding
from ..doctor.phrasing import speaking
from ..doctor.thresholds import Thresholds
from ..torch.probes import numpy_of
from .losses import KerasLoss
from .probes import probe_setup
from .profile import profile_keras


def check(
    model: Any,
    X: Any = None,
    y: Any = None,
    *,
    loss: Any = None,
    optimizer: Any = None,
    batch_size: int | None = None,
    feature_names: list[str] | None = None,
    thresholds: Thresholds | None = None,
) -> list[Finding]:
    """Check a Keras training setup without training; returns the findings, root causes
    first, with remedies in Keras' words::

        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        for finding in gradwell.keras.check(model, X_train, y_train):
            print(finding.headline())

    ``loss`` and ``optimizer`` default to the compiled model's. The checks are
    :func:`gradwell.doctor.check`'s: the output layer against the loss (a softmax before
    ``SparseCategoricalCrossentropy(from_logits=True)``, a linear output before a loss
    with ``from_logits=False``, a regression loss on class labels), Dense layers with no
    activation between them, dropout rates, the learning rate against its optimizer's
    usual range, the feature and target audits, and, from one forward and backward of
    evenly spaced rows through ``model.stateless_call``, the initial loss against its
    expected value and the signal's scale by depth. Nothing about ``model`` or torch's
    random state changes (the doctor's :class:`DoctorCallback` runs the same check when
    ``fit`` starts).
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"gradwell.keras.check: model must be a keras.Model; got "
                        f"{type(model).__name__}")  # fmt: skip
    if not model.built:  # (building it here would draw its initial weights)
        raise ValueError(
            "gradwell.keras.check: the model has no weights yet; give it its input shape "
            "(keras.Input((features,)) as its first layer) or call it on a batch first"
        )
    X, y = (None if a is None else numpy_of(a) for a in (X, y))
    check_rows(X, y, "gradwell.keras.check", "a numpy array or torch tensor")
    loss = loss if loss is not None else getattr(model, "loss", None)
    single = isinstance(loss, str) or callable(loss)  # (not one loss per output)
    with speaking("keras"):
        return setup_findings(
            model, KerasLoss(loss) if single else None,
            optimizer if optimizer is not None else getattr(model, "optimizer", None),
            X, y, thresholds or Thresholds(), batch_size, feature_names,
            probe=probe_setup, profile=profile_keras,
        )  # fmt: skip
