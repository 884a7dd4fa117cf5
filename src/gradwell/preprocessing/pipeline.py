"""Chains of scalers applied one after another to the same columns."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._errors import NotInvertibleError
from .base import Scaler, check_nan_policy, from_config, register
from .scalers import Clip, LinearScaler, LogScaler, RobustScaler, ZScoreScaler


def clone_scaler(scaler: Scaler) -> Scaler:
    """A fresh, unfitted copy of ``scaler`` with equal parameters (nested steps cloned too)."""

    def copy(value: Any) -> Any:
        if isinstance(value, Scaler):
            return clone_scaler(value)
        if isinstance(value, list):
            return [copy(v) for v in value]
        if isinstance(value, tuple):
            return tuple(copy(v) for v in value)
        if isinstance(value, dict):
            return {k: copy(v) for k, v in value.items()}
        return value

    return type(scaler)(**{k: copy(v) for k, v in scaler.get_params(deep=False).items()})


@register
class Pipeline(Scaler):
    """Scalers applied in order to every column, e.g. ``Pipeline([LogScaler(), LinearScaler()])``.

    Each step is fitted on the output of the steps before it. An empty pipeline is
    the identity. Only the first missing-value decision matters: ``nan_policy``
    (``None`` = the first step's) is applied to the raw input, so later steps
    always receive finite values.

    ``inverse_transform`` undoes the steps in reverse order; a chain with a lossy
    step (:class:`Clip`) raises :class:`NotInvertibleError` unless
    ``skip_lossy=True``, which treats such steps as the identity (values that were
    clipped come back at the bound).

    >>> import numpy as np
    >>> from gradwell.preprocessing import Pipeline, Clip, LogScaler, LinearScaler
    >>> X = np.array([[0.0], [9.0], [99.0], [99999.0]])
    >>> p = Pipeline([Clip(max=999), LogScaler(), LinearScaler()])
    >>> np.round(p.fit_transform(X).ravel(), 3).tolist()
    [-1.0, -0.333, 0.333, 1.0]
    >>> p.spec()
    'clip(max=999) -> log -> linear'
    """

    def __init__(self, steps: Sequence[Scaler] = (), nan_policy: str | None = None):
        self.steps = steps
        self.nan_policy = nan_policy  # type: ignore[assignment]
        self._validate_params()

    def _validate_params(self) -> None:
        check_nan_policy("Pipeline", self.nan_policy, allow_none=True)
        if not isinstance(self.steps, (list, tuple)):
            raise TypeError(
                f"Pipeline: expected steps to be a list of scalers, got {type(self.steps).__name__}"
            )
        for i, step in enumerate(self.steps):
            if not isinstance(step, Scaler) or not getattr(step, "columnwise", True):
                raise TypeError(
                    f"Pipeline: expected step {i} to be a column-wise gradwell scaler "
                    f"(LinearScaler, ZScoreScaler, RobustScaler, Clip, LogScaler, Pipeline), "
                    f"got {step!r}"
                )

    @property
    def invertible(self) -> bool:  # type: ignore[override]
        return all(step.invertible for step in self.steps)

    def spec(self) -> str:
        return " -> ".join(step.spec() for step in self.steps) if self.steps else "identity"

    def __len__(self) -> int:
        return len(self.steps)

    def __getitem__(self, i: int) -> Scaler:
        return self.steps[i]

    def _effective_nan_policy(self) -> str:
        if self.nan_policy is not None:
            return self.nan_policy
        return self.steps[0]._effective_nan_policy() if self.steps else "error"

    def _prime_step(self, step: Scaler, values: np.ndarray, names: Sequence[str] | None) -> None:
        # Steps inside a chain see finite data and record the same columns as the chain.
        step.fill_ = None
        step.n_features_in_ = int(values.shape[1])
        if names is not None and getattr(names, "named", True):
            step.feature_names_in_ = tuple(names)
        elif hasattr(step, "feature_names_in_"):
            del step.feature_names_in_

    def _fit_values(self, values: np.ndarray, owned: bool, names: Sequence[str] | None = None):
        if not self.steps:
            return
        if len(self.steps) > 1 and not owned:
            values = values.copy()
        for step in self.steps[:-1]:
            self._prime_step(step, values, names)
            step._fit_transform_values(values, names=names)
        self._prime_step(self.steps[-1], values, names)
        self.steps[-1]._fit_values(values, owned=True, names=names)

    def _fit_transform_values(self, values: np.ndarray, names: Sequence[str] | None = None):
        for step in self.steps:
            self._prime_step(step, values, names)
            step._fit_transform_values(values, names=names)

    def _transform_inplace(self, values: np.ndarray, names: Sequence[str] | None = None) -> None:
        for step in self.steps:
            step._transform_inplace(values, names=names)

    def _inverse_inplace(self, values: np.ndarray, skip_lossy: bool = False) -> None:
        for step in reversed(self.steps):
            if not step.invertible and skip_lossy and not isinstance(step, Pipeline):
                continue
            if isinstance(step, Pipeline):
                step._inverse_inplace(values, skip_lossy=skip_lossy)
            else:
                step._inverse_inplace(values)

    def _check_invertible(self, where: str, skip_lossy: bool = False) -> None:
        if skip_lossy:
            return
        for i, step in enumerate(self.steps):
            if not step.invertible:
                raise NotInvertibleError(
                    f"{where}: expected an invertible chain, got '{self.spec()}' whose step {i} "
                    f"({step.spec()}) is lossy; pass skip_lossy=True to treat it as the identity"
                )

    def inverse_transform(self, X: Any, skip_lossy: bool = False) -> np.ndarray:
        """Undo the chain step by step in reverse (see the class docstring for lossy steps)."""
        where = "Pipeline.inverse_transform"
        self._check_is_fitted("inverse_transform")
        self._check_invertible(where, skip_lossy)
        m = self._aligned(X, where)
        values = m.values if m.owned else m.values.copy()
        self._inverse_inplace(values, skip_lossy=skip_lossy)
        return values

    @classmethod
    def _params_from_config(cls, params: dict[str, Any]) -> dict[str, Any]:
        params = dict(params)
        params["steps"] = [from_config(s) for s in params.get("steps", [])]
        return params


# --------------------------------------------------------------------- chain specs
_STEP_RE = re.compile(r"^\s*([a-z_]+)\s*(?:\((.*)\))?\s*$")


def _parse_args(step: str, text: str) -> tuple[list[str], dict[str, list[str]]]:
    positional: list[str] = []
    named: dict[str, list[str]] = {}
    current: list[str] = positional
    for item in (t.strip() for t in text.split(",")) if text.strip() else []:
        if "=" in item:
            key, _, value = item.partition("=")
            current = named.setdefault(key.strip(), [])
            item = value.strip()
        if not item:
            raise ValueError(f"parse_chain: empty argument in {step!r}")
        current.append(item)
    return positional, named


def _number(step: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"parse_chain: expected a number in {step!r}, got {text!r}") from None


def _build_step(step: str) -> Scaler:
    match = _STEP_RE.match(step.lower())
    if not match:
        raise ValueError(
            f"parse_chain: expected a step like 'linear', 'log', 'clip(q=0,0.99)', got {step!r}"
        )
    kind, args = match.group(1), match.group(2) or ""
    pos, named = _parse_args(step, args)

    def pair(values: list[str]) -> tuple[float, float]:
        if len(values) != 2:
            raise ValueError(f"parse_chain: expected two numbers in {step!r}, got {values}")
        return (_number(step, values[0]), _number(step, values[1]))

    def one(values: list[str]) -> float:
        if len(values) != 1:
            raise ValueError(f"parse_chain: expected one number in {step!r}, got {values}")
        return _number(step, values[0])

    allowed = {
        "linear": set(),
        "zscore": set(),
        "robust": {"q"},
        "clip": {"q", "min", "max"},
        "log": {"shift"},
    }
    if kind not in allowed:
        raise ValueError(
            f"parse_chain: expected a step among {sorted(allowed)}, got {kind!r} in {step!r}"
        )
    unknown = set(named) - allowed[kind]
    if unknown or (pos and kind != "linear"):
        raise ValueError(f"parse_chain: unexpected arguments in {step!r}")
    if kind == "linear":
        return LinearScaler(feature_range=pair(pos)) if pos else LinearScaler()
    if kind == "zscore":
        return ZScoreScaler()
    if kind == "robust":
        return RobustScaler(quantiles=pair(named["q"])) if "q" in named else RobustScaler()
    if kind == "clip":
        if "q" in named:
            return Clip(quantiles=pair(named["q"]))
        return Clip(
            min=one(named["min"]) if "min" in named else None,
            max=one(named["max"]) if "max" in named else None,
        )
    shift = named.get("shift", ["0"])
    return LogScaler(shift="auto" if shift == ["auto"] else one(shift))


def parse_chain(text: str) -> Pipeline:
    """Build an unfitted :class:`Pipeline` from its readable form (the inverse of ``spec()``).

    Steps are separated by ``->``: ``linear``, ``linear(0,1)``, ``zscore``, ``robust``,
    ``robust(q=0.1,0.9)``, ``clip(q=0,0.99)``, ``clip(min=0,max=5)``, ``log``,
    ``log(shift=auto)``. ``identity`` or ``none`` (or an empty string) is the empty chain.

    >>> from gradwell.preprocessing import parse_chain
    >>> parse_chain("clip(q=0,0.99) -> log -> linear").spec()
    'clip(q=0,0.99) -> log -> linear'
    """
    if not isinstance(text, str):
        raise TypeError(f"parse_chain: expected a string, got {type(text).__name__}")
    if text.strip() in ("", "identity", "none"):
        return Pipeline([])
    return Pipeline([_build_step(part) for part in text.split("->")])


def as_chain(spec: Any, where: str = "as_chain") -> Pipeline:
    """Normalise a chain given as a scaler, a list of scalers, a Pipeline, a string or None.

    Always returns a new unfitted Pipeline, so user objects are never fitted in place.
    """
    if spec is None:
        return Pipeline([])
    if isinstance(spec, str):
        return parse_chain(spec)
    if isinstance(spec, Pipeline):
        return clone_scaler(spec)  # type: ignore[return-value]
    if isinstance(spec, Scaler):
        return Pipeline([clone_scaler(spec)])
    if isinstance(spec, (list, tuple)):
        return Pipeline([clone_scaler(s) if isinstance(s, Scaler) else s for s in spec])
    raise TypeError(
        f"{where}: expected a chain (a scaler, a list of scalers, a Pipeline, a string like "
        f"'log -> linear', or None), got {type(spec).__name__}"
    )
