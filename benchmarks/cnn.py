"""Training-step time of two small CNNs: gradwell next to PyTorch (eager), in one run.

* lenet: conv 6@5x5 (padding 2) -> ReLU -> max-pool 2 -> conv 16@5x5 -> ReLU -> max-pool 2
  -> 120 -> 84 -> 10, batch 64 of 1x28x28;
* vgg: 3 blocks of (conv 3x3 + BatchNorm2d + ReLU) x 2 + max-pool 2 (32, 64, 128 channels)
  -> 10, batch 32 of 3x32x32.

A step: zero the gradients, forward, cross-entropy, backward, Adam update, read the loss,
on a few pre-made random batches. The frameworks take turns ``--repeat`` times in one
process with the same thread count; each reports the median step of each turn, and the
table gives the fastest turn's median and the spread (max / min of the turn medians).

    python benchmarks/cnn.py --threads 1 --repeat 3 --markdown
"""

from __future__ import annotations

import argparse
import os
import sys
import time

BLOCKS = (32, 64, 128)


def _gradwell(row: str):
    import numpy as np

    import gradwell as gw

    nn = gw.nn
    if row == "lenet":
        layers = [
            nn.Conv2d(1, 6, 5, padding=2, rng=0), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5, rng=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(400, 120, rng=2), nn.ReLU(), nn.Linear(120, 84, rng=3), nn.ReLU(),
            nn.Linear(84, 10, rng=4),
        ]  # fmt: skip
        shape = (64, 1, 28, 28)
    else:
        layers, c = [], 3
        for i, width in enumerate(BLOCKS):
            for j in range(2):
                layers += [nn.Conv2d(c, width, 3, padding=1, rng=10 * i + j),
                           nn.BatchNorm2d(width), nn.ReLU()]  # fmt: skip
                c = width
            layers.append(nn.MaxPool2d(2))
        layers += [nn.Flatten(), nn.Linear(128 * 4 * 4, 10, rng=99)]
        shape = (32, 3, 32, 32)
    model = nn.Sequential(*layers)
    opt = gw.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    rng = np.random.default_rng(0)
    batches = [
        (rng.standard_normal(shape).astype(np.float32), rng.integers(0, 10, shape[0]))
        for _ in range(4)
    ]

    def step(i: int) -> float:
        x, y = batches[i % 4]
        opt.zero_grad()
        loss = loss_fn(model(gw.tensor(x)), y)
        loss.backward()
        opt.step()
        return float(loss.item())

    return step


def _torch(row: str):
    import numpy as np
    import torch

    nn = torch.nn
    torch.manual_seed(0)
    if row == "lenet":
        layers = [
            nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5),
            nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(),
            nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
        ]  # fmt: skip
        shape = (64, 1, 28, 28)
    else:
        layers, c = [], 3
        for width in BLOCKS:
            for _ in range(2):
                layers += [nn.Conv2d(c, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
                c = width
            layers.append(nn.MaxPool2d(2))
        layers += [nn.Flatten(), nn.Linear(128 * 4 * 4, 10)]
        shape = (32, 3, 32, 32)
    model = nn.Sequential(*layers)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    rng = np.random.default_rng(0)
    batches = [
        (torch.tensor(rng.standard_normal(shape).astype(np.float32)),
         torch.tensor(rng.integers(0, 10, shape[0])))
        for _ in range(4)
    ]  # fmt: skip

    def step(i: int) -> float:
        x, y = batches[i % 4]
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return float(loss.item())

    return step


def _median_step(step, steps: int) -> float:
    for i in range(3):
        step(i)
    times = []
    for i in range(steps):
        t = time.perf_counter()
        step(i)
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rows", default="lenet,vgg")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    frameworks = {"gradwell": _gradwell}
    try:
        import torch

        torch.set_num_threads(args.threads)
        frameworks["torch"] = _torch
    except ImportError:
        print("(torch is not installed: gradwell alone)", file=sys.stderr)
    sep = " | " if args.markdown else "  "
    head = ["row", "gradwell ms", "spread", "torch ms", "spread", "ratio"]
    print(("| " if args.markdown else "") + sep.join(head) + (" |" if args.markdown else ""))
    if args.markdown:
        print("|" + "---|" * len(head))
    for row in args.rows.split(","):
        steps = {name: make(row) for name, make in frameworks.items()}
        turns: dict[str, list[float]] = {name: [] for name in steps}
        for _ in range(args.repeat):
            for name, step in steps.items():
                turns[name].append(_median_step(step, args.steps))
        cells = [row]
        for name in ("gradwell", "torch"):
            t = turns.get(name)
            cells += [f"{min(t) * 1e3:.1f}", f"{max(t) / min(t):.2f}"] if t else ["-", "-"]
        ratio = min(turns["gradwell"]) / min(turns["torch"]) if "torch" in turns else None
        cells.append(f"{ratio:.2f}x" if ratio else "-")
        print(("| " if args.markdown else "") + sep.join(cells) + (" |" if args.markdown else ""))


if __name__ == "__main__":
    main()
