"""Module: the base class of layers and models (parameters, buffers, sub-modules, modes)."""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from ..autograd import recording
from ..autograd.creation import tensor as _tensor
from ..autograd.tensor import Tensor, _is_cpu, _no_device
from .parameter import Parameter
from .summary import summarize

ForwardHook = Callable[["Module", tuple[Any, ...], Any], Any]


def _edited(module: Module) -> None:
    """Count a change to ``module``'s own state: an attribute set, its mode, its
    parameters or buffers replaced or loaded. A compiled step (:mod:`gradwell.train.compiled`)
    compares these versions to know that a recorded tape still describes the model."""
    module.__dict__["_version"] += 1


class _Calls(threading.local):
    """The modules being called in this thread, innermost last."""

    def __init__(self) -> None:
        self.stack: list[Module] = []


_calls = _Calls()


def current_module() -> Module | None:
    """The innermost module whose ``forward`` is running in this thread, or None.

    The one accessor of where an op runs: the recording seam's steps carry it
    (``step.scope``), and error messages name it.
    """
    stack = _calls.stack
    return stack[-1] if stack else None


recording.set_scope(current_module)


class RemovableHandle:
    """Returned by :meth:`Module.register_forward_hook`; ``remove()`` unregisters the hook."""

    _ids = itertools.count()
    __slots__ = ("_hooks", "id")

    def __init__(self, hooks: dict[int, Any]) -> None:
        self._hooks = hooks
        self.id = next(RemovableHandle._ids)

    def remove(self) -> None:
        """Unregister the hook (a second call does nothing)."""
        self._hooks.pop(self.id, None)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


class IncompatibleKeys(NamedTuple):
    """What :meth:`Module.load_state_dict` did not match (with ``strict=False``)."""

    missing_keys: list[str]
    unexpected_keys: list[str]


