"""The NaN trap for torch: replay one batch to name what first made inf or NaN.

The replay runs on the model itself, set apart from training (:func:`_borrowed`): its
hooks set aside, its buffers put back after, gradients taken with ``torch.autograd.grad``
(never accumulated into ``.grad``), the random state forked. It costs about a training
step (benchmarks/torch_doctor.py):

- Forward: one hook per module checks its output; the first module whose output is not
  finite while its inputs are runs once more on those inputs under a torch function
  mode that sees every op (a module's ``F.linear`` as much as a hand-written
  ``torch.log``) and stops at the first op making a non-finite value from finite inputs.
  The loss runs under that mode too.
- Backward: one backward keeps the gradient reaching each module's inputs and outputs.
  When the parameters' gradients are not finite, the module where the gradient turns
  non-finite (finite at its outputs, not at its inputs or parameters) runs once more
  alone with every op recorded (op, module, the user's line), and its backward runs with
  a hook on each recorded graph node, which finds the first that made a non-finite
  gradient from finite ones, under ``torch.autograd.detect_anomaly``, which stops the
  backward there. (The whole batch is rerun so only when no module is found.)
"""

from __future__ import annotations

import linecache
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
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
    return bool(torch.isfinite(t.detach().sum())) or bool(torch.isfinite(t).all())


def _all_finite(tensors: list[torch.Tensor]) -> bool:
    """Whether every floating-point tensor of ``tensors`` is finite: their norms in one
    fused kernel (what clip_grad_norm_ uses), and only where a norm is not finite (it
    overflows on large finite values too) an exact look at that tensor."""
    floats = [t.detach() for t in tensors if t is not None and t.is_floating_point()]
    if not floats:
        return True
    norms = torch._foreach_norm(floats)
    device = norms[0].device
    values = torch.stack([n.float().to(device) for n in norms])
    if bool(torch.isfinite(values).all()):
        return True
    return all(_finite(t) for t, ok in zip(floats, torch.isfinite(values).tolist()) if not ok)


def _range(t: torch.Tensor) -> list[float] | None:
    if not t.is_floating_point() or t.numel() == 0:
        return [float(t.min()), float(t.max())] if t.numel() else None
    a = t.detach().double()
    a = a[torch.isfinite(a)]
    return [float(a.min()), float(a.max())] if a.numel() else None


def _anomaly(phase: str, op: str, module: str | None, ins: list[torch.Tensor],
             outs: list[torch.Tensor], code: str) -> dict[str, Any]:  # fmt: skip
    """The anomaly in the form the diagnosis reads (as gradwell's NaN trap writes it)."""
    bad = [o for o in outs if o.is_floating_point()]
    return {
        "phase": phase,
        "op": OP_NAMES.get(op, op),
        "module": module,
        "input_ranges": [_range(t) for t in ins],
        "input_shapes": [list(t.shape) for t in ins],
        "nonfinite": {
            "nan": int(sum(int(torch.isnan(o).sum()) for o in bad)),
            "inf": int(sum(int(torch.isinf(o).sum()) for o in bad)),
        },
        "code": code,
        "details": {"torch_op": op},
    }


class _Trap(TorchFunctionMode):
    """Stops at the first op that makes a non-finite value from finite inputs."""

    def __init__(self, module_stack: list[str]) -> None:
        super().__init__()
        self.module_stack = module_stack
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
        if self.found is None and not all(_finite(o) for o in outs):
            if all(_finite(t) for t in ins):
                self.found = _anomaly("forward", name, module, ins, outs, code_line(user_frame()))
        return out


def devices_of(model: torch.nn.Module) -> list[int]:
    """The CUDA devices holding ``model``'s parameters (whose random state a replay forks)."""
    return sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})


def _nonfinite_params(model: torch.nn.Module) -> list[str]:
    named = list(model.named_parameters())
    if _all_finite([p for _, p in named]):
        return []
    return [n for n, p in named if not _finite(p.detach())]


