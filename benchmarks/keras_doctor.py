"""What gradwell's doctor costs Keras' ``model.fit``: step time with and without
``gradwell.keras.DoctorCallback`` (Keras 3 on its torch backend).

Rows: ``tiny`` (2-8-8-2, batch 32) and ``mlp32`` (784-512-256-10, batch 32): Dense layers
with ReLU inside, a linear output, sparse cross-entropy from logits, Adam lr 1e-3, on
synthetic data. Each run is one ``fit`` of ``EPOCHS`` epochs of ``STEPS`` steps (the
first epoch, which builds the train function, is not timed: a callback timing the later
epochs reads the clock at their start and at training's end).

- off:      ``model.fit(...)``
- default:  ``model.fit(..., callbacks=[DoctorCallback()])``: 4 samples an epoch
- every:    ``DoctorCallback(sample_every=1)``: every step sampled
- replay:   one NaN replay of a batch (``gradwell.keras.replay.replay_nonfinite``) on a
  finite batch, so that every part runs (the forward and the loss with every op recorded,
  the backward with a hook on every graph node), against a step of ``off``

Configurations take turns ``--repeats`` times; a row reports the smallest mean step
time over the runs and the spread (largest over smallest) of the off and default runs.
Time is the process's CPU time with torch on one thread (``--wall`` for wall-clock).

    python benchmarks/keras_doctor.py --repeats 3 --markdown
"""

from __future__ import annotations

import os
import sys
import time
import warnings

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from table import overhead_arguments, print_table  # noqa: E402

from gradwell.keras import DoctorCallback  # noqa: E402
from gradwell.keras.losses import KerasLoss  # noqa: E402
from gradwell.keras.replay import replay_nonfinite  # noqa: E402

ROWS = {"tiny": ([2, 8, 8, 2], 32), "mlp32": ([784, 512, 256, 10], 32)}
EPOCHS, STEPS = 4, 64


class _Clock(keras.callbacks.Callback):
    """Seconds from the second epoch's start to training's end."""

    def __init__(self, clock: object) -> None:
        super().__init__()
        self.clock, self.start, self.seconds = clock, 0.0, 0.0

    def on_epoch_begin(self, epoch: int, logs: object = None) -> None:
        if epoch == 1:
            self.start = self.clock()  # type: ignore[operator]

    def on_train_end(self, logs: object = None) -> None:
        self.seconds = self.clock() - self.start  # type: ignore[operator]


def setup(sizes: list[int], batch: int) -> tuple[keras.Model, np.ndarray, np.ndarray]:
    """The row's compiled model and data."""
    keras.utils.set_random_seed(0)
    layers = [keras.Input((sizes[0],))]
    layers += [keras.layers.Dense(w, activation="relu") for w in sizes[1:-1]]
    model = keras.Sequential([*layers, keras.layers.Dense(sizes[-1])])
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))  # fmt: skip
    rng = np.random.default_rng(0)
    X = rng.normal(size=(batch * STEPS, sizes[0])).astype(np.float32)
    y = rng.integers(0, sizes[-1], size=batch * STEPS)
    return model, X, y


def replay_seconds(sizes: list[int], batch: int, clock: object, times: int = 5) -> float:
    """The smallest time of ``times`` NaN replays of one batch."""
    model, X, y = setup(sizes, batch)
    x, t = torch.as_tensor(X[:batch]), torch.as_tensor(y[:batch])
    loss = KerasLoss(model.loss)
    best = float("inf")
    for _ in range(times):
        start = clock()  # type: ignore[operator]
        anomaly, note = replay_nonfinite(model, x, t, loss)
        best = min(best, clock() - start)  # type: ignore[operator]
        assert anomaly is None, note  # (a finite batch: nothing to find)
    return best


def run(sizes: list[int], batch: int, mode: str, clock: object) -> float:
    """Mean seconds per step of the timed epochs."""
    model, X, y = setup(sizes, batch)
    timer = _Clock(clock)
    callbacks: list[object] = [timer]
    if mode != "off":
        options = {"sample_every": 1} if mode == "every" else {}
        callbacks.insert(0, DoctorCallback(verbose=False, **options))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X, y, batch_size=batch, epochs=EPOCHS, verbose=0, callbacks=callbacks)
    return timer.seconds / ((EPOCHS - 1) * STEPS)


def main(argv: list[str] | None = None) -> None:
    args = overhead_arguments(__doc__.split("\n")[0], list(ROWS), argv)
    torch.set_num_threads(1)
    clock = time.perf_counter if args.wall else time.process_time
    modes = ("off", "default", "every")
    out = []
    for row in args.rows:
        sizes, batch = ROWS[row]
        times: dict[str, list[float]] = {m: [] for m in modes}
        for _ in range(args.repeats):
            for m in modes:
                times[m].append(run(sizes, batch, m, clock))
        best = {m: min(v) for m, v in times.items()}
        replay = replay_seconds(sizes, batch, clock)
        spread = {m: max(v) / min(v) - 1 for m, v in times.items()}
        out.append([
            f"{row} {'-'.join(map(str, sizes))}", str(batch), f"{best['off'] * 1e6:.0f}",
            f"{best['default'] * 1e6:.0f}", f"{best['default'] / best['off'] - 1:+.1%}",
            f"{spread['off']:.0%} / {spread['default']:.0%}",
            f"{best['every'] / best['off'] - 1:+.0%}", f"{replay / best['off']:.1f}x",
        ])  # fmt: skip
    print_table(["model", "batch", "off (µs/step)", "doctor (µs/step)", "overhead",
                 "spread off / doctor", "every step sampled", "NaN replay / step"], out,
                args.markdown)  # fmt: skip


if __name__ == "__main__":
    main()