class Module:
    """Base class of every layer and model.

    Assigning a :class:`Parameter` or a ``Module`` to an attribute registers it, so
    ``parameters()``, ``state_dict()``, ``train()``/``eval()`` and ``repr`` find it.
    Buffers (saved but not optimised, e.g. BatchNorm's running statistics) are
    registered with :meth:`register_buffer`. Subclasses call ``super().__init__()``
    first and define ``forward``; call the module itself, not ``forward``.

    >>> import gradwell as gw
    >>> class Affine(gw.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.scale = gw.nn.Parameter([2.0])
    ...         self.register_buffer("calls", [0.0])
    ...     def forward(self, x):
    ...         return x * self.scale
    >>> m = Affine()
    >>> [name for name, _ in m.named_parameters()], list(m.state_dict())
    (['scale'], ['scale', 'calls'])
    >>> m(gw.tensor([3.0])).item()
    6.0
    """

    training: bool
    _parameters: dict[str, Parameter | None]
    _buffers: dict[str, Tensor | None]
    _modules: dict[str, Module | None]
    _forward_hooks: dict[int, ForwardHook]

    if TYPE_CHECKING:  # buffers are attributes set through register_buffer

        def __getattr__(self, name: str) -> Any: ...

    def __init__(self) -> None:
        d = self.__dict__
        d["_parameters"] = {}
        d["_buffers"] = {}
        d["_modules"] = {}
        d["_forward_hooks"] = {}
        d["training"] = True
        d["_version"] = 0  # counts changes of this module's own state: see _edited

    # --- calling -------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # Hot path: one push, one pop, and a truthiness test when no hook is registered.
        stack = _calls.stack
        stack.append(self)
        try:
            out = self.forward(*args, **kwargs)
            if self._forward_hooks:
                for hook in tuple(self._forward_hooks.values()):
                    replaced = hook(self, args, out)
                    if replaced is not None:
                        out = replaced
        finally:
            stack.pop()
        return out

    def register_forward_hook(self, hook: ForwardHook) -> RemovableHandle:
        """Call ``hook(module, inputs, output)`` after every forward of this module.

        ``inputs`` is the tuple of positional arguments. A hook that returns something
        other than None replaces the output. Returns a handle whose ``remove()``
        unregisters the hook.

        >>> import gradwell as gw
        >>> seen = []
        >>> relu = gw.nn.ReLU()
        >>> handle = relu.register_forward_hook(lambda m, inp, out: seen.append(out.shape))
        >>> _ = relu(gw.zeros(2, 3))
        >>> handle.remove()
        >>> _ = relu(gw.zeros(1))
        >>> seen
        [(2, 3)]
        """
        handle = RemovableHandle(self._forward_hooks)
        self._forward_hooks[handle.id] = hook
        return handle

    def summary(
        self,
        example: Any = None,
        *,
        input_shape: Any = None,
        dtype: Any = np.float32,
        print_fn: Callable[[str], Any] | None = print,
    ) -> Any:
        """Keras's summary: each layer's path, type, output shape and parameter count.

        Runs ``example`` (an input batch), or zeros of shape ``(2, *input_shape)``, once
        in eval mode without recording a graph (every module keeps its mode). The batch
        axis shows as ``N``. Counts follow Keras: trainable parameters; non-trainable
        ones are frozen parameters and running statistics (BatchNorm's mean and
        variance). Prints the table with ``print_fn`` (None: quiet) and returns a
        ``Summary`` (``.rows``, ``.total``, ``.trainable``, ``.non_trainable``; ``str()``
        is the table).

        >>> import gradwell as gw
        >>> net = gw.nn.Sequential(gw.nn.Linear(4, 8), gw.nn.BatchNorm1d(8), gw.nn.ReLU())
        >>> s = net.summary(input_shape=(4,), print_fn=None)
        >>> [(r.path, r.output_shape, r.params) for r in s.rows]
        [('0', ('N', 8), 40), ('1', ('N', 8), 32), ('2', ('N', 8), 0)]
        >>> s.trainable, s.non_trainable
        (56, 16)
        """
        result = summarize(self, example, input_shape, dtype)
        if print_fn is not None:
            print_fn(str(result))
        return result

    # --- registration ----------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        d = self.__dict__
        if "_parameters" not in d:
            raise AttributeError(
                f"cannot assign '{name}' before Module.__init__() ran: call super().__init__() "
                f"first in {type(self).__name__}.__init__"
            )
        if d.get(name, _edited) is not value:  # _edited: a sentinel
            d["_version"] += 1
        params, buffers, modules = d["_parameters"], d["_buffers"], d["_modules"]
        if isinstance(value, Parameter):
            buffers.pop(name, None)
            modules.pop(name, None)
            params[name] = value
        elif isinstance(value, Module):
            params.pop(name, None)
            buffers.pop(name, None)
            modules[name] = value
        elif name in params or name in modules:  # a registered one: only None replaces it
            kind, cls = ("parameter", "Parameter") if name in params else ("sub-module", "Module")
            if value is not None:
                raise TypeError(
                    f"cannot assign {type(value).__name__} to {kind} '{name}' of "
                    f"{type(self).__name__}: expected a gw.nn.{cls} or None"
                )
            (params if name in params else modules)[name] = None
        elif name in buffers:
            value = None if value is None else _as_buffer(value, name)
            buffers[name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        _edited(self)
        for registry in (self._parameters, self._buffers, self._modules):
            registry.pop(name, None)
        object.__delattr__(self, name)

    def register_buffer(self, name: str, value: Any) -> None:
        """Register ``value`` (an array, a Tensor or None) as the buffer ``name``.

        Buffers are saved in ``state_dict`` but are not parameters: no optimizer
        updates them and they never require grad.
        """
        if "_buffers" not in self.__dict__:
            raise AttributeError("call super().__init__() before register_buffer()")
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"a buffer name must be a non-empty string without '.'; got {name!r}")
        if name in self.__dict__ and name not in self._buffers:
            raise KeyError(f"'{name}' is already an attribute of {type(self).__name__}")
        _edited(self)
        self._buffers[name] = None if value is None else _as_buffer(value, name)
        object.__setattr__(self, name, self._buffers[name])

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register ``param`` as the parameter ``name`` (same as assigning the attribute)."""
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(
                f"register_parameter('{name}'): expected a Parameter or None; "
                f"got {type(param).__name__}"
            )
        _edited(self)
        self._parameters[name] = param
        self._buffers.pop(name, None)
        self._modules.pop(name, None)
        object.__setattr__(self, name, param)

    def add_module(self, name: str, module: Module | None) -> None:
        """Register ``module`` as the sub-module ``name`` (same as assigning the attribute)."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(
                f"add_module('{name}'): expected a Module or None; got {type(module).__name__}"
            )
        _edited(self)
        self._modules[name] = module
        self._parameters.pop(name, None)
        self._buffers.pop(name, None)
        object.__setattr__(self, name, module)

    # --- traversal -------------------------------------------------------------
    def named_modules(
        self, prefix: str = "", remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Module]]:
        """(dotted name, module) for this module (named ``prefix``, "" by default) and
        every module below it, depth first; a module shared in two places comes once."""
        seen: set[int] = set()
        stack: list[tuple[str, Module]] = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if remove_duplicate:
                if id(module) in seen:
                    continue
                seen.add(id(module))
            yield name, module
            children = [
                (f"{name}.{child_name}" if name else child_name, child)
                for child_name, child in module._modules.items()
                if child is not None
            ]
            stack.extend(reversed(children))

    def modules(self) -> Iterator[Module]:
        """This module and every module below it."""
        return iter(self._module_list())

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """(name, module) for the direct sub-modules."""
        seen: set[int] = set()
        for name, module in self._modules.items():
            if module is not None and id(module) not in seen:
                seen.add(id(module))
                yield name, module

    def children(self) -> Iterator[Module]:
        """The direct sub-modules."""
        for _, module in self.named_children():
            yield module

    def _module_list(self) -> list[Module]:
        """This module and all below it, once each, depth first (no names: the fast walk)."""
        found: list[Module] = []
        seen: set[int] = set()
        stack: list[Module] = [self]
        while stack:
            module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            found.append(module)
            stack.extend(reversed([m for m in module._modules.values() if m is not None]))
        return found

    def _named_members(
        self, registry: str, prefix: str, recurse: bool, remove_duplicate: bool
    ) -> Iterator[tuple[str, Tensor]]:
        seen: set[int] = set()
        modules = (
            self.named_modules(prefix, remove_duplicate) if recurse else iter([(prefix, self)])
        )
        for module_name, module in modules:
            for name, value in getattr(module, registry).items():
                if value is None:
                    continue
                if remove_duplicate:
                    if id(value) in seen:
                        continue
                    seen.add(id(value))
                yield (f"{module_name}.{name}" if module_name else name), value

    def named_parameters(
        self, prefix: str = "", recurse: bool = True
    ) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, parameter), e.g. ``("layers.0.weight", ...)``; shared ones once."""
        return self._named_members("_parameters", prefix, recurse, True)  # type: ignore[return-value]

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        """Every parameter of this module and (with ``recurse``) its sub-modules, once each."""
        seen: set[int] = set()
        for module in self._module_list() if recurse else (self,):
            for p in module._parameters.values():
                if p is not None and id(p) not in seen:
                    seen.add(id(p))
                    yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Tensor]]:
        """(dotted name, buffer) for every registered buffer that is not None."""
        return self._named_members("_buffers", prefix, recurse, True)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Call ``fn(module)`` on every sub-module (children first) and on self; returns self."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # --- modes and gradients --------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Set training mode (``mode=True``) or evaluation mode on this module and all below.

        Only Dropout and BatchNorm behave differently. Returns self.
        """
        mode = bool(mode)
        for module in self.modules():
            if module.__dict__["training"] is not mode:
                _edited(module)
                module.__dict__["training"] = mode
        return self

    def eval(self) -> Module:
        """Evaluation mode: Dropout is the identity, BatchNorm uses its running statistics."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Freeze (False) or unfreeze every parameter. Returns self."""
        for p in self.parameters():
            p.requires_grad = requires_grad
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the accumulated gradients: set ``.grad`` to None, or to zeros."""
        for p in self.parameters():
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            elif p.grad.is_leaf and p.grad.data.flags.writeable:
                p.grad.data.fill(0)
            else:  # a gradient recorded with create_graph: detach it, never write into a graph
                p.grad = Tensor(np.zeros_like(p.grad.data))

    def to(self, target: Any = None, dtype: Any = None) -> Module:
        """Convert floating-point parameters and buffers (and gradients) to ``dtype``, in place.

        As in PyTorch, ``target`` may be a dtype or a device; gradwell has one device,
        "cpu", and any other is refused with a clear error.

        >>> import gradwell as gw
        >>> gw.nn.Linear(2, 3).double().weight.dtype
        dtype('float64')
        >>> gw.nn.Linear(2, 3).to("cpu").weight.dtype
        dtype('float32')
        """
        if target is not None and _is_cpu(target):
            target = None
        if target is not None:
            try:
                dtype = np.dtype(target)
            except TypeError:
                raise ValueError(_no_device(target)) from None
        if dtype is None:
            return self
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise TypeError(f"Module.to(): expected a floating-point dtype; got {dtype}")
        for module in self.modules():
            for t in itertools.chain(module._parameters.values(), module._buffers.values()):
                if t is not None and t.data.dtype.kind == "f" and t.data.dtype != dtype:
                    t.data = t.data.astype(dtype)
                    if t.grad is not None:
                        t.grad = Tensor(t.grad.data.astype(dtype))
        return self

    def double(self) -> Module:
        """``to(float64)``: for gradient checks."""
        return self.to(np.float64)

    def float(self) -> Module:
        """``to(float32)``."""
        return self.to(np.float32)

    # --- saving and loading --------------------------------------------------------
    def _state_tensors(self) -> OrderedDict[str, Tensor]:
        # Each module's parameters, then its buffers, depth first (PyTorch's order); a
        # shared tensor appears under every name it has, so loading restores all of them.
        state: OrderedDict[str, Tensor] = OrderedDict()
        for module_name, module in self.named_modules(remove_duplicate=False):
            dot = module_name + "." if module_name else ""
            for registry in (module._parameters, module._buffers):
                for name, value in registry.items():
                    if value is not None:
                        state[dot + name] = value
        return state

    def state_dict(self) -> OrderedDict[str, np.ndarray]:
        """Parameters and buffers by dotted name, as copies of their numpy arrays.

        >>> import gradwell as gw
        >>> list(gw.nn.Sequential(gw.nn.Linear(2, 3), gw.nn.BatchNorm1d(3)).state_dict())[:4]
        ['0.weight', '0.bias', '1.weight', '1.bias']
        """
        return OrderedDict((name, t.data.copy()) for name, t in self._state_tensors().items())

    def load_state_dict(self, state_dict: Any, strict: bool = True) -> IncompatibleKeys:
        """Copy arrays from ``state_dict`` into this module's parameters and buffers.

        Everything is checked before anything is written, so a failed load changes
        nothing. Shapes must match and values be numbers; with ``strict`` (the default)
        the key sets must be equal too. Values are cast to each parameter's dtype.
        Returns the missing and unexpected keys.
        """
        return self._prepare_load(state_dict, strict)()

    def _prepare_load(self, state_dict: Any, strict: bool = True) -> Callable[[], IncompatibleKeys]:
        """Check ``state_dict`` whole; return the function that writes it (which cannot
        fail). ``gw.load`` checks every part of a checkpoint this way before writing any."""
        name = type(self).__name__
        if not isinstance(state_dict, Mapping):
            raise TypeError(
                f"load_state_dict for {name}: expected a dict of arrays by name (as made by "
                f"state_dict()); got {type(state_dict).__name__}"
            )
        own = self._state_tensors()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        arrays: dict[str, np.ndarray] = {}
        mismatched = []
        for key, t in own.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            try:
                arr = value.data if isinstance(value, Tensor) else np.asarray(value)
            except ValueError:  # ragged nested lists
                arr = np.empty(0, object)
            if arr.dtype.kind not in "biuf":
                mismatched.append(
                    f"'{key}': expected numbers, the state dict has dtype {arr.dtype}"
                )
            elif arr.shape != t.data.shape:
                mismatched.append(
                    f"'{key}': the model has shape {t.data.shape}, the state dict has {arr.shape}"
                )
            arrays[key] = arr
        problems = []
        if strict and missing:
            problems.append(f"missing keys (in the model, not in the state dict): {missing}")
        if strict and unexpected:
            problems.append(f"unexpected keys (in the state dict, not in the model): {unexpected}")
        if mismatched:
            problems.append("mismatches: " + "; ".join(mismatched))
        if problems:
            raise RuntimeError(
                f"load_state_dict for {name} failed, nothing was loaded:\n  "
                + "\n  ".join(problems)
            )

        def write() -> IncompatibleKeys:
            for key, arr in arrays.items():
                t = own[key]
                if t.data.flags.writeable:
                    t.data[...] = arr
                else:
                    t.data = np.array(arr, dtype=t.data.dtype)
                t.bump_version()
            for module in self.modules():
                _edited(module)
            return IncompatibleKeys(missing, unexpected)

        return write

    # --- display ----------------------------------------------------------------------
    def extra_repr(self) -> str:
        """The configuration shown between the parentheses of ``repr`` (override it)."""
        return ""

    def __repr__(self) -> str:
        lines = []
        extra = self.extra_repr()
        if extra:
            lines.extend(extra.split("\n"))
        for name, module in self._modules.items():
            body = repr(module).replace("\n", "\n  ")
            lines.append(f"({name}): {body}")
        if not self._modules:
            return f"{type(self).__name__}({extra})"
        return type(self).__name__ + "(\n  " + "\n  ".join(lines) + "\n)"

    def _short_repr(self) -> str:
        """One-line description for error messages: class name and configuration."""
        return f"{type(self).__name__}({self.extra_repr()})"


def _as_buffer(value: Any, name: str) -> Tensor:
    if isinstance(value, Parameter):
        raise TypeError(f"buffer '{name}' cannot be a Parameter (register it as a parameter)")
    if isinstance(value, Tensor):
        if value.requires_grad:
            raise TypeError(f"buffer '{name}' must not require grad; pass .detach()")
        return value
    return _tensor(value)  # float data becomes float32, as everywhere in gradwell


def where_called() -> str:
    """' in <module>' naming the innermost module being called, or '' outside modules."""
    top = current_module()
    return "" if top is None else f" in {top._short_repr()}"
