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
checkpoint or the new one, never a truncated file. Loading reads arrays and JSON
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


def _unpack(obj: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(obj, list):
        return [_unpack(v, arrays) for v in obj]
    if not isinstance(obj, dict):
        return obj
    ((tag, value),) = obj.items()
    if tag == "dict":
        return {k: _unpack(v, arrays) for k, v in value}
    if tag == "tuple":
        return tuple(_unpack(v, arrays) for v in value)
    if tag == "array":
        return arrays[value]
    if tag == "scalar":
        return arrays[value][()]
    if tag == "tensor":
        return Tensor(arrays[value])
    raise CheckpointError(f"unknown entry {tag!r} in the checkpoint's JSON")


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
            config["scalers"] = {str(k): s.to_config() for k, s in scaler.items()}
        else:
            config["scaler"] = scaler.to_config()
    target_scaler = getattr(model, "target_scaler", None)
    if target_scaler is not None:  # fit(..., target_scaler=...) attached it; predict inverts it
        config["target_scaler"] = target_scaler.to_config()
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
    config["metadata"] = {k: _plain_json(v, repr(k)) for k, v in metadata.items()}
    header = json.dumps(config, separators=(",", ":"))
    _atomic_write(path, _safetensors_bytes(arrays, metadata={"gradwell": header}))
    return path


def _read(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
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
    config = json.loads(meta["gradwell"])
    if config.get("format") != FORMAT or config.get("version") != VERSION:
        raise CheckpointError(
            f"gw.load: {path} has format {config.get('format')!r} version "
            f"{config.get('version')!r}; this gradwell reads {FORMAT!r} version {VERSION}"
        )
    return config, arrays


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
    config, arrays = _read(path)
    target_scaler = None
    if "target_scaler" in config:  # rebuilt first: a bad entry leaves the model untouched
        from ..preprocessing import from_config

        target_scaler = from_config(config["target_scaler"])
    model.load_state_dict({name: arrays[f"model.{name}"] for name in config["model_keys"]})

    for what, obj in (("optimizer", optimizer), ("scheduler", scheduler)):
        if obj is None:
            continue
        if what not in config:
            raise CheckpointError(f"gw.load: {path} holds no {what} state (none was saved)")
        obj.load_state_dict(_unpack(config[what]["state"], arrays))

    random_state = config["random_state"]
    generators = _generators(model)
    for key, packed in random_state["modules"].items():
        if key in generators:
            generators[key].bit_generator.state = _unpack(packed, arrays)
    if loader is not None:
        if random_state["loader"] is None:
            raise CheckpointError(f"gw.load: {path} holds no data loader state (none was saved)")
        loader.load_state_dict(_unpack(random_state["loader"], arrays))

    result = dict(config["metadata"])
    if target_scaler is not None:
        model.target_scaler = result["target_scaler"] = target_scaler
    if "scaler" in config or "scalers" in config:
        from ..preprocessing import from_config

        if "scaler" in config:
            result["scaler"] = from_config(config["scaler"])
        else:
            result["scalers"] = {k: from_config(c) for k, c in config["scalers"].items()}
    return result


__all__ = ["CheckpointError", "load", "save"]
