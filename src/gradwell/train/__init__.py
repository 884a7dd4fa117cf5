"""Training: the fit loop, callbacks, metrics, prediction and checkpoints."""

from . import callbacks, metrics
from .architecture import register_module
from .callbacks import Callback
from .checkpoint import CheckpointError, load, save
from .compiled import CompiledStep, compile_step
from .fit import fit
from .history import History
from .predict import evaluate, predict, predict_proba

__all__ = [
    "Callback",
    "CheckpointError",
    "CompiledStep",
    "History",
    "callbacks",
    "compile_step",
    "evaluate",
    "fit",
    "load",
    "metrics",
    "predict",
    "predict_proba",
    "register_module",
    "save",
]