@contextmanager
def _borrowed(model: torch.nn.Module) -> Iterator[None]:
    """Replay on ``model`` itself, leaving it as it was: its hooks (the user's and the
    doctor's) set aside, its buffers (BatchNorm's running statistics) put back after, the
    random state forked. Gradients are taken with ``torch.autograd.grad``, never
    accumulated, and the weights are only read, so nothing is copied: a copy of a large
    model would cost as much memory again, and on a small one a ``deepcopy`` alone costs
    more than a training step."""
    set_aside: list[tuple[Any, str, Any]] = []  # (module, name, a hooks dict or a buffer)
    for m in model.modules():
        for name, value in vars(m).items():
            if name.endswith("_hooks") and isinstance(value, dict) and value:
                set_aside.append((m, name, value))
        for name, b in m._buffers.items():
            if b is not None:
                set_aside.append((m, name, (b, b.detach().clone())))
    for m, name, value in set_aside:
        if isinstance(value, dict):
            setattr(m, name, type(value)())
    try:
        with torch.random.fork_rng(devices=devices_of(model)), torch.enable_grad():
            yield
    finally:
        with torch.no_grad():
            for m, name, value in set_aside:
                if isinstance(value, dict):
                    setattr(m, name, value)
                else:
                    b, kept = value
                    m._buffers[name] = b
                    b.copy_(kept)


class _Stop(Exception):
    """Raised by a forward hook to end the replay's forward at the anomaly it found."""


def _module_names(model: torch.nn.Module) -> dict[int, str]:
    return {id(m): path or type(m).__name__ for path, m in model.named_modules()}


def replay_nonfinite(
    model: Any, inputs: Any, targets: Any, loss_fn: Any
) -> tuple[dict[str, Any] | None, str]:
    """Replay one batch to find what first made inf or NaN: (the anomaly as a dict, or None;
    a note that says what the replay did). Training is not changed (:func:`_borrowed`).

    The forward runs with one hook per module that checks its output: the first module
    whose output is non-finite from finite inputs is run once more on those inputs under
    the function trap, which names the op and the line. When the forward and the loss are
    finite and the gradients are not, the module where they turn non-finite runs once
    more, its backward watched node by node (:func:`_backward`)."""
    if inputs is None:
        return None, (
            "The batch was not available to replay (pass the batch to doctor.step(loss, x, y))."
        )
    bad = _nonfinite_params(model)
    if bad:
        return None, weights_already_nonfinite(bad)
    found = None
    try:
        with _borrowed(model):
            found, loss, calls = _forward(model, inputs, targets, loss_fn)
            params = [p for p in model.parameters() if p.requires_grad]
            if found is None and loss is not None and loss.requires_grad and params:
                found = _backward(model, inputs, targets, loss_fn, params, loss, calls)
    except Exception as e:  # the replay is best effort: report, never break training
        return None, f"Replaying the batch failed: {e!r}."
    if found is not None:
        how = "torch.autograd.detect_anomaly" if found["phase"] == "backward" else "forward hooks"
        return found, f"Located by replaying the batch ({how})."
    return None, (
        "Replaying the batch produced no non-finite value (the original depended on "
        "randomness the replay did not repeat, such as dropout masks)."
        if loss_fn is not None
        else "Replaying the forward pass produced no non-finite value; pass loss= to the "
        "Doctor to replay the loss and backward too."
    )


#: A module's call in the replay's forward: (module, args, kwargs, output tensors).
Call = tuple[torch.nn.Module, Any, Any, list[torch.Tensor]]


