"""What the training doctor costs: ``gw.fit`` step time with the doctor off and on.

The models are those of benchmarks/mlp.py (blocks Linear -> BatchNorm1d -> ReLU ->
Dropout(0.1), a last Linear, cross-entropy, Adam lr 1e-3), trained with ``gw.fit``
on synthetic data (``STEPS`` batches per epoch, verbose=0). Each configuration is
run several times, interleaved; the reported number is the smallest over runs of
the mean step time (the mean, so the sampled steps count at their share; the
smallest run, because other work on a shared machine only ever adds time). Time is
the thread's CPU time (``time.thread_time``) with BLAS on one thread, so other
processes on the machine do not count; ``--wall`` uses wall-clock time. A step
is timed from the start of ``on_batch_begin`` to the end of
``on_batch_end``: forward, loss, backward, the doctor's look at the gradients,
the optimizer step and the doctor's update measurement.

- off:      ``fit(..., doctor=False)``
- default:  ``fit(...)`` (the doctor samples every 16th step, or 4 times an epoch when
            epochs are shorter: here every 12th)
- every:    ``fit(..., doctor=Doctor(sample_every=1))``: every step sampled, the
            cost of one sampled step, from which any other interval follows.

Outside the steps the doctor also costs a fixed amount per run (the feature audit
of up to 5000 rows when training starts) and per epoch (one diagnosis); the last
column reports them, measured as the rest of the difference in total fit time.

The goal (issue 5): the default adds at most 10% to the step time.

    python benchmarks/doctor_overhead.py
    python benchmarks/doctor_overhead.py --rows tiny,mlp128 --repeats 5 --markdown
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy loads BLAS: CPU time is then the cost

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mlp import ROWS, gradwell_model  # noqa: E402  (the same rows and model)
from table import overhead_arguments, print_table  # noqa: E402

CLOCK = time.thread_time
STEPS = 50  # batches per epoch: the default then samples every 12th step
EPOCHS = {"tiny": 6, "mlp128": 2, "mlp32": 2, "wide": 1}


def data(sizes: list[int], batch: int, steps: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    n = batch * steps
    X = rng.standard_normal((n, sizes[0]), dtype=np.float32)
    y = rng.integers(0, sizes[-1], size=n, dtype=np.int64)
    return X, y


def step_timer() -> Any:
    from gradwell.train.callbacks import Callback

    class StepTimer(Callback):
        order = 10_000  # after every other callback, the doctor included

        def __init__(self) -> None:
            super().__init__()
            self.times: list[float] = []

        def on_batch_begin(self, step: int, logs: Any = None) -> None:
            self._t0 = CLOCK()

        def on_batch_end(self, step: int, logs: Any = None) -> None:
            self.times.append(CLOCK() - self._t0)

    return StepTimer()


def run(
    sizes: list[int], batch: int, X: np.ndarray, y: np.ndarray, mode: str, epochs: int
) -> tuple[float, float, int]:
    """(mean seconds per step, seconds for the whole fit, steps) of one fit."""
    import gradwell as gw
    from gradwell.doctor import Doctor

    model, opt = gradwell_model(sizes)
    doctor: Any = {"off": False, "default": True, "every": Doctor(sample_every=1)}[mode]
    timer = step_timer()
    t0 = CLOCK()
    gw.fit(model, (X, y), loss=gw.nn.CrossEntropyLoss(), optimizer=opt, epochs=epochs,
           batch_size=batch, seed=0, verbose=0, doctor=doctor, callbacks=[timer])  # fmt: skip
    total = CLOCK() - t0
    return float(np.mean(timer.times)), total, len(timer.times)


def main(argv: list[str] | None = None) -> int:
    args = overhead_arguments(__doc__.splitlines()[0], list(ROWS), argv)
    global CLOCK
    if args.wall:
        CLOCK = time.perf_counter
    rows = args.rows
    results = []
    for name in rows:
        sizes, batch = ROWS[name]
        epochs = EPOCHS.get(name, 2)
        X, y = data(sizes, batch, STEPS)
        run(sizes, batch, X[: batch * 4], y[: batch * 4], "default", 1)  # warm-up (JIT, caches)
        runs: dict[str, list[tuple[float, float, int]]] = {"off": [], "default": [], "every": []}
        for _ in range(args.repeats):
            for mode in runs:
                runs[mode].append(run(sizes, batch, X, y, mode, epochs))
        step = {k: min(r[0] for r in v) for k, v in runs.items()}
        total = {k: min(r[1] for r in v) for k, v in runs.items()}
        n = runs["off"][0][2]
        fixed = (total["default"] - total["off"]) - n * (step["default"] - step["off"])
        results.append((name, sizes, batch, n, epochs, step, fixed))
        print(f"# {name}: step off {step['off'] * 1e6:.0f} us, default "
              f"{step['default'] * 1e6:.0f} us, every step {step['every'] * 1e6:.0f} us; "
              f"fixed {fixed * 1e3:.1f} ms per run", file=sys.stderr)  # fmt: skip
    header = ["model", "batch", "off (us/step)", "doctor (us/step)", "overhead",
              "every step sampled", "overhead", "fixed per run"]  # fmt: skip
    lines = []
    for name, sizes, batch, n, epochs, step, fixed in results:
        off = step["off"]
        lines.append([
            f"{name} {'-'.join(map(str, sizes))}", str(batch), f"{off * 1e6:.0f}",
            f"{step['default'] * 1e6:.0f}", f"{(step['default'] / off - 1) * 100:+.1f}%",
            f"{step['every'] * 1e6:.0f}", f"{(step['every'] / off - 1) * 100:+.1f}%",
            f"{fixed * 1e3:.1f} ms ({epochs} epochs of {n // epochs} steps)",
        ])  # fmt: skip
    print_table(header, lines, args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
