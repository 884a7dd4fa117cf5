"""The NaN trap for torch: replay one batch on a copy to name what first made inf or NaN.

Forward: a torch function mode sees every op (a module's ``F.linear`` as much as a
hand-written ``torch.log`` in a loss) and stops at the first whose output is not
finite while its tensor inputs are; pre- and post-forward hooks on every module say
which module was running, and a post-forward hook also catches a module whose output
turned non-finite from finite inputs by a path the function mode does not see.
Backward (when the forward was clean): hooks on the nodes of the graph recorded in the
forward find the first node that made a non-finite gradient from finite ones, and
``torch.autograd.detect_anomaly`` stops the backward there. The copy takes the
replay's gradients and batch statistics, and the random state is forked, so the real
run is not changed in any way.
"""

from __future__ import annotations

import copy
import linecache
import os
import sys
import warnings
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

#: The ops whose domain the remedies know, under the names the diagnosis uses.
OP_NAMES = {
    "__truediv__": "div", "__rtruediv__": "div", "true_divide": "div", "div": "div",
    "divide": "div", "__pow__": "pow", "__rpow__": "pow", "pow": "pow", "float_power": "pow",
    "rsqrt": "sqrt", "sqrt": "sqrt", "log": "log", "log2": "log", "log10": "log",
    "log1p": "log1p", "xlogy": "log",
}  # fmt: skip
_TORCH_DIR = os.path.dirname(torch.__file__)
_GRADWELL_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def user_frame() -> tuple[str, int]:
    """(file, line) of the innermost frame outside torch and gradwell: walking the frames is
    cheap enough to do for every op of the replay (formatting the line is left for
    :func:`code_line`, once the anomaly is found)."""
    frame = sys._getframe(1)
    while frame is not None:
        name = frame.f_code.co_filename
        if not name.startswith((_TORCH_DIR, _GRADWELL_DIR, "<frozen")):
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
    return not t.is_floating_point() or bool(torch.isfinite(t).all())


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
        # grad_fn -> op, module, the user's (file, line)
        self.made_by: dict[Any, tuple[str, str | None, tuple[str, int]]] = {}

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        outs = _tensors([out])
        if not outs:
            return out
        name = getattr(func, "__name__", str(func))
        module = self.module_stack[-1] if self.module_stack else None
        grad_fn = getattr(outs[0], "grad_fn", None)
        if grad_fn is not None and grad_fn not in self.made_by:
            self.made_by[grad_fn] = (name, module, user_frame())
        if self.found is None and not all(_finite(o) for o in outs):
            ins = _tensors(list(args) + list((kwargs or {}).values()))
            if all(_finite(t) for t in ins):
                self.found = _anomaly("forward", name, module, ins, outs, code_line(user_frame()))
        return out


def twin_of(model: torch.nn.Module) -> torch.nn.Module:
    """A deep copy of ``model`` without its hooks (the doctor's among them: the copy must
    not feed them) and without gradients."""
    memo: dict[int, Any] = {}
    for m in model.modules():
        for name, value in vars(m).items():
            if name.endswith("_hooks") and isinstance(value, dict):
                memo[id(value)] = type(value)()
    twin = copy.deepcopy(model, memo)
    for p in twin.parameters():
        p.grad = None
    return twin


def devices_of(model: torch.nn.Module) -> list[int]:
    """The CUDA devices holding ``model``'s parameters (whose random state a replay forks)."""
    return sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})


def _nonfinite_params(model: torch.nn.Module) -> list[str]:
    return [n for n, p in model.named_parameters() if not _finite(p.detach())]


def replay_nonfinite(
    model: Any, inputs: Any, targets: Any, loss_fn: Any
) -> tuple[dict[str, Any] | None, str]:
    """Replay one batch on a copy of ``model``: (the first anomaly as a dict, or None; a
    note that says what the replay did)."""
    if inputs is None:
        return None, (
            "The batch was not available to replay (pass the batch to doctor.step(loss, x, y))."
        )
    bad = _nonfinite_params(model)
    if bad:
        return None, (
            f"The parameters {', '.join(bad[:4])} were already non-finite when it was seen, so "
            "they became so in an optimizer update after the last check; the replay has no "
            "finite weights to start from. Sample more often (Doctor(sample_every=1)) to catch "
            "the update that did it."
        )
    twin = twin_of(model)
    names = {id(m): path or type(m).__name__ for path, m in twin.named_modules()}
    stack: list[str] = []
    trap = _Trap(stack)
    module_found: list[dict[str, Any]] = []

    def enter(module: Any, args: Any) -> None:
        stack.append(names[id(module)])

    def leave(module: Any, args: Any, output: Any) -> None:
        stack.pop()
        outs = _tensors([output])
        ins = _tensors(list(args))
        if not module_found and not all(map(_finite, outs)) and all(map(_finite, ins)):
            module_found.append(_anomaly("forward", type(module).__name__, names[id(module)],
                                         ins, outs, code_line(user_frame())))  # fmt: skip

    handles = [m.register_forward_pre_hook(enter) for m in twin.modules()]
    handles += [m.register_forward_hook(leave) for m in twin.modules()]
    backward: list[dict[str, Any]] = []
    try:
        with torch.random.fork_rng(devices=devices_of(model)), torch.enable_grad():
            with trap:
                out = twin(inputs)
                loss = (
                    loss_fn(out, targets) if loss_fn is not None and targets is not None else None
                )
            if trap.found is None and not module_found and loss is not None and loss.requires_grad:
                _backward(loss, trap.made_by, backward)
    except Exception as e:  # the replay is best effort: report, never break training
        return None, f"Replaying the batch on a copy of the model failed: {e!r}."
    finally:
        for h in handles:
            h.remove()
    found = trap.found or (module_found[0] if module_found else None)
    if found is None and backward:
        found = backward[0]
    if found is not None:
        how = "torch.autograd.detect_anomaly" if found["phase"] == "backward" else "forward hooks"
        return found, f"Located by replaying the batch on a copy of the model ({how})."
    return None, (
        "Replaying the batch on a copy of the model produced no non-finite value (the "
        "original depended on randomness the replay did not repeat, such as dropout masks)."
        if loss_fn is not None
        else "Replaying the forward pass produced no non-finite value; pass loss= to the "
        "Doctor to replay the loss and backward too."
    )


def _backward(loss: torch.Tensor, made_by: dict[Any, tuple[str, str | None, tuple[str, int]]],
              found: list[dict[str, Any]]) -> None:  # fmt: skip
    """Backward under detect_anomaly, with a hook on each node the forward recorded: the
    first node whose gradients come out non-finite from finite ones is the culprit."""

    def watch(node: Any) -> Any:
        def hook(grad_inputs: Any, grad_outputs: Any) -> None:
            ins = [g for g in grad_outputs if g is not None]
            outs = [g for g in grad_inputs if g is not None]
            if found or all(map(_finite, outs)) or not all(map(_finite, ins)):
                return
            op, module, where = made_by[node]
            found.append(_anomaly("backward", op, module, ins, outs, code_line(where)))

        return hook

    for node in made_by:
        node.register_hook(watch(node))
    with warnings.catch_warnings():  # detect_anomaly warns with the traceback: the finding
        warnings.simplefilter("ignore")  # says it instead
        try:
            with torch.autograd.detect_anomaly(check_nan=True):
                loss.backward()
        except RuntimeError as e:
            if not found and "nan" in str(e).lower():
                found.append(
                    _anomaly("backward", str(e).split("'")[1] if "'" in str(e) else "?", None,
                             [], [], "?")
                )  # fmt: skip
