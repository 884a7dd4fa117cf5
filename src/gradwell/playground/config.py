"""The playground's settings: one validated value, the schema every message is checked against.

Nothing the page sends is evaluated: each field is looked up in :data:`FIELDS` and
checked for its type and range (or its list of choices) before a run is built
from it. The page keeps the same settings in its URL, so a link reproduces a run.

>>> c = Config.from_dict({"dataset": "spiral", "layers": [8, 8], "lr": 0.01})
>>> c.dataset, c.layers, c.lr, c.problem
('spiral', (8, 8), 0.01, 'classification')
>>> Config.from_dict({"lr": 0.02})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ValueError: lr: expected one of 1e-05, 0.0001, 0.001, ..., 1, 3, 10; got 0.02
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

#: The TensorFlow Playground's learning rates and regularization rates.
LEARNING_RATES = (0.00001, 0.0001, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
REG_RATES = (0.0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
CLASSIFICATION_SETS = ("circle", "xor", "gauss", "spiral")
REGRESSION_SETS = ("plane", "multigauss")
DATASETS = (*CLASSIFICATION_SETS, *REGRESSION_SETS, "custom")
FEATURES = ("x1", "x2", "x1sq", "x2sq", "x1x2", "sinx1", "sinx2")
ACTIVATIONS = ("relu", "tanh", "sigmoid", "linear")
INITS = ("zero", "small", "default", "large", "xavier", "he")
OPTIMIZERS = ("sgd", "momentum", "adam")
MAX_LAYERS, MAX_NEURONS = 6, 8
MAX_CLASSES = 6
#: Settings that change training without rebuilding the network (as in the Playground:
#: the learning rate and regularization), or that only change the pictures.
LIVE = frozenset({"lr", "regularization", "reg_rate", "show_test", "discretize", "colour_by"})


@dataclass(frozen=True)
class Config:
    """Every setting of a playground run (the defaults are the Playground's own)."""

    dataset: str = "circle"
    noise: int = 0  # percent, 0-50
    train_ratio: int = 50  # percent of the points used for training, 10-90
    batch_size: int = 10
    seed: int = 0
    classes: int = 2  # gauss only: 3+ gives several colours and a softmax
    custom_task: str = "classification"  # what the page's own points are: labels or values
    features: tuple[str, ...] = ("x1", "x2")
    layers: tuple[int, ...] = (4, 2)
    activation: str = "tanh"
    lr: float = 0.03
    regularization: str = "none"
    reg_rate: float = 0.0
    dropout: tuple[float, ...] = (0.0, 0.0)  # one rate per hidden layer
    batchnorm: bool = False
    init: str = "default"
    optimizer: str = "sgd"
    clip: float = 0.0  # gradient-norm clipping; 0 is off
    loss: str = "cross_entropy"  # or "mse"; regression is always "mse"
    blowup_column: str = "none"  # a feature to offset and multiply, or "none"
    blowup_offset: float = 0.0
    blowup_scale: float = 1.0
    scaling: str = "raw"  # "scaled": the audit's recommended chain per feature
    show_test: bool = False
    discretize: bool = False
    colour_by: str = "weight"  # "gradient", "update"

    @property
    def problem(self) -> str:
        return _problem(self.dataset, self.custom_task)

    @property
    def n_classes(self) -> int:
        if self.problem == "regression":
            return 0
        return self.classes if self.dataset in ("gauss", "custom") else 2

    @classmethod
    def from_dict(cls, data: Any, base: Config | None = None) -> Config:
        """Validate ``data`` (a dict of settings; missing ones come from ``base``)."""
        if not isinstance(data, dict):
            raise ValueError(f"settings: expected an object, got {type(data).__name__}")
        unknown = sorted(set(data) - set(FIELDS))
        if unknown:
            raise ValueError(f"settings: unknown field {unknown[0]!r}; expected {sorted(FIELDS)}")
        values = asdict(base or cls())
        for name, value in data.items():
            values[name] = FIELDS[name](name, value)
        values["dropout"] = _fit_dropout(values["dropout"], len(values["layers"]))
        if _problem(values["dataset"], values["custom_task"]) == "regression":
            values["loss"] = "mse"
        if values["blowup_column"] not in ("none", *values["features"]):
            values["blowup_column"] = "none"
        for name in ("features", "layers", "dropout"):
            values[name] = tuple(values[name])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for name in ("features", "layers", "dropout"):
            d[name] = list(d[name])
        return d

    def changes_network(self, other: Config) -> bool:
        """Whether going from ``self`` to ``other`` needs a new run (anything not LIVE)."""
        return any(
            getattr(self, f.name) != getattr(other, f.name)
            for f in fields(self)
            if f.name not in LIVE
        )

    def with_(self, **changes: Any) -> Config:
        return Config.from_dict(changes, base=self)


def _problem(dataset: str, custom_task: str) -> str:
    if dataset == "custom":
        return custom_task
    return "regression" if dataset in REGRESSION_SETS else "classification"


def _fit_dropout(rates: Any, n: int) -> list[float]:
    rates = list(rates)[:n]
    return rates + [rates[-1] if rates else 0.0] * (n - len(rates))


# ----------------------------------------------------------------------------- checks
def _choice(options: tuple[Any, ...]) -> Callable[[str, Any], Any]:
    def check(name: str, value: Any) -> Any:
        if isinstance(value, bool) or value not in options:
            shown = ", ".join(f"{o:g}" if isinstance(o, float) else str(o) for o in options)
            raise ValueError(f"{name}: expected one of {shown}; got {value!r}")
        return options[options.index(value)]

    return check


def _number(lo: float, hi: float, integer: bool = False) -> Callable[[str, Any], Any]:
    def check(name: str, value: Any) -> Any:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and integer and value != int(value):
            ok = False
        if not ok or not math.isfinite(value) or not lo <= value <= hi:
            kind = "an integer" if integer else "a number"
            raise ValueError(f"{name}: expected {kind} in [{lo:g}, {hi:g}]; got {value!r}")
        return int(value) if integer else float(value)

    return check


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name}: expected true or false; got {value!r}")
    return value