def _forward(
    model: torch.nn.Module, inputs: Any, targets: Any, loss_fn: Any
) -> tuple[dict[str, Any] | None, torch.Tensor | None, list[Call]]:
    """The forward with a finiteness check on each module's output, then the loss under the
    trap: (the first anomaly or None, the loss when there was none, the modules' calls in
    the order they returned)."""
    names = _module_names(model)
    checked: dict[int, tuple[torch.Tensor, bool]] = {}  # each tensor is checked once

    def finite(t: torch.Tensor) -> bool:
        hit = checked.get(id(t))
        if hit is None or hit[0] is not t:
            hit = checked[id(t)] = (t, _finite(t))
        return hit[1]

    found: list[dict[str, Any]] = []
    calls: list[Call] = []

    def leave(module: Any, args: Any, kwargs: Any, output: Any) -> None:
        if found:
            return
        outs = _tensors([output])
        calls.append((module, args, kwargs, outs))
        if all(map(finite, outs)):
            return
        ins = _tensors([*args, *kwargs.values()])
        if all(map(finite, ins)):
            found.append({})  # (so that this hook does nothing while the module reruns)
            found[0] = _locate(module, args, kwargs, names) or _anomaly(
                "forward", type(module).__name__, names[id(module)], ins, _tensors([output]),
                code_line(user_frame()))  # fmt: skip
            raise _Stop

    handles = [m.register_forward_hook(leave, with_kwargs=True) for m in model.modules()]
    try:
        out = model(inputs)
    except _Stop:
        return found[0], None, calls
    finally:
        for h in handles:
            h.remove()
    if loss_fn is None or targets is None:
        return None, None, calls
    trap = _Trap([])
    with trap:
        loss = loss_fn(out, targets)
    return trap.found, loss, calls


def _locate(
    module: torch.nn.Module, args: Any, kwargs: Any, names: dict[int, str]
) -> dict[str, Any] | None:
    """Run ``module`` once more on the inputs that made it non-finite, under the function
    trap, with the module stack kept by hooks on it and its sub-modules: the op, the
    innermost module running it and the user's line (None when the rerun comes out finite,
    as a module drawing random numbers may)."""
    stack: list[str] = []
    trap = _Trap(stack)
    handles = _stack_hooks(module, stack, names)
    try:
        with trap:
            module(*args, **kwargs)
    finally:
        for h in handles:
            h.remove()
    return trap.found


def _stack_hooks(model: torch.nn.Module, stack: list[str], names: dict[int, str]) -> list[Any]:
    """Hooks that keep ``stack`` the paths of the modules running, innermost last."""

    def enter(module: Any, args: Any) -> None:
        stack.append(names[id(module)])

    def leave(module: Any, args: Any, output: Any) -> None:
        stack.pop()

    handles = [m.register_forward_pre_hook(enter) for m in model.modules()]
    return handles + [m.register_forward_hook(leave, always_call=True) for m in model.modules()]


def _backward(model: torch.nn.Module, inputs: Any, targets: Any, loss_fn: Any,
              params: list[torch.Tensor], loss: torch.Tensor,
              calls: list[Call]) -> dict[str, Any] | None:  # fmt: skip
    """The backward, keeping the gradient that reaches each module's inputs and outputs:
    None when the parameters' gradients are finite. Else the module where the gradient
    turns non-finite (finite at its outputs, not at its inputs or parameters) runs once
    more alone, forward and backward, with every op and graph node watched; when that
    finds nothing (or no module turned it: the loss's backward did), the whole batch does."""
    tensors = {id(t): t for _, args, kwargs, outs in calls
               for t in [*outs, *_tensors([*args, *kwargs.values()])]
               if t.requires_grad}  # fmt: skip
    reaching: dict[int, torch.Tensor] = {}

    def keeper(key: int) -> Any:
        def keep(g: torch.Tensor) -> None:
            reaching[key] = g

        return keep

    handles = [t.register_hook(keeper(key)) for key, t in tensors.items()]
    try:
        grads = torch.autograd.grad(loss, params, allow_unused=True)
    finally:
        for h in handles:
            h.remove()
    if _all_finite(list(grads)):
        return None
    broken = {id(p) for p, g in zip(params, grads) if g is not None and not _finite(g)}

    checked: dict[int, bool] = {}

    def finite(t: torch.Tensor) -> bool:
        g = reaching.get(id(t))
        if g is None:
            return True
        if id(t) not in checked:
            checked[id(t)] = _finite(g)
        return checked[id(t)]

    names = _module_names(model)
    for module, args, kwargs, outs in calls:  # inner modules first
        ins = _tensors([*args, *kwargs.values()])
        if not all(map(finite, outs)) or (
            all(map(finite, ins)) and not any(id(p) in broken for p in module.parameters())
        ):
            continue
        found = _backward_of(module, args, kwargs, [reaching.get(id(o)) for o in outs], names)
        if found is not None:
            return found
    return _backward_of_the_batch(model, inputs, targets, loss_fn, params)


