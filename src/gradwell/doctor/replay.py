"""Replay one batch under ``gw.detect_anomaly`` to name the op that produced a NaN.

Checking every op of every step costs too much, so the monitor only checks the
loss (every step) and the gradients (on sampled steps). When a non-finite value
first shows up, the batch is replayed here, on a deep copy of the model holding
the weights that batch saw: the copy takes the replay's dropout draws, batch
statistics and gradients, so the real run is not changed in any way.
"""

from __future__ import annotations

import copy
from dataclasses import asdict
from typing import Any

import numpy as np

from ..autograd.anomaly import detect_anomaly
from ..autograd.recording import Step, observe


def params_nonfinite(model: Any) -> list[str]:
    """Names of the parameters holding inf or NaN."""
    bad = []
    for name, p in model.named_parameters():
        a = p.data
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            bad.append(name)
    return bad


def weights_already_nonfinite(names: list[str]) -> str:
    """The replay's note when the parameters ``names`` hold inf or NaN before it starts."""
    return (
        f"The parameters {', '.join(names[:4])} were already non-finite when it was seen, so "
        "they became so in an optimizer update after the last check; the replay has no "
        "finite weights to start from. Sample more often (Doctor(sample_every=1)) to catch "
        "the update that did it."
    )


def replay_anomaly(
    model: Any, inputs: Any, targets: Any, loss_fn: Any
) -> tuple[dict[str, Any] | None, str]:
    """Run forward (and backward when the forward is clean) of one batch on a copy of
    ``model`` under the NaN trap. Returns (the first anomaly as a dict, or None; a note
    that says what the replay did)."""
    if inputs is None:
        return None, (
            "The batch was not available to replay (pass inputs= and targets= to "
            "Doctor.step to enable it)."
        )
    bad = params_nonfinite(model)
    if bad:
        return None, weights_already_nonfinite(bad)
    # Hooks (the doctor's own among them) are not copied: the replay must not feed them.
    memo: dict[int, Any] = {id(m._forward_hooks): {} for m in model.modules()}
    twin = copy.deepcopy(model, memo)
    names = {id(m): path or type(m).__name__ for path, m in twin.named_modules()}
    for p in twin.parameters():
        p.grad = None
    trap = detect_anomaly(raise_error=False, module_names=names)
    # Backward runs outside any module call, so remember which module made each tensor in
    # the forward pass: a backward anomaly is then named by the module of its node.
    made_in: dict[int, tuple[Any, str]] = {}
    backward_module: list[str] = []

    def remember(step: Step) -> None:
        if step.scope is not None:
            name = names.get(id(step.scope), type(step.scope).__name__)
            made_in[id(step.output)] = (step.output, name)

    def locate(node: Any, g: Any, input_grads: Any) -> None:
        if trap.anomalies and not backward_module and trap.anomalies[0].phase == "backward":
            backward_module.append(made_in.get(id(node), (None, ""))[1])

    try:
        with trap, observe(op=remember, vjp=locate):
            out = twin(inputs)
            if loss_fn is not None and targets is not None:
                loss = loss_fn(out, targets)
                if not trap.anomalies and getattr(loss, "requires_grad", False):
                    loss.backward()
    except Exception as e:  # the replay is best effort: report, never break training
        return None, f"Replaying the batch under gw.detect_anomaly failed: {e!r}."
    if trap.anomalies:
        a = trap.anomalies[0]
        if a.phase == "backward" and backward_module and backward_module[0]:
            a.module = backward_module[0]
        found = asdict(a)
        found["input_shapes"] = [list(s) for s in a.input_shapes]
        found["input_ranges"] = [list(r) if r else None for r in a.input_ranges]
        return found, "Located by replaying the batch under gw.detect_anomaly."
    return None, (
        "Replaying the batch under gw.detect_anomaly produced no non-finite value (the "
        "original depended on randomness the replay did not repeat, such as dropout masks)."
        if loss_fn is not None
        else "Replaying the forward pass under gw.detect_anomaly produced no non-finite value; "
        "pass loss= to the Doctor to replay the loss and backward too."
    )
