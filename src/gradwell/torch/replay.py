"""The NaN trap for torch: replay one batch to name what first made inf or NaN.

The replay runs on the model itself, set apart from training (:func:`_borrowed`): its
hooks set aside, its buffers put back after, gradients taken from the autograd engine
(never accumulated into ``.grad``), the random state forked. Finiteness is read in bulk
(:func:`_finite_each`): the small tensors flattened into one sum, a whole pass one
transfer. On a small model a replay is a few hundred ops, each costing its dispatch, so
the replay runs no op (nor Python layer) that another already answered.

- Forward: one global module hook records each module's call. When the model's output
  or the loss is not finite, one check of the weights and of every tensor the modules
  took and made finds the first module whose output is not finite while its inputs
  are, and it runs once more on those inputs under a torch function mode that sees
  every op (a module's ``F.linear`` as much as a hand-written ``torch.log``) and stops
  at the first op making a non-finite value from finite inputs. A non-finite loss from
  a finite forward runs once more under that mode.
- Backward: when the loss is finite, one backward gives the parameters' gradients and
  the gradient reaching each module's inputs and outputs, and one check reads them with
  the weights and the forward's tensors (a non-finite value the forward made and masked
  is found as above). Then the module where the gradient turns non-finite (finite at
  its outputs, not at its inputs or parameters) runs once more alone with every op
  recorded (op, module, the user's line), and its backward runs with a hook on each
  recorded graph node, which finds the first that made a non-finite gradient from
  finite ones; when none did (an op the function mode does not see),
  ``torch.autograd.detect_anomaly`` names the graph node. (The whole batch is rerun so
  only when no module is found.)
"""

from __future__ import annotations

import array
import linecache
import math
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

import torch
from torch.nn.modules.module import register_module_forward_hook
from torch.overrides import TorchFunctionMode

from ..doctor.replay import weights_already_nonfinite

