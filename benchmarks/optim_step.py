"""Optimizer step time: gradwell's compiled update rules against PyTorch's optimizers.

Adam (and SGD with momentum) on the parameters of the benchmark MLPs: a tiny
2-8-8-2 model with BatchNorm (10 small arrays, where per-call overhead rules),
a single 1024x1024 matrix, and the 1024-1024-1024-1024-10 model (memory traffic
rules). PyTorch's own optimizer step (one thread) is timed in the same run when
torch is installed.

    python benchmarks/optim_step.py
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np

import gradwell as gw

MODELS = {
    "2-8-8-2 + BN (10 params)": [(2, 8), (8,), (8,), (8,), (8, 8), (8,), (8,), (8,), (8, 2), (2,)],
    "1024x1024": [(1024, 1024)],
    "1024-1024-1024-1024-10": [(1024, 1024), (1024,)] * 3 + [(1024, 10), (10,)],
}


def _time(fn: Callable[[], None], seconds: float = 0.5) -> float:
    fn()
    n = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds / 5:
        fn()
        n += 1
    samples = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(max(n, 1)):
            fn()
        samples.append((time.perf_counter() - t0) / max(n, 1))
    return statistics.median(samples)


def gradwell_step(shapes, name, kwargs) -> Callable[[], None]:
    rng = np.random.default_rng(0)
    params = [gw.tensor(rng.standard_normal(s), requires_grad=True) for s in shapes]
    for p in params:
        p.grad = gw.tensor(rng.standard_normal(p.shape) * 1e-3)
    opt = getattr(gw.optim, name)(params, **kwargs)
    return opt.step


def torch_step(torch, shapes, name, kwargs) -> Callable[[], None]:
    gen = torch.Generator().manual_seed(0)
    params = [torch.randn(s, generator=gen, requires_grad=True) for s in shapes]
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen) * 1e-3
    opt = getattr(torch.optim, name)(params, **kwargs)
    return opt.step


def main() -> None:
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        torch = None
    configs = [("Adam", dict(lr=1e-3)), ("SGD", dict(lr=1e-2, momentum=0.9))]
    header = f"{'':<6} {'parameters':<26} {'gradwell':>10} {'torch':>10}"
    print(header + "  (microseconds per step)")
    for name, kwargs in configs:
        for label, shapes in MODELS.items():
            ours = _time(gradwell_step(shapes, name, kwargs)) * 1e6
            theirs = _time(torch_step(torch, shapes, name, kwargs)) * 1e6 if torch else float("nan")
            print(f"{name:<6} {label:<26} {ours:>10.1f} {theirs:>10.1f}")


if __name__ == "__main__":
    main()
