"""The doctor's numbers over the whole job: what each rank measured, merged before it judges.

Each rank's doctor watches its own replica. Gradient norms need nothing here: the
doctor reads the gradients after backward, when they are already the averages. Dead
units do: a ReLU unit is dead for the job only if it was silent on every rank's
examples (the intersection), so before a doctor closes its windows at an epoch's end,
each activation's "ever positive" flags are OR-ed over the ranks and the step each
unit was last positive is the latest over the ranks. Both merges are idempotent, so
a window left open over several epochs is merged again safely. The example counts
stay per rank (a window needs as many examples on each rank as one process needs).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .collectives import all_gather_object, all_reduce


def merge_activation_windows(trace: Any) -> None:
    """OR the open windows' ``ever_positive`` and max ``last_alive`` of ``trace``'s
    activations over all ranks, for the layers every rank has measured."""
    acts = trace.activations
    mine = sorted((path, s.units) for path, s in acts.items() if s.ever_positive is not None)
    everyone = all_gather_object(mine)
    common = set(everyone[0]).intersection(*everyone[1:])
    layers = [acts[path] for path, units in mine if (path, units) in common]
    if not layers:
        return
    packed = np.concatenate(
        [np.concatenate([s.ever_positive.astype(np.int64), s.last_alive]) for s in layers]
    )
    merged = all_reduce(packed, op="max")
    start = 0
    for s in layers:
        n = s.units
        s.ever_positive[:] = merged[start : start + n] > 0
        s.last_alive[:] = merged[start + n : start + 2 * n]
        start += 2 * n


__all__ = ["merge_activation_windows"]
