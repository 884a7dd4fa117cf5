"""Forward + backward of the upsampling ops: gradwell next to PyTorch (eager), in one run.

* conv_transpose: ConvTranspose2d(64, 32, 4, stride=2, padding=1) on 16x16 -> 32x32;
* nearest: F.interpolate(scale_factor=2) on (16, 64, 16, 16);
* bilinear: F.interpolate(scale_factor=2, mode="bilinear") on (16, 64, 16, 16).

A call: forward, sum against fixed weights, backward. Each framework runs ``--repeat``
turns of ``--calls`` calls in turn, in one process with the same thread count; the table
gives the fastest turn's median call and the spread (max / min of the turn medians).

    python benchmarks/upsampling.py --threads 1 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import sys
import time

ROWS = ("conv_transpose", "nearest", "bilinear")
BATCH, CHANNELS, SIDE = 16, 64, 16


def _inputs():
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, CHANNELS, SIDE, SIDE)).astype(np.float32)
    w = rng.standard_normal((CHANNELS, 32, 4, 4)).astype(np.float32) * 0.05
    return x, w


def _gradwell(row: str):
    import gradwell as gw

    x0, w0 = _inputs()
    F = gw.nn.functional
    x = gw.tensor(x0, requires_grad=True)
    w = gw.tensor(w0, requires_grad=True)
    fns = {
        "conv_transpose": lambda: F.conv_transpose2d(x, w, stride=2, padding=1),
        "nearest": lambda: F.interpolate(x, scale_factor=2),
        "bilinear": lambda: F.interpolate(x, scale_factor=2, mode="bilinear"),
    }
    fn = fns[row]
    g = gw.ones(*fn().shape)

    def call() -> None:
        x.grad = w.grad = None
        (fn() * g).sum().backward()

    return call


def _torch(row: str):
    import torch

    x0, w0 = _inputs()
    tf = torch.nn.functional
    x = torch.tensor(x0, requires_grad=True)
    w = torch.tensor(w0, requires_grad=True)
    fns = {
        "conv_transpose": lambda: tf.conv_transpose2d(x, w, stride=2, padding=1),
        "nearest": lambda: tf.interpolate(x, scale_factor=2),
        "bilinear": lambda: tf.interpolate(x, scale_factor=2, mode="bilinear"),
    }
    fn = fns[row]
    g = torch.ones(fn().shape)

    def call() -> None:
        x.grad = w.grad = None
        (fn() * g).sum().backward()

    return call


def _median_ms(call, calls: int) -> float:
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    times.sort()
    return 1000 * times[len(times) // 2]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--calls", type=int, default=20)
    args = parser.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None
    makers = {"gradwell": _gradwell} | ({"torch": _torch} if torch is not None else {})
    print("| row | gradwell ms | spread | torch ms | spread | ratio |")
    print("|---|---|---|---|---|---|")
    for row in ROWS:
        calls = {name: make(row) for name, make in makers.items()}
        for call in calls.values():
            call()  # warm up (numba, allocations)
        turns: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(args.repeat):
            for name, call in calls.items():
                turns[name].append(_median_ms(call, args.calls))
        cells = []
        for name in ("gradwell", "torch"):
            t = turns.get(name)
            cells += [f"{min(t):.2f}", f"{max(t) / min(t):.2f}"] if t else ["-", "-"]
        ratio = min(turns["gradwell"]) / min(turns["torch"]) if "torch" in turns else None
        print(f"| {row} | " + " | ".join(cells) + f" | {f'{ratio:.2f}x' if ratio else '-'} |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