def _features(name: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not value or len(value) > len(FEATURES):
        raise ValueError(f"{name}: expected a non-empty list of features from {FEATURES}")
    for v in value:
        if v not in FEATURES:
            raise ValueError(f"{name}: unknown feature {v!r}; expected one of {FEATURES}")
    return [f for f in FEATURES if f in value]  # canonical order, no repeats


def _layers(name: str, value: Any) -> list[int]:
    if not isinstance(value, list) or len(value) > MAX_LAYERS:
        raise ValueError(f"{name}: expected a list of at most {MAX_LAYERS} layer widths")
    check = _number(1, MAX_NEURONS, integer=True)
    return [check(f"{name}[{i}]", v) for i, v in enumerate(value)]


def _dropout(name: str, value: Any) -> list[float]:
    if not isinstance(value, list) or len(value) > MAX_LAYERS:
        raise ValueError(f"{name}: expected a list of at most {MAX_LAYERS} rates")
    check = _number(0.0, 0.9)
    return [check(f"{name}[{i}]", v) for i, v in enumerate(value)]


FIELDS: dict[str, Callable[[str, Any], Any]] = {
    "dataset": _choice(DATASETS),
    "noise": _number(0, 50, integer=True),
    "train_ratio": _number(10, 90, integer=True),
    "batch_size": _number(1, 30, integer=True),
    "seed": _number(0, 2**31 - 1, integer=True),
    "classes": _number(2, MAX_CLASSES, integer=True),
    "custom_task": _choice(("classification", "regression")),
    "features": _features,
    "layers": _layers,
    "activation": _choice(ACTIVATIONS),
    "lr": _choice(LEARNING_RATES),
    "regularization": _choice(("none", "l1", "l2")),
    "reg_rate": _choice(REG_RATES),
    "dropout": _dropout,
    "batchnorm": _flag,
    "init": _choice(INITS),
    "optimizer": _choice(OPTIMIZERS),
    "clip": _number(0.0, 100.0),
    "loss": _choice(("cross_entropy", "mse")),
    "blowup_column": _choice(("none", *FEATURES)),
    "blowup_offset": _number(-1e4, 1e4),
    "blowup_scale": _number(1e-3, 1e4),
    "scaling": _choice(("raw", "scaled")),
    "show_test": _flag,
    "discretize": _flag,
    "colour_by": _choice(("weight", "gradient", "update")),
}


def nearest(options: tuple[float, ...], value: float) -> float:
    """The option closest to ``value`` on a log scale (0 maps to the smallest)."""
    positive = [o for o in options if o > 0]
    if not value > 0:
        return positive[0]
    return min(positive, key=lambda o: abs(math.log(o / value)))


# ----------------------------------------------------------------------------- presets
#: The "break it" presets: each one setting changed from a small healthy run, and the
#: findings the doctor should make of it.
PRESETS: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    "vanishing": (
        {"dataset": "circle", "layers": [8] * 6, "activation": "sigmoid", "init": "xavier",
         "optimizer": "sgd", "lr": 0.1, "batchnorm": False, "dropout": [0.0] * 6},
        ("vanishing_gradients",),
    ),
    "exploding": (
        {"dataset": "plane", "layers": [8, 8], "activation": "tanh", "init": "default",
         "optimizer": "sgd", "lr": 3.0, "batchnorm": False, "dropout": [0.0, 0.0]},
        ("exploding_gradients", "nan_trap", "learning_rate_too_high"),
    ),
    "dead-relu": (
        {"dataset": "circle", "layers": [8, 8], "activation": "relu", "init": "default",
         "optimizer": "sgd", "lr": 3.0, "batchnorm": False, "dropout": [0.0, 0.0]},
        ("dead_relu",),
    ),
    "unscaled": (
        {"dataset": "circle", "layers": [8, 8], "activation": "relu", "init": "default",
         "optimizer": "sgd", "lr": 0.03, "blowup_column": "x1", "blowup_offset": 500.0,
         "blowup_scale": 100.0, "scaling": "raw", "batchnorm": False, "dropout": [0.0, 0.0]},
        ("unscaled_features",),
    ),
    "dropout": (
        {"dataset": "circle", "layers": [8, 8], "activation": "relu", "init": "default",
         "optimizer": "sgd", "lr": 0.03, "dropout": [0.9, 0.9], "batchnorm": False},
        ("dropout_misconfigured",),
    ),
}  # fmt: skip


