"""Per-op cost of a small graph: forward + backward on one-element tensors.

The graph is a chain of 4 elementwise ops (mul, add, tanh, mul) repeated; we
divide the time of forward + backward by the number of ops. This is pure
dispatch cost: the arrays hold one element. Compared with PyTorch eager in the
same run when it is installed.

    python benchmarks/overhead.py
"""

from __future__ import annotations

import statistics
import time

import gradwell as gw

REPEATS = 25  # blocks of 4 ops per graph
OPS = 4 * REPEATS


def _time(fn, rounds: int = 200) -> float:
    for _ in range(20):
        fn()
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def gradwell_step() -> None:
    x = gw.tensor([0.5], requires_grad=True)
    h = x
    for _ in range(REPEATS):
        h = gw.tanh(h * 1.1 + 0.1) * 0.9
    h.sum().backward()


def torch_step_factory():
    import torch

    torch.set_num_threads(1)

    def step() -> None:
        x = torch.tensor([0.5], requires_grad=True)
        h = x
        for _ in range(REPEATS):
            h = torch.tanh(h * 1.1 + 0.1) * 0.9
        h.sum().backward()

    return step


def main() -> None:
    rows = [("gradwell", _time(gradwell_step))]
    try:
        rows.append(("pytorch eager", _time(torch_step_factory())))
    except ImportError:
        print("(PyTorch not installed: pip install torch to compare)")
    base = rows[0][1]
    print(f"{'framework':<16}{'us/op (fwd+bwd)':>18}{'gradwell / it':>16}")
    for name, t in rows:
        print(f"{name:<16}{t / OPS * 1e6:>18.2f}{base / t:>16.2f}")


if __name__ == "__main__":
    main()
