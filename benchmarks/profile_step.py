"""Where a training step's time goes, per component, for the rows of mlp.py.

Each primitive's forward and VJP is wrapped with a timer; what is left of the
forward and backward wall time is the engine's and the modules' Python
dispatch. The optimizer step and zero_grad are timed as wholes. Medians are
not used here (components do not add up as medians): these are means over
the timed steps, so run it on a quiet machine. With ``--compiled`` the step runs
through ``gw.compile_step``: forward and backward are then one replayed call, and
what is left of it besides the ops is the replay's own Python ("replay glue").

    python benchmarks/profile_step.py [--rows tiny,wide] [--steps 200] [--compiled]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from mlp import ROWS, gradwell_model, synthetic_batches  # noqa: E402


def profile(sizes: list[int], batch: int, steps: int, compiled: bool = False) -> dict[str, float]:
    import gradwell as gw
    from gradwell.autograd.ops import REGISTRY

    model, opt = gradwell_model(sizes)
    loss_fn = gw.nn.CrossEntropyLoss()
    data = [(gw.Tensor(x), gw.Tensor(y)) for x, y in synthetic_batches(sizes, batch)]
    step = gw.compile_step(model, loss_fn) if compiled else None

    spent: dict[str, float] = defaultdict(float)

    def timed(label: str, fn: Any) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[label] += time.perf_counter() - t0

        return run

    originals = {}
    for name, op in REGISTRY.items():
        originals[name] = (op.forward, op.vjp)
        op.forward = timed(f"forward {name}", op.forward)
        if op.vjp is not None:
            op.vjp = timed(f"backward {name}", op.vjp)
    try:
        for i in range(steps + 20):
            if i == 20:
                spent.clear()
            x, y = data[i % len(data)]
            t0 = time.perf_counter()
            opt.zero_grad()
            t1 = time.perf_counter()
            if step is None:
                loss = loss_fn(model(x), y)
                t2 = time.perf_counter()
                loss.backward()
            else:
                _, loss = step(x, y)  # one call: all of it counts as "forward total"
                t2 = time.perf_counter()
            t3 = time.perf_counter()
            opt.step()
            t4 = time.perf_counter()
            loss.item()
            spent["zero_grad"] += t1 - t0
            spent["forward total"] += t2 - t1
            spent["backward total"] += t3 - t2
            spent["optimizer step"] += t4 - t3
    finally:
        for name, (fwd, vjp) in originals.items():
            REGISTRY[name].forward, REGISTRY[name].vjp = fwd, vjp
    fwd_ops = sum(v for k, v in spent.items() if k.startswith("forward ") and k != "forward total")
    bwd_ops = sum(
        v for k, v in spent.items() if k.startswith("backward ") and k != "backward total"
    )
    if compiled:
        spent["replay glue (Python)"] = spent["forward total"] - fwd_ops - bwd_ops
    else:
        spent["forward dispatch (Python)"] = spent["forward total"] - fwd_ops
        spent["backward dispatch (engine)"] = spent["backward total"] - bwd_ops
    return {k: v / steps * 1e6 for k, v in spent.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", default=",".join(ROWS))
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--compiled", action="store_true", help="through gw.compile_step")
    args = parser.parse_args()
    for row in args.rows.split(","):
        sizes, batch = ROWS[row]
        steps = args.steps if row != "wide" else max(args.steps // 10, 10)
        result = profile(sizes, batch, steps, args.compiled)
        total = result["zero_grad"] + result["forward total"] + result["backward total"]
        total += result["optimizer step"]
        print(f"\n{'-'.join(map(str, sizes))} batch {batch}: {total:,.0f} us/step")
        for key, us in sorted(result.items(), key=lambda kv: -kv[1]):
            if us >= 0.005 * total and not key.endswith("total"):
                print(f"  {key:<30}{us:>10,.0f} us  {us / total:>6.1%}")


if __name__ == "__main__":
    main()