def preset(name: str, base: Config) -> Config:
    if name not in PRESETS:
        raise ValueError(f"preset: expected one of {sorted(PRESETS)}; got {name!r}")
    defaults = Config()
    keep = {"seed": base.seed, "noise": defaults.noise, "features": list(defaults.features),
            "blowup_column": "none", "scaling": "raw", "clip": 0.0, "regularization": "none",
            "loss": "cross_entropy", "train_ratio": defaults.train_ratio,
            "batch_size": defaults.batch_size}  # fmt: skip
    return Config.from_dict({**keep, **PRESETS[name][0]}, base=base)


# ----------------------------------------------------------------------------- remedies
_ACTIVATION_NAMES = {"ReLU": "relu", "LeakyReLU": "relu", "ELU": "relu", "GELU": "relu",
                     "Tanh": "tanh", "Sigmoid": "sigmoid", "Identity": "linear"}  # fmt: skip


def apply_action(config: Config, action: dict[str, Any], dropout_layer: dict[str, int]) -> Config:
    """``config`` with the doctor's ``action`` applied (a dict with an "action" key, as in
    ``Finding.actions``). ``dropout_layer`` maps the model's Dropout module paths to
    hidden-layer numbers. Raises ValueError("not applicable: ...") for an action the
    playground has no setting for."""
    kind = action.get("action")
    if kind == "scale_lr":
        lrs = action.get("lr") or [config.lr * float(action.get("factor", 0.1))]
        return config.with_(lr=nearest(LEARNING_RATES, float(min(lrs))))
    if kind == "set_optimizer":
        name = str(action.get("optimizer", "")).lower()
        opt = {"adam": "adam", "adamw": "adam", "sgd": "sgd"}.get(name)
        if opt is None:
            raise ValueError(f"not applicable: the playground has no optimizer {name!r}")
        lr = action.get("lr")
        changes: dict[str, Any] = {"optimizer": opt}
        if lr:
            changes["lr"] = nearest(LEARNING_RATES, float(lr))
        return config.with_(**changes)
    if kind == "set_batch_size":
        return config.with_(batch_size=int(min(max(int(action["batch_size"]), 1), 30)))
    if kind == "clip_grad_norm":
        return config.with_(clip=float(min(max(float(action["max_norm"]), 1e-3), 100.0)))
    if kind == "scale_features":
        return config.with_(scaling="scaled")
    if kind == "replace_loss":
        loss = {"cross_entropy": "cross_entropy", "mse": "mse"}.get(str(action.get("loss")))
        if loss is None or config.problem == "regression":
            raise ValueError(f"not applicable: the playground has no loss {action.get('loss')!r}")
        return config.with_(loss=loss)
    if kind in ("replace_activation", "insert_activation"):
        to = str(action.get("to") or action.get("activation") or "ReLU")
        changes = {"activation": _ACTIVATION_NAMES.get(to, "relu")}
        init = action.get("init")
        if init in ("he", "xavier"):
            changes["init"] = init
        return config.with_(**changes)
    if kind == "reinitialise":
        init = action.get("init")
        return config.with_(init=init if init in ("he", "xavier") else "default")
    if kind in ("set_dropout", "add_dropout"):
        rate = float(min(max(float(action.get("rate", 0.1)), 0.0), 0.9))
        hit = [dropout_layer[m] for m in action.get("modules", []) if m in dropout_layer]
        rates = [rate if (i in hit or not hit) else r for i, r in enumerate(config.dropout)]
        return config.with_(dropout=rates)
    if kind == "add_batchnorm":
        return config.with_(batchnorm=True)
    if kind == "weight_decay":
        return config.with_(regularization="l2", reg_rate=nearest(REG_RATES, action["value"]))
    raise ValueError(f"not applicable: the playground has no setting for {kind!r}")


def first_applicable(
    config: Config, actions: list[dict[str, Any]], dropout_layer: dict[str, int]
) -> tuple[Config, dict[str, Any] | None, list[str]]:
    """Apply the first action that changes something; also return why the others did not."""
    skipped = []
    for action in actions:
        try:
            new = apply_action(config, action, dropout_layer)
        except (ValueError, KeyError, TypeError) as e:
            skipped.append(f"{action.get('action')}: {e}")
            continue
        if new != config:
            return new, action, skipped
        skipped.append(f"{action.get('action')}: not applicable: already so")
    return config, None, skipped


__all__ = ["Config", "PRESETS", "apply_action", "first_applicable", "preset"]
