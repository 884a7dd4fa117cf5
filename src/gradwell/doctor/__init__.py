"""The training doctor: watches training, names what went wrong, prescribes the fix.

``gw.fit`` runs it by default; findings land in ``history.findings``::

    history = gw.fit(model, (X, y), loss="cross_entropy", optimizer=opt, epochs=10)
    for f in history.findings:
        print(f.headline())
    history.doctor.save_html("report.html")

A :class:`Finding` has ``kind`` (one of :data:`KINDS`), ``severity``, ``where``,
``step``/``epoch``, ``evidence``, ``explanation``, ranked ``remedies`` with their
machine form ``actions``, and ``caused_by``/``consequences`` (finding ids): findings
come root causes first. ``gw.doctor.check(model, loss, optimizer, X, y)`` checks a
setup before training (``fit`` runs it when training starts).
``gw.lr_find`` runs a learning-rate range test. ``gw.doctor.repair(build, train,
config)`` applies the top remedy and retrains until the run is healthy
(``gradwell doctor --fix``); ``gradwell doctor --tour`` shows it on each classic failure.
"""

from . import recipes
from .check import check
from .diagnosis import REGISTRY, Detector, diagnose
from .doctor import Doctor
from .edits import NotApplicable, apply_edits
from .findings import KINDS, SEVERITIES, Finding
from .lr_find import LRFindResult, lr_find
from .profile import ModelProfile, profile_model
from .repair import RepairResult, repair
from .thresholds import Thresholds
from .trace import ActivationStats, Trace

__all__ = [
    "KINDS",
    "SEVERITIES",
    "REGISTRY",
    "ActivationStats",
    "Detector",
    "Doctor",
    "Finding",
    "LRFindResult",
    "ModelProfile",
    "NotApplicable",
    "RepairResult",
    "Thresholds",
    "Trace",
    "apply_edits",
    "check",
    "diagnose",
    "lr_find",
    "profile_model",
    "recipes",
    "repair",
]
