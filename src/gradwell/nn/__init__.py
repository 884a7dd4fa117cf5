"""Neural-network building blocks: Module, Parameter, layers, losses, init, functional.

>>> import gradwell as gw
>>> model = gw.nn.Sequential(
...     gw.nn.Linear(4, 16, rng=0), gw.nn.BatchNorm1d(16), gw.nn.ReLU(), gw.nn.Dropout(0.2, rng=0),
...     gw.nn.Linear(16, 3, rng=1),
... )
>>> loss = gw.nn.CrossEntropyLoss()(model(gw.randn(8, 4, rng=0)), [0, 1, 2, 0, 1, 2, 0, 1])
>>> loss.backward()
>>> model[0].weight.grad.shape
(16, 4)
"""

from . import functional, init, utils
from . import functional as F  # noqa: N812  (the PyTorch user's spelling)
from .activation import (
    CELU,
    ELU,
    GELU,
    SELU,
    Hardsigmoid,
    Hardswish,
    Hardtanh,
    LeakyReLU,
    LogSigmoid,
    LogSoftmax,
    Mish,
    ReLU,
    ReLU6,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Softsign,
    Tanh,
)
from .batchnorm import BatchNorm1d, BatchNorm2d
from .container import ModuleList, Sequential
from .conv import Conv1d, Conv2d
from .conv_transpose import ConvTranspose2d
from .embedding import Embedding
from .layers import Dropout, Flatten, Identity, Linear
from .losses import (
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    HuberLoss,
    KLDivLoss,
    L1Loss,
    MSELoss,
    NLLLoss,
    SmoothL1Loss,
)
from .module import IncompatibleKeys, Module, RemovableHandle
from .multihead import MultiheadAttention
from .normalization import GroupNorm, LayerNorm
from .parameter import Parameter
from .pooling import AdaptiveAvgPool2d, AvgPool1d, AvgPool2d, MaxPool1d, MaxPool2d
from .recurrent import GRU, LSTM, RNN
from .upsampling import Upsample

__all__ = [
    "BCELoss",
    "KLDivLoss",
    "SmoothL1Loss",
    "CELU",
    "Hardsigmoid",
    "Hardswish",
    "Hardtanh",
    "LogSigmoid",
    "LogSoftmax",
    "Mish",
    "ReLU6",
    "SELU",
    "SiLU",
    "Softsign",
    "BCEWithLogitsLoss",
    "BatchNorm1d",
    "CrossEntropyLoss",
    "Dropout",
    "ELU",
    "F",
    "Flatten",
    "GELU",
    "HuberLoss",
    "Identity",
    "IncompatibleKeys",
    "L1Loss",
    "LeakyReLU",
    "Linear",
    "MSELoss",
    "Module",
    "ModuleList",
    "NLLLoss",
    "Parameter",
    "ReLU",
    "RemovableHandle",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "Softplus",
    "Tanh",
    "functional",
    "init",
    "utils",
    # convolution, pooling, normalisation, embedding
    "AdaptiveAvgPool2d",
    "AvgPool1d",
    "AvgPool2d",
    "BatchNorm2d",
    "Conv1d",
    "Conv2d",
    "ConvTranspose2d",
    "Embedding",
    "GroupNorm",
    "LayerNorm",
    "MaxPool1d",
    "MaxPool2d",
    "Upsample",
    # sequence models
    "GRU",
    "LSTM",
    "MultiheadAttention",
    "RNN",
]
