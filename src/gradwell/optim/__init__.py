"""Optimizers (one per-parameter update rule each) and learning-rate schedules.

>>> import gradwell as gw
>>> w = gw.tensor([3.0], requires_grad=True)
>>> opt = gw.optim.Adam([w], lr=0.1)
>>> for _ in range(200):
...     opt.zero_grad()
...     ((w - 1.0) ** 2).sum().backward()
...     opt.step()
>>> abs(w.item() - 1.0) < 0.05
True
"""

from . import lr_scheduler
from .adadelta import Adadelta
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .adamax import Adamax
from .nadam import NAdam
from .optimizer import Optimizer
from .radam import RAdam
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["SGD", "Adadelta", "Adagrad", "Adam", "AdamW", "Adamax", "NAdam", "Optimizer",
           "RAdam", "RMSprop", "lr_scheduler"]  # fmt: skip
