"""Per-op dispatch cost: forward + backward on one-element tensors.

Two graphs, both of one-element tensors so that only dispatch is measured:

* ``4 ops``: the small graph of the issue -- mul, add, tanh, mul -- then
  backward, repeated; the time per repetition divided by 4 (the fixed cost of
  starting a backward pass is included, as a user pays it);
* ``100 ops``: 25 such blocks chained before one backward, which isolates the
  per-op cost.

Compared with PyTorch eager (one thread) in the same run when it is installed.

    python benchmarks/overhead.py
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import gradwell as gw


def _time_interleaved(fns: list[Callable[[], None]], rounds: int = 400) -> list[float]:
    """Median seconds per call of each function, taking turns call by call, so a burst
    of other work on the machine slows every framework alike rather than one."""
    for fn in fns:
        for _ in range(30):
            fn()
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(rounds):
        for fn, out in zip(fns, samples):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return [statistics.median(s) for s in samples]


def make_step(lib, blocks: int) -> Callable[[], None]:
    def step() -> None:
        x = lib.tensor([0.5], requires_grad=True)
        h = x
        for _ in range(blocks):
            h = lib.tanh(h * 1.1 + 0.1) * 0.9
        h.sum().backward()

    return step


def main() -> None:
    libs = [("gradwell", gw)]
    try:
        import torch

        torch.set_num_threads(1)
        libs.append(("pytorch eager", torch))
    except ImportError:
        print("(PyTorch not installed: pip install torch to compare)")
    print(f"{'graph':<10}{'framework':<16}{'us/op (fwd+bwd)':>18}{'gradwell / it':>16}")
    for blocks in (1, 25):
        ops = 4 * blocks + 1  # the blocks plus the final sum
        medians = _time_interleaved([make_step(lib, blocks) for _, lib in libs])
        times = [(name, t / ops) for (name, _), t in zip(libs, medians)]
        for name, t in times:
            label = f"{4 * blocks} ops"
            print(f"{label:<10}{name:<16}{t * 1e6:>18.2f}{times[0][1] / t:>16.2f}")


if __name__ == "__main__":
    main()
