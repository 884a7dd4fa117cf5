"""Step time and peak memory of two small CNNs: gradwell next to PyTorch (eager), in one run.

* lenet: conv 6@5x5 (padding 2) -> ReLU -> max-pool 2 -> conv 16@5x5 -> ReLU -> max-pool 2
  -> 120 -> 84 -> 10, batch 64 of 1x28x28;
* vgg: 3 blocks of (conv 3x3 + BatchNorm2d + ReLU) x 2 + max-pool 2 (32, 64, 128 channels)
  -> 10, batch 32 of 3x32x32.

A step: zero the gradients, forward, cross-entropy, backward, Adam update, read the loss,
on a few pre-made random batches. ``gradwell`` runs eagerly, ``compiled`` through
``gw.compile_step`` (where the fusions of ``nn.fused.FUSIONS`` apply), ``torch`` eagerly.

Time: every framework and row runs in a fresh process with the same thread count, and the
frameworks take turns ``--repeat`` times, so a burst of load on a shared machine spoils one
turn, not a column. Each turn gives the median step (wall clock, and CPU time of the
process, which other processes' load inflates less); the table gives the fastest turn's
median and the spread (slowest / fastest turn).

Memory: a step's peak above the steady state between steps (parameters, gradients and
optimizer state are there before and after): the resident high-water mark over a few
steps less the resident size before them, in a fresh process per framework with glibc's
allocator returning every large block to the system when it is freed (a fixed
``MALLOC_MMAP_THRESHOLD_``), so that resident memory follows what is alive, for torch and
numpy alike (gradwell's own tuning of malloc, which keeps freed pages for speed, is off
there). For gradwell also the peak of numpy's allocations (``tracemalloc``; arrays made
inside numba kernels are not counted).

    python benchmarks/cnn.py --threads 1 --repeat 3 --markdown
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

from mlp import _peak_rss, _reset_peak_rss  # (this folder: the scripts share them)

ROWS = {
    "lenet": "LeNet-5, batch 64, 1x28x28",
    "vgg": "VGG-style (3 blocks of 2 conv3x3+BN+ReLU, pool), batch 32, 3x32x32",
}
FRAMEWORKS = ("gradwell", "compiled", "torch")
BLOCKS = (32, 64, 128)
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _batches(row: str) -> list[tuple[Any, Any]]:
    import numpy as np

    shape = (64, 1, 28, 28) if row == "lenet" else (32, 3, 32, 32)
    rng = np.random.default_rng(0)
    return [
        (rng.standard_normal(shape).astype(np.float32), rng.integers(0, 10, shape[0]))
        for _ in range(4)
    ]


def _gradwell_model(row: str) -> Any:
    import gradwell as gw

    nn = gw.nn
    if row == "lenet":
        layers = [
            nn.Conv2d(1, 6, 5, padding=2, rng=0), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5, rng=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(400, 120, rng=2), nn.ReLU(), nn.Linear(120, 84, rng=3), nn.ReLU(),
            nn.Linear(84, 10, rng=4),
        ]  # fmt: skip
    else:
        layers, c = [], 3
        for i, width in enumerate(BLOCKS):
            for j in range(2):
                layers += [nn.Conv2d(c, width, 3, padding=1, rng=10 * i + j),
                           nn.BatchNorm2d(width), nn.ReLU()]  # fmt: skip
                c = width
            layers.append(nn.MaxPool2d(2))
        layers += [nn.Flatten(), nn.Linear(128 * 4 * 4, 10, rng=99)]
    return nn.Sequential(*layers)


def gradwell_step(row: str) -> Any:
    import gradwell as gw

    model = _gradwell_model(row)
    opt = gw.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = gw.nn.CrossEntropyLoss()
    batches = [(gw.tensor(x), y) for x, y in _batches(row)]

    def step(i: int) -> float:
        x, y = batches[i % 4]
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return float(loss.item())

    return step


def compiled_step(row: str) -> Any:
    import gradwell as gw

    model = _gradwell_model(row)
    opt = gw.optim.Adam(model.parameters(), lr=1e-3)
    step_fn = gw.compile_step(model, gw.nn.CrossEntropyLoss())
    batches = [(gw.tensor(x), gw.tensor(y)) for x, y in _batches(row)]

    def step(i: int) -> float:
        x, y = batches[i % 4]
        opt.zero_grad()
        _, loss = step_fn(x, y)
        opt.step()
        return float(loss.item())

    return step


def torch_step(row: str) -> Any:
    import torch

    nn = torch.nn
    torch.manual_seed(0)
    if row == "lenet":
        layers = [
            nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5),
            nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(),
            nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
        ]  # fmt: skip
    else:
        layers, c = [], 3
        for width in BLOCKS:
            for _ in range(2):
                layers += [nn.Conv2d(c, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
                c = width
            layers.append(nn.MaxPool2d(2))
        layers += [nn.Flatten(), nn.Linear(128 * 4 * 4, 10)]
    model = nn.Sequential(*layers)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    batches = [(torch.tensor(x), torch.tensor(y)) for x, y in _batches(row)]

    def step(i: int) -> float:
        x, y = batches[i % 4]
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return float(loss.item())

    return step


BUILDERS = {"gradwell": gradwell_step, "compiled": compiled_step, "torch": torch_step}


# ------------------------------------------------------------------- in the child
def _time(framework: str, row: str, steps: int) -> dict[str, float]:
    step = BUILDERS[framework](row)
    for i in range(3):  # warm-up: numba's cache, torch's first calls
        step(i)
    wall, cpu = [], []
    for i in range(steps):
        t, c = time.perf_counter(), time.process_time()
        step(i)
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return {"wall": sorted(wall)[steps // 2], "cpu": sorted(cpu)[steps // 2]}


def _memory(framework: str, row: str) -> dict[str, float | None]:
    step = BUILDERS[framework](row)
    for i in range(3):
        step(i)
    before = _reset_peak_rss()  # the high-water mark starts again from the size now
    for i in range(3):
        step(i)
    rss = None if before is None else max(0, _peak_rss() - before)
    result: dict[str, float | None] = {"rss": rss, "numpy": None}
    if framework != "torch":
        import tracemalloc

        tracemalloc.start()
        step(0)
        start = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        step(1)
        result["numpy"] = tracemalloc.get_traced_memory()[1] - start
        tracemalloc.stop()
    return result


def _worker(framework: str, row: str, threads: int, steps: int, what: str) -> None:
    if framework == "torch":
        import torch

        torch.set_num_threads(threads)
    out = _time(framework, row, steps) if what == "time" else _memory(framework, row)
    print(json.dumps(out))


# ------------------------------------------------------------------ in the parent
def _child(framework: str, row: str, args: Any, what: str) -> Any:
    env = dict(os.environ)
    for var in THREAD_VARS:
        env[var] = str(args.threads)
    if what == "memory":  # freed blocks go back to the system: resident = alive
        env["MALLOC_MMAP_THRESHOLD_"] = "65536"
        env["GRADWELL_MALLOC_TUNING"] = "0"  # (gradwell keeps freed pages for speed)
    src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", framework, "--rows", row,
           "--threads", str(args.threads), "--steps", str(args.steps), "--what", what]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["(no output)"]
        print(f"({framework} {row} failed: {tail[0]})", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _installed(framework: str) -> bool:
    import importlib.util

    return framework != "torch" or importlib.util.find_spec("torch") is not None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rows", default=",".join(ROWS))
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS))
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--what", default="time", help=argparse.SUPPRESS)
    args = parser.parse_args()
    rows = args.rows.split(",")
    if args.worker:
        _worker(args.worker, rows[0], args.threads, args.steps, args.what)
        return
    frameworks = [f for f in args.frameworks.split(",") if _installed(f)]
    if "torch" in args.frameworks.split(",") and "torch" not in frameworks:
        print("(torch is not installed: no ratios)", file=sys.stderr)
    load = os.getloadavg()[0]
    turns: dict[tuple[str, str], list[dict[str, float]]] = {}
    for _ in range(args.repeat):  # the frameworks take turns
        for row in rows:
            for f in frameworks:
                if (r := _child(f, row, args, "time")) is not None:
                    turns.setdefault((f, row), []).append(r)
    memory = {(f, row): _child(f, row, args, "memory") for row in rows for f in frameworks}
    load_after = os.getloadavg()[0]

    def best(f: str, row: str, key: str) -> float | None:
        ts = turns.get((f, row))
        return min(t[key] for t in ts) if ts else None

    def ms(f: str, row: str) -> str:
        ts = turns.get((f, row))
        if not ts:
            return "-"
        walls = [t["wall"] for t in ts]
        return f"{min(walls) * 1e3:.1f} ({max(walls) / min(walls):.2f})"

    def ratio(f: str, row: str, key: str) -> str:
        mine, theirs = best(f, row, key), best("torch", row, key)
        return f"{mine / theirs:.2f}x" if mine and theirs else "-"

    def mb(f: str, row: str, key: str = "rss") -> str:
        m = memory.get((f, row))
        return "-" if not m or m.get(key) is None else f"{m[key] / 2**20:.1f}"

    head = ["row", "gradwell ms", "compiled ms", "torch ms", "ratio", "ratio compiled",
            "ratio CPU time", "gradwell MB", "compiled MB", "torch MB",
            "gradwell numpy MB"]  # fmt: skip
    table = [
        [
            ROWS[row] if args.markdown else row,
            ms("gradwell", row),
            ms("compiled", row),
            ms("torch", row),
            ratio("gradwell", row, "wall"),
            ratio("compiled", row, "wall"),
            ratio("gradwell", row, "cpu"),
            mb("gradwell", row),
            mb("compiled", row),
            mb("torch", row),
            mb("gradwell", row, "numpy"),
        ]  # fmt: skip
        for row in rows
    ]
    print(f"threads: {args.threads}; {args.repeat} turns of {args.steps} steps; load average "
          f"{load:.1f} before, {load_after:.1f} after (on {os.cpu_count()} cores)")  # fmt: skip
    print("ms: median step of the fastest turn (slowest / fastest turn); ratio: to torch, "
          "by wall clock (CPU time); MB: a step's peak above the steady state")  # fmt: skip
    if args.markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
        for cells in table:
            print("| " + " | ".join(cells) + " |")
    else:
        widths = [max(len(h), *(len(r[i]) for r in table)) for i, h in enumerate(head)]
        for cells in [head, *table]:
            print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in
                            enumerate(zip(cells, widths))))  # fmt: skip


if __name__ == "__main__":
    main()
