"""Training: the fit loop, callbacks, metrics, prediction and checkpoints."""

from . import callbacks, metrics
from .callbacks import Callback
from .checkpoint import CheckpointError, load, save
from .fit import fit
from .history import History
from .predict import evaluate, predict

__all__ = [
    "Callback",
    "CheckpointError",
    "History",
    "callbacks",
    "evaluate",
    "fit",
    "load",
    "metrics",
    "predict",
    "save",
]
