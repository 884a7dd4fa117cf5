"""Checkpoints: one safetensors file holding arrays, with the configuration as JSON.

Format (version 1). ``path`` is a single ``.safetensors`` file, readable by any
safetensors reader:

* tensors ``model.<name>`` -- the model's ``state_dict()`` (parameters and buffers);
* tensors ``optimizer.<i>``, ``scheduler.<i>``, ``random.<i>`` -- arrays found in
  optimizer state, scheduler state and random generator states;
* header metadata ``"gradwell"`` -- a JSON document with the format and version, the
  optimizer's and scheduler's state (hyperparameters, step counts; arrays replaced by
  references to the tensors above), scaler configurations (``to_config()``; the
  model's ``target_scaler`` from ``fit(..., target_scaler=...)`` too), the
  random state of every numpy Generator held by a module (Dropout) and of the data
  loader, and the user's metadata.

The file is written whole to a temporary file in the same folder, flushed to disk,
then renamed over ``path`` (an atomic replace): a crash leaves either the old
checkpoint or the new one, never a truncated file; the temporary file a killed save
leaves behind is removed by the next save to the same path. Loading reads arrays and JSON
only; it never runs code (no pickle).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save as _safetensors_bytes

from .._atomic import atomic_write
from ..autograd.tensor import Tensor

FORMAT = "gradwell.checkpoint"
VERSION = 1
_RESERVED = ("scaler", "scalers", "loader", "target_scaler")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read, or does not fit what it is loaded into."""


def _contiguous(a: np.ndarray) -> np.ndarray:
    # np.ascontiguousarray would turn a 0-d array (a buffer's step count) into shape (1,).
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)


