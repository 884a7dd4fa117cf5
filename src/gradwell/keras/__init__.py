"""The training doctor for Keras 3 models, on Keras' torch backend.

gradwell's doctor (the same diagnosis, findings, remedies and reports) in ``model.fit``::

    from gradwell.keras import DoctorCallback
    doctor = DoctorCallback()
    model.fit(X, y, epochs=10, callbacks=[doctor])
    print(doctor.report()); doctor.save_html("report.html")

and the pre-flight check alone, without training: ``gradwell.keras.check(model, X, y)``.
Keras must run on its torch backend (``KERAS_BACKEND=torch``); when Keras is not yet
imported, importing this module makes torch the default backend. Importing it imports
Keras and torch (``import gradwell`` imports neither).
"""

from __future__ import annotations

import os
import sys

if "keras" not in sys.modules:
    os.environ.setdefault("KERAS_BACKEND", "torch")

_NEEDS = "gradwell.keras needs Keras 3 on its torch backend (KERAS_BACKEND=torch, set before "
_NEEDS += "Keras is imported; pip install 'keras>=3' torch)"
try:
    import keras
except ImportError as e:  # (another backend's framework missing, or no Keras)
    backend = os.environ.get("KERAS_BACKEND")
    raise ImportError(f"{_NEEDS}; importing Keras on {backend!r} failed: {e}") from e

if not keras.__version__.startswith("3.") or keras.backend.backend() != "torch":
    raise ImportError(f"{_NEEDS}; got Keras {keras.__version__} on {keras.backend.backend()!r}")

from .callback import Doctor, DoctorCallback  # noqa: E402
from .check import check  # noqa: E402

__all__ = ["Doctor", "DoctorCallback", "check"]
