"""A plain description of the model and optimizer, for detectors and prescriptions.

Prescriptions name real places and values ("replace Sigmoid at layers.1 with
ReLU", "lower the learning rate from 0.5 to 0.05"); they read them from a
:class:`ModelProfile` rather than from live objects, so they are testable alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Activation class name -> family the monitor treats it as.
ACTIVATION_FAMILIES = {
    "ReLU": "relu",
    "Sigmoid": "sigmoid",
    "Tanh": "tanh",
    "LeakyReLU": "other",
    "ELU": "other",
    "GELU": "other",
    "Softplus": "other",
}

#: Modules whose sigmoid and tanh gates are ops inside them (recurrent cells): the probes
#: watch those ops on sampled steps and keep their statistics as ``<module>.gates``
#: (sigmoid) and ``<module>.tanh`` (tanh).
GATED = ("RNN", "LSTM", "GRU")

#: Modules that keep a stack linear: between two Linear layers they add no non-linearity.
LINEAR_PASSTHROUGH = ("Dropout", "BatchNorm1d", "Identity", "Flatten")


def class_family(module: Any) -> tuple[str, str] | None:
    """(class name, family) of an activation module, following subclasses; else None."""
    for cls in type(module).__mro__:
        if cls.__name__ in ACTIVATION_FAMILIES:
            return cls.__name__, ACTIVATION_FAMILIES[cls.__name__]
    return None


def is_gated(module: Any) -> bool:
    """Whether ``module`` computes sigmoid/tanh gates inside itself (:data:`GATED`)."""
    return any(cls.__name__ in GATED for cls in type(module).__mro__)


def _is_class(module: Any, name: str) -> bool:
    return any(cls.__name__ == name for cls in type(module).__mro__)


@dataclass
class ModelProfile:
    """Where things are in the model (module paths in forward order) and the optimizer's
    settings.

    >>> p = ModelProfile(order=["0", "1", "2"], types={"0": "Linear", "1": "Sigmoid",
    ...                  "2": "Linear"}, layers=["0", "2"], activations={"1": "sigmoid"})
    >>> p.layer_before("1"), p.activation_after("0")
    ('0', '1')
    """

    order: list[str] = field(default_factory=list)
    types: dict[str, str] = field(default_factory=dict)
    layers: list[str] = field(default_factory=list)
    activations: dict[str, str] = field(default_factory=dict)
    batchnorm: list[str] = field(default_factory=list)
    dropouts: dict[str, float] = field(default_factory=dict)
    param_module: dict[str, str] = field(default_factory=dict)
    lrs: list[float] = field(default_factory=list)
    optimizer: str | None = None
    weight_decay: float = 0.0
    momentum: float = 0.0
    feature_names: list[str] | None = None
    #: out_features of each layer with a 2-D weight (its rows; a convolution's out_channels)
    out_features: dict[str, int] = field(default_factory=dict)
    #: spatial dimensions of each layer's kernel: 0 for Linear, 2 for Conv2d
    spatial_dims: dict[str, int] = field(default_factory=dict)
    #: pairs of Linear layers of one Sequential with nothing non-linear between them
    linear_pairs: list[tuple[str, str]] = field(default_factory=list)
    #: the module whose output is the model's output (known once a forward pass was seen)
    output_module: str | None = None

    def _index(self, path: str) -> int:
        return self.order.index(path) if path in self.order else -1

    def layer_before(self, path: str) -> str | None:
        """The nearest parameterised layer called before module ``path``."""
        i = self._index(path)
        before = [p for p in self.order[:i] if p in self.layers] if i >= 0 else []
        return before[-1] if before else None

    def activation_after(self, layer: str) -> str | None:
        """The first activation module called after ``layer`` and before the next layer."""
        i = self._index(layer)
        if i < 0:
            return None
        for p in self.order[i + 1 :]:
            if p in self.layers:
                return None
            if p in self.activations:
                return p
        return None

    def has_batchnorm_after(self, layer: str) -> bool:
        i = self._index(layer)
        if i < 0:
            return False
        for p in self.order[i + 1 :]:
            if p in self.layers:
                return False
            if p in self.batchnorm:
                return True
        return False

    def is_convolution(self, layer: str | None) -> bool:
        return self.spatial_dims.get(layer or "", 0) > 0

    def after_convolution(self, path: str) -> bool:
        """Whether module ``path`` is fed by a convolution (through pooling or normalisation):
        its outputs are (examples, channels, *positions), a channel is one unit."""
        return self.is_convolution(self.layer_before(path))

    def batchnorm_for(self, layer: str) -> str:
        """The batch-norm class that goes after ``layer``: BatchNorm2d after a Conv2d,
        BatchNorm1d after a Linear or a Conv1d."""
        return "BatchNorm2d" if self.spatial_dims.get(layer, 0) == 2 else "BatchNorm1d"

    @property
    def hidden_layers(self) -> list[str]:
        """Parameterised layers except the last (the output layer)."""
        return self.layers[:-1]

    def activations_of(self, *families: str) -> list[str]:
        return [p for p in self.order if self.activations.get(p) in families]

    def to_dict(self) -> dict[str, Any]:
        return {
            "order": list(self.order),
            "types": dict(self.types),
            "layers": list(self.layers),
            "activations": dict(self.activations),
            "batchnorm": list(self.batchnorm),
            "dropouts": dict(self.dropouts),
            "lrs": list(self.lrs),
            "optimizer": self.optimizer,
            "weight_decay": self.weight_decay,
            "momentum": self.momentum,
            "feature_names": self.feature_names,
            "out_features": dict(self.out_features),
            "spatial_dims": dict(self.spatial_dims),
            "linear_pairs": [list(p) for p in self.linear_pairs],
            "output_module": self.output_module,
        }


def _linear_pairs(modules: dict[str, Any]) -> list[tuple[str, str]]:
    """Linear layers that follow each other in a Sequential with only modules of
    :data:`LINEAR_PASSTHROUGH` between them: together they are one linear map. (Only
    Sequential containers: a custom forward may apply a function between its layers.)"""
    pairs = []
    for path, m in modules.items():
        if not _is_class(m, "Sequential"):
            continue
        last = None
        for name, child in m.named_children():
            full = f"{path}.{name}" if path else name
            if _is_class(child, "Linear"):
                if last is not None:
                    pairs.append((last, full))
                last = full
            elif not any(_is_class(child, c) for c in LINEAR_PASSTHROUGH):
                last = None
    return pairs


def profile_model(
    model: Any,
    optimizer: Any = None,
    call_order: list[str] | None = None,
    output_module: str | None = None,
) -> ModelProfile:
    """Describe ``model`` (an ``nn.Module``) and ``optimizer``.

    ``call_order`` lists module paths in the order a forward pass called them (the
    monitor records it); without it the registration order of ``named_modules`` is used.
    ``output_module``: the module whose output the model returned, when known.
    """
    modules = dict(model.named_modules())
    leaves = [p for p, m in modules.items() if p and not any(True for _ in m.children())]
    if not leaves and "" in modules:
        leaves = [""]
    order = [p for p in (call_order or []) if p in modules]
    order += [p for p in leaves if p not in order]
    prof = ModelProfile(order=order)
    for path in order:
        m = modules[path]
        prof.types[path] = type(m).__name__
        fam = class_family(m)
        if fam is not None:
            prof.activations[path] = fam[1]
        if _is_class(m, "BatchNorm1d") or type(m).__name__.startswith("BatchNorm"):
            prof.batchnorm.append(path)
        if _is_class(m, "Dropout"):
            prof.dropouts[path] = float(getattr(m, "rate", getattr(m, "p", 0.0)))
        params = getattr(m, "_parameters", {})
        w = params.get("weight")
        if w is not None and getattr(w, "ndim", 0) >= 2:
            prof.layers.append(path)
            prof.out_features[path] = int(getattr(m, "out_channels", w.shape[0]))
            prof.spatial_dims[path] = int(w.ndim) - 2
    prof.linear_pairs = _linear_pairs(modules)
    prof.output_module = output_module
    for mod_path, m in modules.items():
        for name, p in getattr(m, "_parameters", {}).items():
            if p is not None:
                full = f"{mod_path}.{name}" if mod_path else name
                prof.param_module[full] = mod_path
    if optimizer is not None:
        groups = getattr(optimizer, "param_groups", [])
        prof.lrs = [float(g["lr"]) for g in groups if "lr" in g]
        prof.optimizer = type(optimizer).__name__
        prof.weight_decay = max(
            (float(g.get("weight_decay", 0.0) or 0.0) for g in groups), default=0.0
        )
        prof.momentum = max((float(g.get("momentum", 0.0) or 0.0) for g in groups), default=0.0)
    return prof