# ------------------------------------------------------------- JSON <-> arrays
class _Packer:
    """Turns nested state (dicts, lists, numbers, arrays) into JSON plus named arrays.

    Containers are tagged so that loading rebuilds exactly the same Python types:
    ``{"dict": [[key, value], ...]}`` (keys keep their type, e.g. int parameter
    indices), ``{"tuple": [...]}``, ``{"array": name}``, ``{"scalar": name}`` (a numpy
    scalar, kept a numpy scalar so float32 arithmetic stays float32 after resuming),
    ``{"tensor": name}``. Lists, strings, bools, ints, floats and None are plain JSON.
    """

    def __init__(self, prefix: str, arrays: dict[str, np.ndarray]) -> None:
        self.prefix = prefix
        self.arrays = arrays
        self.count = 0

    def _store(self, a: np.ndarray, where: str) -> str:
        if a.dtype.kind not in "biuf":
            raise TypeError(f"gw.save: cannot store {where}: arrays of dtype {a.dtype}")
        name = f"{self.prefix}.{self.count}"
        self.count += 1
        self.arrays[name] = _contiguous(a)
        return name

    def pack(self, obj: Any, where: str) -> Any:
        if obj is None or isinstance(obj, (bool, int, float, str)):
            return obj
        if isinstance(obj, Tensor):
            return {"tensor": self._store(obj.data, where)}
        if isinstance(obj, np.ndarray):
            return {"array": self._store(obj, where)}
        if isinstance(obj, np.generic):
            return {"scalar": self._store(np.asarray(obj), where)}
        if isinstance(obj, tuple):
            return {"tuple": [self.pack(v, f"{where}[{i}]") for i, v in enumerate(obj)]}
        if isinstance(obj, list):
            return [self.pack(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        if isinstance(obj, dict):
            items = []
            for k, v in obj.items():
                if not isinstance(k, (str, int)):
                    raise TypeError(f"gw.save: cannot store {where}: dict key {k!r} is not str/int")
                items.append([k, self.pack(v, f"{where}[{k!r}]")])
            return {"dict": items}
        raise TypeError(
            f"gw.save: cannot store {where}: a {type(obj).__name__} is not an array, number, "
            "string or container of them"
        )


def _unpack(obj: Any, arrays: dict[str, np.ndarray], where: str) -> Any:
    """Rebuild what :class:`_Packer` stored; CheckpointError naming ``where`` when the
    JSON is not what it writes (the depth was bounded when the file was read)."""
    if isinstance(obj, list):
        return [_unpack(v, arrays, where) for v in obj]
    if not isinstance(obj, dict):
        return obj
    tag, value = next(iter(obj.items())) if len(obj) == 1 else (None, None)
    if (
        tag == "dict"
        and isinstance(value, list)
        and all(
            isinstance(kv, list) and len(kv) == 2 and isinstance(kv[0], (str, int)) for kv in value
        )
    ):
        return {k: _unpack(v, arrays, where) for k, v in value}
    if tag == "tuple" and isinstance(value, list):
        return tuple(_unpack(v, arrays, where) for v in value)
    if tag in ("array", "scalar", "tensor") and isinstance(value, str) and value in arrays:
        a = arrays[value]
        return a if tag == "array" else a[()] if tag == "scalar" else Tensor(a)
    raise CheckpointError(
        f"{where} is not a gradwell checkpoint: its JSON holds {obj!r:.120} where an array "
        "reference or a tagged container was expected"
    )


def _plain_json(value: Any, where: str) -> Any:
    """User metadata as plain JSON (numpy numbers become Python numbers)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain_json(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {str(k): _plain_json(v, f"{where}[{k!r}]") for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(
        f"gw.save: metadata {where} is a {type(value).__name__}; metadata must be JSON-like "
        "(numbers, strings, lists, dicts)"
    )


# ------------------------------------------------------------------ randomness
def _generators(model: Any) -> dict[str, np.random.Generator]:
    """Every numpy Generator a module holds (e.g. Dropout's), by module path and attribute."""
    found: dict[str, np.random.Generator] = {}
    for mod_name, module in model.named_modules():
        for attr, value in vars(module).items():
            if isinstance(value, np.random.Generator):
                found[f"{mod_name}.{attr}" if mod_name else attr] = value
    return found


def _state_array(value: Any) -> np.ndarray:
    return np.asarray(value.data if isinstance(value, Tensor) else value)


# ------------------------------------------------------------------ file I/O
def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all (temp file, fsync, rename)."""
    if path.is_dir():
        raise IsADirectoryError(f"gw.save: {path} is a folder; a checkpoint is one file")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, data, durable=True)


def _scaler_config(scaler: Any, key: str) -> dict[str, Any]:
    if not callable(getattr(scaler, "to_config", None)):
        raise TypeError(
            f"gw.save: scaler{f' {key}' if key else ''} must be a scaler from gw.preprocessing "
            f"(or a dict of them); got {type(scaler).__name__}"
        )
    return scaler.to_config()  # type: ignore[no-any-return]


# ------------------------------------------------------------------ public API
def _checkpoint_path(path: Any, model: Any, who: str) -> Path:
    """``path`` as a Path, or a clear error when the arguments came the other way round
    (PyTorch's ``torch.save`` takes the object first, the path second)."""
    if not isinstance(path, (str, os.PathLike)):
        swapped = isinstance(model, (str, os.PathLike))
        raise TypeError(
            f"{who}: expected the checkpoint's path first, then the model "
            f"(gw.{who}(path, model, ...)); got a {type(path).__name__} as the path"
            + (" and a path as the model: swap them" if swapped else "")
        )
    if not hasattr(model, "state_dict"):
        raise TypeError(
            f"{who}: expected a model (a gw.nn.Module) after the path; got {type(model).__name__}"
        )
    return Path(path)


def save(
    path: str | os.PathLike[str],
    model: Any,
    optimizer: Any = None,
    scheduler: Any = None,
    scaler: Any = None,
    *,
    loader: Any = None,
    **metadata: Any,
) -> Path:
    """Save a model (and optionally its training state) to one checkpoint file.

    Saves the model's parameters and buffers, the random state of its Dropout
    layers, and when given: the optimizer's state, the learning-rate
    scheduler's state, a fitted scaler (or a dict of them) from
    ``gw.preprocessing``, the data loader's shuffle state, and ``metadata``
    (JSON-like values: epoch, metrics, notes). Returns the path written.

    >>> import gradwell as gw                                # doctest: +SKIP
    >>> gw.save("run.safetensors", model, optimizer, epoch=10)  # doctest: +SKIP
    >>> gw.load("run.safetensors", model, optimizer)["epoch"]   # doctest: +SKIP
    10
    """
    path = _checkpoint_path(path, model, "save")
    arrays: dict[str, np.ndarray] = {}
    for name, value in model.state_dict().items():
        arrays[f"model.{name}"] = _contiguous(_state_array(value))
    config: dict[str, Any] = {"format": FORMAT, "version": VERSION}
    config["model_keys"] = list(model.state_dict().keys())
    if optimizer is not None:
        config["optimizer"] = {
            "class": type(optimizer).__name__,
            "state": _Packer("optimizer", arrays).pack(optimizer.state_dict(), "optimizer state"),
        }
    if scheduler is not None:
        config["scheduler"] = {
            "class": type(scheduler).__name__,
            "state": _Packer("scheduler", arrays).pack(scheduler.state_dict(), "scheduler state"),
        }
    if scaler is not None:
        if isinstance(scaler, dict):
            config["scalers"] = {str(k): _scaler_config(s, repr(k)) for k, s in scaler.items()}
        else:
            config["scaler"] = _scaler_config(scaler, "")
    target_scaler = getattr(model, "target_scaler", None)
    if target_scaler is not None:  # fit(..., target_scaler=...) attached it; predict inverts it
        config["target_scaler"] = _scaler_config(target_scaler, "target_scaler")
    rand = _Packer("random", arrays)
    config["random_state"] = {
        "modules": {
            k: rand.pack(g.bit_generator.state, f"random state of {k}")
            for k, g in _generators(model).items()
        },
        "loader": None if loader is None else rand.pack(loader.state_dict(), "loader state"),
    }
    for key in _RESERVED:
        if key in metadata:
            raise TypeError(f"gw.save: metadata key {key!r} is reserved")
    if _depth(metadata) > _MAX_DEPTH - 2:  # what load would refuse (the config wraps it)
        raise ValueError(f"gw.save: metadata nests more than {_MAX_DEPTH - 2} levels")
    config["metadata"] = {k: _plain_json(v, repr(k)) for k, v in metadata.items()}
    header = json.dumps(config, separators=(",", ":"))
    _atomic_write(path, _safetensors_bytes(arrays, metadata={"gradwell": header}))
    return path


_MAX_DEPTH = 64  # the deepest JSON gradwell writes is about 12 levels


def read(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The checked JSON configuration and the arrays of the checkpoint at ``path``.

    Raises :class:`CheckpointError` naming the file when it is not a safetensors file,
    not a gradwell checkpoint, or was written by a newer version of gradwell.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"gw.load: no checkpoint file at {path}")
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
            arrays = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # the safetensors reader raises its own error types
        raise CheckpointError(f"gw.load: {path} is not a readable safetensors file ({e})") from e
    if "gradwell" not in meta:
        raise CheckpointError(
            f"gw.load: {path} is a safetensors file but not a gradwell checkpoint"
        )
    try:
        config = json.loads(meta["gradwell"])
    except RecursionError:
        raise CheckpointError(
            f"gw.load: {path} is not a gradwell checkpoint: its metadata nests more than "
            f"{_MAX_DEPTH} levels"
        ) from None
    except ValueError as e:
        raise CheckpointError(
            f"gw.load: {path} is not a gradwell checkpoint: its metadata is not valid JSON "
            f"({str(e)[:80]})"
        ) from None
    _check_schema(config, arrays, f"gw.load: {path}")
    return config, arrays


def _depth(obj: Any) -> int:
    deepest, stack = 0, [(obj, 1)]
    while stack:
        value, d = stack.pop()
        deepest = max(deepest, d)
        if d <= _MAX_DEPTH and isinstance(value, (dict, list)):
            stack.extend((v, d + 1) for v in (value.values() if isinstance(value, dict) else value))
    return deepest


def _check_schema(config: Any, arrays: dict[str, np.ndarray], where: str) -> None:
    """The checkpoint's JSON has every entry load reads, of the right kind."""
    not_ours = f"{where} is not a gradwell checkpoint"
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        got = config.get("format") if isinstance(config, dict) else type(config).__name__
        raise CheckpointError(f"{not_ours}: its format is {got!r:.80}, not {FORMAT!r}")
    version = config.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointError(f"{not_ours}: its format version is {version!r:.80}")
    if version > VERSION:
        raise CheckpointError(
            f"{where} was written by a newer version of gradwell (checkpoint format version "
            f"{version}; this one reads version {VERSION}): upgrade gradwell to load it"
        )
    if _depth(config) > _MAX_DEPTH:
        raise CheckpointError(f"{not_ours}: its metadata nests more than {_MAX_DEPTH} levels")

    def entry(key: str, kind: type | tuple[type, ...], what: str, inside: Any = config) -> Any:
        value = inside.get(key, _Missing)
        if not isinstance(value, kind):
            shown = "nothing" if value is _Missing else f"{value!r:.80}"
            raise CheckpointError(f"{not_ours}: {key!r} must be {what}; it holds {shown}")
        return value

    keys = entry("model_keys", list, "a list of names")
    for name in keys:
        if not isinstance(name, str) or f"model.{name}" not in arrays:
            raise CheckpointError(f"{not_ours}: model key {name!r:.80} has no tensor in the file")
    random_state = entry("random_state", dict, "a dict")
    entry("modules", dict, "a dict of generator states", random_state)
    entry("loader", (dict, type(None)), "a loader state or null", random_state)
    entry("metadata", dict, "a dict")
    for part in ("optimizer", "scheduler"):
        if part in config:
            entry("class", str, "a class name", entry(part, dict, "a dict"))
            entry("state", dict, "a packed state", config[part])
    if "scaler" in config:
        entry("scaler", dict, "a scaler configuration")
    if "scalers" in config:
        entry("scalers", dict, "a dict of scaler configurations")


class _Missing:
    """Marks an entry absent from the checkpoint's JSON."""


def load(
    path: str | os.PathLike[str],
    model: Any,
    optimizer: Any = None,
    scheduler: Any = None,
    *,
    loader: Any = None,
) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save` into ``model`` (and the others given).

    Restores parameters and buffers (strictly: names and shapes must match), the
    random state of the model's Generators (Dropout), and, when passed, the
    optimizer's, scheduler's and loader's state. Returns the saved metadata; a
    saved scaler is rebuilt and returned under ``"scaler"`` (``"scalers"`` for a dict); a
    saved target scaler is set back on the model as ``model.target_scaler`` (so
    ``gw.predict`` returns original units) and returned under ``"target_scaler"``.
    Never runs code from the file.
    """
    path = _checkpoint_path(path, model, "load")
    config, arrays = read(path)
    where = f"gw.load: {path}"
    # Every part is checked before anything is written, so a failed load changes nothing.
    writes = [_prepared(model, {name: arrays[f"model.{name}"] for name in config["model_keys"]})]
    for what, obj in (("optimizer", optimizer), ("scheduler", scheduler)):
        if obj is None:
            continue
        if what not in config:
            raise CheckpointError(f"gw.load: {path} holds no {what} state (none was saved)")
        saved_class = config[what]["class"]
        if saved_class != type(obj).__name__:
            raise CheckpointError(
                f"gw.load: {path} holds {what} state of class {saved_class}; it cannot be "
                f"loaded into {type(obj).__name__}"
            )
        writes.append(_prepared(obj, _unpack(config[what]["state"], arrays, where), where))

    random_state = config["random_state"]
    generators = _generators(model)
    for key, packed in random_state["modules"].items():
        if key in generators:
            state = _unpack(packed, arrays, where)
            writes.append(_generator_write(generators[key], state, key, where))
    if loader is not None:
        if random_state["loader"] is None:
            raise CheckpointError(f"gw.load: {path} holds no data loader state (none was saved)")
        writes.append(_prepared(loader, _unpack(random_state["loader"], arrays, where), where))

    result = dict(config["metadata"])
    if any(k in config for k in ("scaler", "scalers", "target_scaler")):
        from ..preprocessing import from_config

        try:
            if "target_scaler" in config:
                result["target_scaler"] = from_config(config["target_scaler"])
            if "scaler" in config:
                result["scaler"] = from_config(config["scaler"])
            elif "scalers" in config:
                result["scalers"] = {k: from_config(c) for k, c in config["scalers"].items()}
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise CheckpointError(
                f"{where}: its scaler cannot be rebuilt ({type(e).__name__}: {e})"
            ) from None
    # Objects that cannot check first (not gradwell's) load before the checked writes,
    # which cannot fail: if one of them raises, the rest is still untouched.
    for write in sorted(writes, key=lambda w: isinstance(w, _Unchecked), reverse=True):
        write()
    if "target_scaler" in result:  # predict maps the model's outputs back through it
        model.target_scaler = result["target_scaler"]
    return result


class _Unchecked:
    """Loading into an object without ``_prepare_load``: its own ``load_state_dict``."""

    def __init__(self, obj: Any, state: Any) -> None:
        self.obj, self.state = obj, state

    def __call__(self) -> None:
        self.obj.load_state_dict(self.state)


def _prepared(obj: Any, state: Any, where: str | None = None) -> Any:
    """The function that loads ``state`` into ``obj``, after checking it whole
    (gradwell's modules, optimizers, schedules and loaders check in ``_prepare_load``).
    With ``where``, a state that does not fit is a CheckpointError naming the file."""
    prepare = getattr(obj, "_prepare_load", None)
    if prepare is None:
        return _Unchecked(obj, state)
    if where is None:
        return prepare(state)
    try:
        return prepare(state)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{where}: {e}") from None


def _generator_write(generator: np.random.Generator, state: Any, key: str, where: str) -> Any:
    """Check a saved generator state on a scratch generator of the same kind first."""
    scratch = type(generator.bit_generator)()
    try:
        scratch.state = state
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(
            f"{where} is not a gradwell checkpoint: the random state of {key!r} is not a "
            f"{type(scratch).__name__} state ({e})"
        ) from None

    def write() -> None:
        generator.bit_generator.state = state

    return write


__all__ = ["CheckpointError", "load", "save"]