#: The ops whose domain the remedies know, under the names the diagnosis uses.
OP_NAMES = {
    "__truediv__": "div", "__rtruediv__": "div", "true_divide": "div", "div": "div",
    "divide": "div", "__pow__": "pow", "__rpow__": "pow", "pow": "pow", "float_power": "pow",
    "rsqrt": "sqrt", "sqrt": "sqrt", "log": "log", "log2": "log", "log10": "log",
    "log1p": "log1p", "xlogy": "log",
}  # fmt: skip
_TORCH_DIR = os.path.dirname(torch.__file__)
_GRADWELL_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: Where library code lives (never the user's line); a framework over torch adds its own.
_LIBRARIES = [_TORCH_DIR, _GRADWELL_DIR, "<frozen"]


def treat_as_library(directory: str) -> None:
    """Skip the frames of files under ``directory`` when looking for the user's line (Keras
    on its torch backend: its ops are torch's, called from Keras' files)."""
    if directory not in _LIBRARIES:
        _LIBRARIES.append(directory)


def user_frame() -> tuple[str, int]:
    """(file, line) of the innermost frame outside torch and gradwell: walking the frames is
    cheap enough to do for every op of the replay (formatting the line is left for
    :func:`code_line`, once the anomaly is found)."""
    frame = sys._getframe(1)
    libraries = tuple(_LIBRARIES)
    while frame is not None:
        name = frame.f_code.co_filename
        if not name.startswith(libraries):
            return name, frame.f_lineno
        frame = frame.f_back  # type: ignore[assignment]
    return "?", 0


def code_line(where: tuple[str, int]) -> str:
    """'file:line: source' of a frame from :func:`user_frame`."""
    name, line = where
    return f"{name}:{line}: {linecache.getline(name, line).strip()}" if line else "?"


def _tensors(values: Any) -> list[torch.Tensor]:
    out: list[torch.Tensor] = []
    for v in values:
        if isinstance(v, torch.Tensor):
            out.append(v)
        elif isinstance(v, (list, tuple)):
            out += _tensors(v)
    return out


def _finite(t: torch.Tensor) -> bool:
    """Whether ``t`` holds no inf or NaN: its sum (one pass, nothing allocated) is finite
    unless it does, or unless large finite values overflow it (then a closer look)."""
    if not t.is_floating_point():
        return True
    # (a loss is one element: reading it is one op, where a detach and a sum add two)
    total = t.item() if t.numel() == 1 else float(t.detach().sum())
    return math.isfinite(total) or bool(torch.isfinite(t).all())


#: Tensors up to this many elements are checked together, copied into one: a small
#: tensor's check costs its dispatch, not its pass (larger ones each get a norm, no copy:
#: at 1 << 16, copying mlp128's activations cost more than their dispatches saved).
_SMALL = 1 << 12


def _finite_each(tensors: Sequence[torch.Tensor | None]) -> list[bool]:
    """Per tensor (None counts as finite): whether it holds no inf or NaN, read in one
    transfer. The small tensors of each device are flattened into one and summed (a copy
    and a sum, where a norm each cost a dispatch each; where the sum is not finite, the
    sum of each, in one op, says which); each large one gets its norm (what
    clip_grad_norm_ uses: nothing copied)."""
    floats: dict[int, torch.Tensor] = {}
    small: list[int] = []
    sizes: list[int] = []  # (of each small one: its segment in the flattened copy)
    large: list[int] = []
    for i, t in enumerate(tensors):
        if t is not None and t.is_floating_point():
            floats[i] = t
            n = t.numel()
            if n <= _SMALL:
                small.append(i)
                sizes.append(n)
            else:
                large.append(i)
    ok = [True] * len(tensors)
    if not floats:
        return ok
    groups = [(small, sizes)] if small else []
    with torch.no_grad():  # (not a detach per tensor: each is an op)
        try:  # on one device, as a rule (asking each tensor its device costs more)
            flats = [_flattened([floats[i] for i in g]) for g, _ in groups]
        except RuntimeError:  # on several devices: one group each
            by_device: dict[Any, tuple[list[int], list[int]]] = {}
            for i, n in zip(small, sizes):
                g, ns = by_device.setdefault(floats[i].device, ([], []))
                g.append(i)
                ns.append(n)
            groups = list(by_device.values())
            flats = [_flattened([floats[i] for i in g]) for g, _ in groups]
        values = [f.sum() for f in flats]
        values += torch._foreach_norm([floats[i] for i in large]) if large else []
        try:
            read = torch.stack(values).tolist()
        except RuntimeError:  # on several devices
            read = [float(v) for v in values]
        for flat, (g, ns), total in zip(flats, groups, read):
            if not math.isfinite(total):  # then the sum of each tensor, in one op
                lengths = _int64s(ns, flat)
                sums = torch.segment_reduce(flat, "sum", lengths=lengths, unsafe=True).tolist()
                for i, v in zip(g, sums):
                    ok[i] = math.isfinite(v) or _finite_sum(v, floats[i])
        for i, v in zip(large, read[len(flats) :]):
            ok[i] = _finite_sum(v, floats[i])
    return ok


def _int64s(values: list[int], like: torch.Tensor) -> torch.Tensor:
    """``torch.tensor(values, device=like.device)``, read from a buffer (a third of the
    time: ``torch.tensor`` converts the list item by item)."""
    out = torch.frombuffer(array.array("q", values), dtype=torch.int64)
    return out if like.is_cpu else out.to(like.device)


def _flattened(tensors: list[torch.Tensor]) -> torch.Tensor:
    """``tensors`` copied into one, flat (raises on several devices, as ``torch.cat``)."""
    return torch._C._nn.flatten_dense_tensors(tensors)


def _finite_sum(v: float, t: torch.Tensor) -> bool:
    """Whether ``t`` is finite, from its sum or norm ``v``: a NaN comes from a NaN; an inf
    from an inf or from large finite values overflowing it (then a closer look)."""
    return math.isfinite(v) or (v == v and bool(torch.isfinite(t).all()))


class _Checks:
    """Finiteness checks queued and read in bulk (:func:`_finite_each`): :meth:`add` queues
    some tensors and returns their place in the queue; :meth:`finite` reads all that is
    queued, in one transfer, the first time one of them is asked for."""

    def __init__(self) -> None:
        self._tensors: list[torch.Tensor | None] = []
        self._ok: list[bool] = []

    def add(self, tensors: Sequence[torch.Tensor | None]) -> slice:
        start = len(self._tensors)
        self._tensors += tensors
        return slice(start, len(self._tensors))

    def finite(self, place: slice) -> list[bool]:
        """Per tensor of the ``add`` that returned ``place``: whether it is finite."""
        if len(self._ok) < len(self._tensors):
            self._ok += _finite_each(self._tensors[len(self._ok) :])
        return self._ok[place]


def _all_finite(tensors: Sequence[torch.Tensor | None]) -> bool:
    """Whether every tensor of ``tensors`` holds no inf or NaN (one transfer)."""
    return all(_finite_each(tensors))


def _range(t: torch.Tensor, low: float | None = None, high: float | None = None
           ) -> list[float] | None:  # fmt: skip
    """[min, max] of the finite values of ``t`` (None when it has none), from its ``low``
    and ``high`` (its aminmax) when they are read already."""
    if t.numel() == 0:
        return None
    if not t.is_floating_point():  # (no gradient to detach from: no op for it)
        return [float(t.min()), float(t.max())]
    if low is None or high is None:
        low, high = torch.stack(torch.aminmax(t.detach())).tolist()  # (one transfer)
    if math.isfinite(low) and math.isfinite(high):
        return [low, high]
    a = t.detach().double()
    a = a[torch.isfinite(a)]
    return [float(a.min()), float(a.max())] if a.numel() else None


def _anomaly(phase: str, op: str, module: str | None, ins: list[torch.Tensor],
             outs: list[torch.Tensor], code: str) -> dict[str, Any]:  # fmt: skip
    """The anomaly in the form the diagnosis reads (as gradwell's NaN trap writes it)."""
    bad = [o for o in outs if o.is_floating_point()]
    floats = [t for t in ins if t.numel() and t.is_floating_point()]
    # every float input's aminmax and every output's NaN and inf counts in one transfer
    # (the counts in float64, exact; the ranges, promoted with them, as they were)
    with torch.no_grad():
        parts = [v for t in floats for v in torch.aminmax(t)]
        parts += [c for o in bad for c in (o.isnan().sum(dtype=torch.float64),
                                           o.isinf().sum(dtype=torch.float64))]  # fmt: skip
        try:
            read = torch.stack(parts).tolist() if parts else []
        except RuntimeError:  # on several devices
            read = [float(v) for v in parts]
    lows = {id(t): (read[2 * k], read[2 * k + 1]) for k, t in enumerate(floats)}
    counts = read[2 * len(floats) :] or [0, 0]
    return {
        "phase": phase,
        "op": OP_NAMES.get(op, op),
        "module": module,
        "input_ranges": [_range(t, *lows.get(id(t), (None, None))) for t in ins],
        "input_shapes": [list(t.shape) for t in ins],
        "nonfinite": {"nan": int(sum(counts[0::2])), "inf": int(sum(counts[1::2]))},
        "code": code,
        "details": {"torch_op": op},
    }


class _Trap(TorchFunctionMode):
    """Records which op, module and line made each graph node; with ``check``, also finds
    the first op that makes a non-finite value from finite inputs."""

    def __init__(self, module_stack: list[str], check: bool = True) -> None:
        super().__init__()
        self.module_stack = module_stack
        self.check = check
        self.found: dict[str, Any] | None = None
        # grad_fn -> op, module, the user's (file, line), the op's tensor inputs
        self.made_by: dict[Any, tuple[str, str | None, tuple[str, int], list[Any]]] = {}

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        outs = _tensors([out])
        if not outs:
            return out
        name = getattr(func, "__name__", str(func))
        module = self.module_stack[-1] if self.module_stack else None
        ins = _tensors([*args, *(kwargs or {}).values()])
        grad_fn = getattr(outs[0], "grad_fn", None)
        if grad_fn is not None and grad_fn not in self.made_by:
            self.made_by[grad_fn] = (name, module, user_frame(), ins)
        if self.check and self.found is None and not all(_finite(o) for o in outs):
            if all(_finite(t) for t in ins):
                self.found = _anomaly("forward", name, module, ins, outs, code_line(user_frame()))
        return out


def devices_of(model: torch.nn.Module) -> list[int]:
    """The CUDA devices holding ``model``'s parameters (whose random state a replay forks)."""
    return _devices(list(model.parameters()))


def _devices(params: list[torch.Tensor]) -> list[int]:
    # (get_device: the CUDA index, -1 on the CPU, with no device object made per tensor)
    return sorted({p.get_device() for p in params if p.is_cuda})


def _grad(
    outputs: list[torch.Tensor],
    inputs: list[torch.Tensor],
    grad_outputs: list[torch.Tensor] | None = None,
) -> tuple[torch.Tensor | None, ...]:
    """``torch.autograd.grad(outputs, inputs, grad_outputs, allow_unused=True,
    retain_graph=True)``, straight to the engine where torch has the private seam for it
    (2.3 on): the checks ``grad`` runs in Python on every output and input first (their
    shapes, torch functions) cost as much as a small module's backward, and the replay's
    arguments come from its own forward."""
    if grad_outputs is None:
        grad_outputs = [torch.ones_like(o) for o in outputs]
    if _engine_run_backward is None:
        return torch.autograd.grad(outputs, inputs, grad_outputs, retain_graph=True,
                                   allow_unused=True)  # fmt: skip
    return _engine_run_backward(tuple(outputs), tuple(grad_outputs), True, False,
                                tuple(inputs), True, accumulate_grad=False)  # fmt: skip


_engine_run_backward = getattr(torch.autograd.graph, "_engine_run_backward", None)


#: The hooks a module's forward and backward call: the replay sets them aside.
_HOOKS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")


@contextmanager
def _borrowed(modules: list[torch.nn.Module], params: list[torch.Tensor]) -> Iterator[None]:
    """Replay on the model (its ``modules`` and ``params``) itself, leaving it as it was:
    its hooks (the user's and the doctor's) set aside, its buffers (BatchNorm's running
    statistics) put back after, the random state forked. Gradients are taken from the
    autograd engine (:func:`_grad`), never accumulated, and the weights are only read, so
    nothing is copied: a copy of a large model would cost as much memory again, and on a
    small one a ``deepcopy`` alone costs more than a training step."""
    hooks: list[tuple[torch.nn.Module, str, Any]] = []
    for m in modules:
        for name in _HOOKS:
            value = m.__dict__.get(name)
            if value:
                hooks.append((m, name, value))
                setattr(m, name, type(value)())
    buffers = [b for m in modules for b in m._buffers.values() if b is not None]
    with torch.no_grad():  # (a copy is one op; a detach and a copy two)
        kept = _clones(buffers) if buffers else []
    # the random state forked as fork_rng does (less its look-ups of the accelerator): the
    # CPU's, and that of each CUDA device holding the model
    devices = _devices(params)
    cpu_state, cuda_states = torch.get_rng_state(), [torch.cuda.get_rng_state(d) for d in devices]
    try:
        with torch.enable_grad():
            yield
    finally:
        torch.set_rng_state(cpu_state)
        for d, state in zip(devices, cuda_states):
            torch.cuda.set_rng_state(state, d)
        with torch.no_grad():
            for m, name, value in hooks:
                setattr(m, name, value)
            if buffers:
                torch._foreach_copy_(buffers, kept)


def _each_cloned(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    return [t.clone() for t in tensors]


#: Clones of tensors, in one op where torch has it (a clone each costs its dispatch).
_clones = getattr(torch, "_foreach_clone", None) or _each_cloned


class _WeightsNonfinite(Exception):
    """The parameters (their names) already held inf or NaN: the replay has nothing to do."""


def replay_nonfinite(
    model: Any, inputs: Any, targets: Any, loss_fn: Any
) -> tuple[dict[str, Any] | None, str]:
    """Replay one batch to find what first made inf or NaN: (the anomaly as a dict, or None;
    a note that says what the replay did). Training is not changed (:func:`_borrowed`).

    The forward runs with one hook that records each module's call. When its output and
    the loss are finite, one backward gives the parameters' gradients and the gradient
    reaching each module's inputs and outputs, and one check reads them all with the
    weights and every tensor the modules took and made (a small model's replay is a few
    hundred ops, so each check's transfer counts). The first module whose output is
    non-finite from finite inputs is run once more on those inputs under the function
    trap, which names the op and the line; when the forward is finite and the gradients
    are not, the module where they turn non-finite runs once more, its backward watched
    node by node (:func:`_backward_of`). A non-finite output or loss is looked for in
    the forward alone (the backward would be wasted, and a loss may refuse a NaN)."""
    if inputs is None:
        return None, (
            "The batch was not available to replay (pass the batch to doctor.step(loss, x, y))."
        )
    modules = dict(model.named_modules())
    names = {id(m): path or type(m).__name__ for path, m in modules.items()}
    named = _named_parameters(modules)
    params = [p for _, p in named if p.requires_grad]
    found = None
    try:
        with _borrowed(list(modules.values()), params):
            found = _replayed(model, inputs, targets, loss_fn, names, named, params)
    except _WeightsNonfinite as e:
        return None, weights_already_nonfinite(e.args[0])
    except Exception as e:  # the replay is best effort: report, never break training
        return None, f"Replaying the batch failed: {e!r}."
    if found is not None:
        how = "hooks on the graph nodes" if found["phase"] == "backward" else "forward hooks"
        return found, f"Located by replaying the batch ({how})."
    return None, (
        "Replaying the batch produced no non-finite value (the original depended on "
        "randomness the replay did not repeat, such as dropout masks)."
        if loss_fn is not None
        else "Replaying the forward pass produced no non-finite value; pass loss= to the "
        "Doctor to replay the loss and backward too."
    )


def _named_parameters(modules: dict[str, torch.nn.Module]) -> list[tuple[str, torch.Tensor]]:
    """``model.named_parameters()`` from ``modules`` (``model.named_modules()``), which it
    would walk once more: the same names in the same order, each parameter once."""
    named: list[tuple[str, torch.Tensor]] = []
    seen: set[int] = set()
    for path, m in modules.items():
        for key, p in m._parameters.items():
            if p is not None and id(p) not in seen:
                seen.add(id(p))
                named.append((f"{path}.{key}" if path else key, p))
    return named


class Call(NamedTuple):
    """A module's call in the replay's forward."""

    module: torch.nn.Module
    args: Any
    kwargs: Any
    outs: list[torch.Tensor]  # the tensors of its output
    ins: list[torch.Tensor]  # the tensors of its arguments
    versions: list[int]  # of each output tensor when it returned (in-place writes bump it)


def _replayed(model: torch.nn.Module, inputs: Any, targets: Any, loss_fn: Any,
              names: dict[int, str], weights: list[tuple[str, torch.Tensor]],
              params: list[torch.Tensor]) -> dict[str, Any] | None:  # fmt: skip
    """The replay itself (:func:`replay_nonfinite`), on the borrowed model: the first
    anomaly, or None. Raises :class:`_WeightsNonfinite` when weights hold inf or NaN."""
    calls, out = _recorded_forward(model, inputs, names)
    # The output's check is queued with the forward's (one transfer, not one more before
    # the loss): the loss is computed whatever the output holds, and where the output is
    # not finite the replay looks in the forward alone, as if the loss had not run (a loss
    # may refuse a NaN: it raised, and it is the output that says why).
    checks = _Checks()
    output = checks.add(_tensors([out]))
    loss = None
    if loss_fn is not None and targets is not None:
        try:
            loss = loss_fn(out, targets)
        except Exception:
            if all(checks.finite(output)):
                raise
    if not isinstance(loss, torch.Tensor) or not _finite(loss):
        found = _first_nonfinite_call(calls, names, weights, checks)
        if (found is not None or not isinstance(loss, torch.Tensor)
                or not all(checks.finite(output))):  # fmt: skip
            return found
        trap = _Trap([])  # the forward is finite, the loss is not: the loss once more
        with trap:
            loss_fn(out, targets)
        return trap.found
    if not loss.requires_grad or not params:
        return _first_nonfinite_call(calls, names, weights, checks)
    # one backward for the parameters' gradients and those reaching each module's tensors
    param_ids = {id(p) for p in params}
    tracked = list({id(t): t for call in calls for t in (*call.outs, *call.ins)
                    if t.requires_grad and id(t) not in param_ids}.values())  # fmt: skip
    grads = _grad([loss], [*params, *tracked])
    # (queued before the forward's check, read with it: one transfer)
    param_grads, reaching = (
        checks.add(list(grads[: len(params)])),
        checks.add(list(grads[len(params) :])),
    )
    found = _first_nonfinite_call(calls, names, weights, checks)
    ok = checks.finite(param_grads)
    if found is not None or all(ok) or not all(checks.finite(output)):
        return found
    broken = {id(p) for p, good in zip(params, ok) if not good}
    return _backward(model, inputs, targets, loss_fn, params, calls, names, broken,
                     dict(zip(map(id, tracked), checks.finite(reaching))),
                     dict(zip(map(id, tracked), grads[len(params) :])))  # fmt: skip


def _recorded_forward(model: torch.nn.Module, inputs: Any,
                      names: dict[int, str]) -> tuple[list[Call], Any]:  # fmt: skip
    """The forward with each module's call recorded (one global hook: a hook per module
    cost more to install than the small model's forward): (the modules' calls in the
    order they returned, the output)."""
    calls: list[Call] = []

    def leave(module: Any, args: Any, kwargs: Any, output: Any) -> None:
        if id(module) in names:  # (the hook sees every module called: only the model's)
            outs = [output] if isinstance(output, torch.Tensor) else _tensors([output])
            ins = _tensors([*args, *kwargs.values()] if kwargs else args)
            calls.append(Call(module, args, kwargs, outs, ins, [t._version for t in outs]))

    handle = register_module_forward_hook(leave, with_kwargs=True)
    try:
        out = model(inputs)
    finally:
        handle.remove()
    return calls, out


def _first_nonfinite_call(calls: list[Call], names: dict[int, str],
                          weights: list[tuple[str, torch.Tensor]],
                          checks: _Checks) -> dict[str, Any] | None:  # fmt: skip
    """The anomaly of the first module (inner ones first) whose output is not finite while
    its inputs are, from one check (with what ``checks`` holds already) of all their
    tensors and of the ``weights`` (raises :class:`_WeightsNonfinite` when some are not
    finite). An output written in place after its module returned is no evidence against
    that module: the module that wrote it (or the code around it) is found further on."""
    tensors = {id(t): t for call in calls for t in (*call.outs, *call.ins)}
    place = checks.add([*(w for _, w in weights), *tensors.values()])
    each = checks.finite(place)
    bad = [name for (name, _), good in zip(weights, each) if not good]
    if bad:
        raise _WeightsNonfinite(bad)
    ok = dict(zip(tensors, each[len(weights) :]))
    for call in calls:
        outs = call.outs
        if all(ok[id(o)] for o in outs) or not all(ok[id(t)] for t in call.ins):
            continue
        if any(o._version != v for o, v in zip(outs, call.versions)):
            continue
        return _locate(call.module, call.args, call.kwargs, names) or _anomaly(
            "forward", type(call.module).__name__, names[id(call.module)], call.ins, outs, "?"
        )
    return None


def _locate(
    module: torch.nn.Module, args: Any, kwargs: Any, names: dict[int, str]
) -> dict[str, Any] | None:
    """Run ``module`` once more on the inputs that made it non-finite, under the function
    trap, with the module stack kept by hooks on it and its sub-modules: the op, the
    innermost module running it and the user's line (None when the rerun comes out finite,
    as a module drawing random numbers may)."""
    return _trapped(module, names, True, *args, **kwargs)[0].found


def _trapped(module: torch.nn.Module, names: dict[int, str], check: bool, *args: Any,
             **kwargs: Any) -> tuple[_Trap, Any]:  # fmt: skip
    """``module(*args, **kwargs)`` under the function trap (``check``: stopping at the
    first non-finite value), with the module stack kept by hooks (a module without
    sub-modules needs none: it is the stack): (the trap, the output)."""
    leaf = next(module.children(), None) is None
    stack: list[str] = [names[id(module)]] if leaf else []
    trap = _Trap(stack, check)
    handles = [] if leaf else _stack_hooks(module, stack, names)
    try:
        with trap:
            output = module(*args, **kwargs)
    finally:
        for h in handles:
            h.remove()
    return trap, output


def _stack_hooks(model: torch.nn.Module, stack: list[str], names: dict[int, str]) -> list[Any]:
    """Hooks that keep ``stack`` the paths of the modules running, innermost last."""

    def enter(module: Any, args: Any) -> None:
        stack.append(names[id(module)])

    def leave(module: Any, args: Any, output: Any) -> None:
        stack.pop()

    handles = [m.register_forward_pre_hook(enter) for m in model.modules()]
    return handles + [m.register_forward_hook(leave, always_call=True) for m in model.modules()]


def _backward(model: torch.nn.Module, inputs: Any, targets: Any, loss_fn: Any,
              params: list[torch.Tensor], calls: list[Call], names: dict[int, str],
              broken: set[int], finite: dict[int, bool],
              reaching: dict[int, torch.Tensor | None]) -> dict[str, Any] | None:  # fmt: skip
    """From the first backward (the ids of the parameters with non-finite gradients, and
    per module tensor whether the gradient reaching it is finite, and that gradient): the
    module where the gradient turns non-finite (finite at its outputs, not at its inputs
    or ``broken`` parameters) runs once more alone, forward and backward, with every op
    and graph node watched; when that finds nothing (or no module turned it: the loss's
    backward did), the whole batch does."""
    for call in calls:  # inner modules first
        if not all(finite.get(id(o), True) for o in call.outs) or (
            all(finite.get(id(t), True) for t in call.ins)
            and not any(id(p) in broken for p in call.module.parameters())
        ):
            continue
        out_grads = [reaching.get(id(o)) for o in call.outs]
        found = _backward_of(call.module, call.args, call.kwargs, out_grads, names)
        if found is not None:
            return found
    return _backward_of_the_batch(model, inputs, targets, loss_fn, params, names)


def _backward_of(module: torch.nn.Module, args: Any, kwargs: Any,
                 out_grads: list[torch.Tensor | None],
                 names: dict[int, str]) -> dict[str, Any] | None:  # fmt: skip
    """``module`` once more on its inputs with every op recorded, then its backward from
    the gradients ``out_grads`` that reached its outputs, watched node by node."""
    trap, output = _trapped(module, names, False, *args, **kwargs)
    pairs = [(o, g) for o, g in zip(_tensors([output]), out_grads)
             if o.requires_grad and g is not None]  # fmt: skip
    wrt = [t for t in _tensors([*args, *kwargs.values()]) if t.requires_grad]
    wrt += [p for p in module.parameters() if p.requires_grad]
    if not pairs or not wrt:
        return None
    return _watched_grad(trap.made_by, [o for o, _ in pairs], wrt, [g for _, g in pairs])


def _backward_of_the_batch(model: torch.nn.Module, inputs: Any, targets: Any, loss_fn: Any,
                           params: list[torch.Tensor],
                           names: dict[int, str]) -> dict[str, Any] | None:  # fmt: skip
    """The batch once more with every op recorded, then its backward watched node by node."""
    trap, out = _trapped(model, names, False, inputs)
    with trap:
        loss = loss_fn(out, targets)
    return _watched_grad(trap.made_by, [loss], params, None)


def _watched_grad(made_by: dict[Any, Any], outputs: list[torch.Tensor],
                  inputs: list[torch.Tensor],
                  grad_outputs: Any) -> dict[str, Any] | None:  # fmt: skip
    """The gradients of ``outputs`` with respect to ``inputs``, with a hook on each node
    ``made_by`` recorded, which queues the check of the gradients it received and made:
    the first node whose gradients come out non-finite from finite ones is the culprit
    (named by the op, module and line that made it in the forward). When no recorded node
    made them (an op the function mode does not see), the backward runs once more under
    ``torch.autograd.detect_anomaly``, which names the graph node that did."""
    checks = _Checks()
    ran: list[tuple[Any, list[torch.Tensor], slice]] = []  # (node, what it made, checks)

    def watch(node: Any) -> Any:
        def hook(grad_inputs: Any, grad_outputs: Any) -> None:
            made = [g for g in grad_inputs if g is not None]
            got = [g for g in grad_outputs if g is not None]
            ran.append((node, made, checks.add([*made, *got])))

        return hook

    handles = [node.register_hook(watch(node)) for node in made_by]
    try:
        grads = _grad(outputs, inputs, grad_outputs)
    finally:
        for h in handles:
            h.remove()
    for node, made, place in ran:  # in the order the backward ran them
        ok = checks.finite(place)
        n = len(made)
        if all(ok[:n]) or not all(ok[n:]):
            continue
        # the ranges are those of the op's forward inputs (what the sqrt received)
        op, module, where, forward_ins = made_by[node]
        return _anomaly("backward", op, module, forward_ins, made, code_line(where))
    if _all_finite(list(grads)):
        return None
    with warnings.catch_warnings():  # detect_anomaly warns with the traceback: the finding
        warnings.simplefilter("ignore")  # says it instead
        try:
            with torch.autograd.detect_anomaly(check_nan=True):
                torch.autograd.grad(outputs, inputs, grad_outputs, allow_unused=True)
        except RuntimeError as e:  # "Function 'SqrtBackward0' returned nan values ..."
            if "nan" in str(e).lower():
                op = str(e).split("'")[1] if "'" in str(e) else "?"
                return _anomaly("backward", op, None, [], [], "?")
    return None