def _backward_of(module: torch.nn.Module, args: Any, kwargs: Any,
                 out_grads: list[torch.Tensor | None],
                 names: dict[int, str]) -> dict[str, Any] | None:  # fmt: skip
    """``module`` once more on its inputs with every op recorded, then its backward from
    the gradients ``out_grads`` that reached its outputs, watched node by node."""
    stack: list[str] = []
    trap = _Trap(stack)
    handles = _stack_hooks(module, stack, names)
    try:
        with trap:
            output = module(*args, **kwargs)
    finally:
        for h in handles:
            h.remove()
    pairs = [(o, g) for o, g in zip(_tensors([output]), out_grads)
             if o.requires_grad and g is not None]  # fmt: skip
    wrt = [t for t in _tensors([*args, *kwargs.values()]) if t.requires_grad]
    wrt += [p for p in module.parameters() if p.requires_grad]
    if not pairs or not wrt:
        return None
    return _watched_grad(trap.made_by, [o for o, _ in pairs], wrt, [g for _, g in pairs])


def _backward_of_the_batch(model: torch.nn.Module, inputs: Any, targets: Any, loss_fn: Any,
                           params: list[torch.Tensor]) -> dict[str, Any] | None:  # fmt: skip
    """The batch once more with every op recorded, then its backward watched node by node."""
    stack: list[str] = []
    trap = _Trap(stack)
    handles = _stack_hooks(model, stack, _module_names(model))
    try:
        with trap:
            loss = loss_fn(model(inputs), targets)
    finally:
        for h in handles:
            h.remove()
    return _watched_grad(trap.made_by, [loss], params, None)


def _watched_grad(made_by: dict[Any, Any], outputs: list[torch.Tensor],
                  inputs: list[torch.Tensor],
                  grad_outputs: Any) -> dict[str, Any] | None:  # fmt: skip
    """The gradients of ``outputs`` with respect to ``inputs`` under detect_anomaly, with a
    hook on each node ``made_by`` recorded: the first node whose gradients come out
    non-finite from finite ones is the culprit (named by the op, module and line that
    made it in the forward)."""
    found: list[dict[str, Any]] = []

    def watch(node: Any) -> Any:
        def hook(grad_inputs: Any, grad_outputs: Any) -> None:
            ins = [g for g in grad_outputs if g is not None]
            outs = [g for g in grad_inputs if g is not None]
            if found or all(map(_finite, outs)) or not all(map(_finite, ins)):
                return
            # the ranges are those of the op's forward inputs (what the sqrt received)
            op, module, where, forward_ins = made_by[node]
            found.append(_anomaly("backward", op, module, forward_ins, outs, code_line(where)))

        return hook

    for node in made_by:
        node.register_hook(watch(node))
    with warnings.catch_warnings():  # detect_anomaly warns with the traceback: the finding
        warnings.simplefilter("ignore")  # says it instead
        try:
            with torch.autograd.detect_anomaly(check_nan=True):
                torch.autograd.grad(outputs, inputs, grad_outputs, allow_unused=True)
        except RuntimeError as e:
            if not found and "nan" in str(e).lower():
                op = str(e).split("'")[1] if "'" in str(e) else "?"
                found.append(_anomaly("backward", op, None, [], [], "?"))
    return found[0] if found else None
