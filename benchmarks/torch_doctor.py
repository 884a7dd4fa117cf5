"""What gradwell's doctor costs a PyTorch loop: step time with and without ``gradwell.torch``.

The MLP rows are those of benchmarks/mlp.py (blocks Linear -> BatchNorm1d -> ReLU ->
Dropout(0.1), a last Linear, cross-entropy, Adam lr 1e-3), built in torch; the ``cnn``
row is a small conv net on 1x28x28 images (Conv2d(1,16,3) -> ReLU -> MaxPool ->
Conv2d(16,32,3) -> ReLU -> MaxPool -> Linear), batch 64. Each loop runs ``STEPS``
pre-made synthetic batches per epoch: zero the gradients, forward, loss, backward,
``doctor.step(loss, x, y)``, optimizer step, read the loss.

- off:      no doctor
- default:  ``Doctor(model, optimizer, loss=loss_fn)``: every 16th step sampled
- every:    ``Doctor(..., sample_every=1)``: every step sampled, the cost of one sample
- replay:   the NaN trap's replay of one batch against one step (forward and backward),
            on each of its paths: ``clean`` (nothing non-finite reproduces: the forward with
            one check of every module's inputs and outputs, the loss, one backward),
            ``forward`` (the loss's last op makes inf), ``backward`` (a masked sqrt after
            the model makes NaN gradients: the module that turns them runs again with
            every op recorded, its backward watched node by node)

The three configurations take turns run by run, ``--repeats`` times, their order
rotating: each run is a whole training run by itself (its own caches, as a user's loop
has them), and a burst of other work on a shared machine falls on neighbouring runs, so
each repeat's doctor/off ratio is a paired measure. (Taking turns step by step, as an
earlier version did, hid most of the overhead on the small rows: each step then followed
another configuration's step, which slowed the doctor-less loop as well; tiny read +2.5%
that way and +18% run by run.) A row reports the median ratio of the repeats and each
repeat's, and the smallest mean step time of each configuration. Time is the thread's
CPU time with torch on one thread (``--wall`` for wall-clock
time). The goal (issue 20): the default adds at most 5%; the replay costs at most 2x a
step.

``--ops`` counts instead of timing: the tensor ops dispatched (``TorchDispatchMode``) by
a training step, by the doctor on a sampled step, and by each replay path against one
forward and backward. The counts do not move with the load of a shared machine, and on
a small model, where each op costs its dispatch, they follow the time (they leave out
the Python around the ops: hooks, bookkeeping).

    python benchmarks/torch_doctor.py
    python benchmarks/torch_doctor.py --rows tiny,cnn --repeats 5 --markdown
    python benchmarks/torch_doctor.py --ops --markdown
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mlp import ROWS  # noqa: E402  (the same rows)
from table import overhead_arguments, print_table  # noqa: E402

from gradwell.torch import Doctor  # noqa: E402
from gradwell.torch.replay import replay_nonfinite  # noqa: E402

CLOCK = time.thread_time
STEPS = 48  # batches per epoch
EPOCHS = {"tiny": 8, "mlp128": 2, "mlp32": 4, "wide": 1, "cnn": 2}
CNN_BATCH = 64


def mlp(sizes: list[int]) -> nn.Module:
    layers: list[nn.Module] = []
    for n_in, n_out in zip(sizes[:-2], sizes[1:-1]):
        layers += [nn.Linear(n_in, n_out), nn.BatchNorm1d(n_out), nn.ReLU(), nn.Dropout(0.1)]
    layers.append(nn.Linear(sizes[-2], sizes[-1]))
    return nn.Sequential(*layers)


def cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 10),
    )  # fmt: skip


def setup(name: str) -> tuple[nn.Module, list[tuple[torch.Tensor, torch.Tensor]]]:
    torch.manual_seed(0)
    if name == "cnn":
        model, shape, classes, batch = cnn(), (1, 28, 28), 10, CNN_BATCH
    else:
        sizes, batch = ROWS[name]
        model, shape, classes = mlp(sizes), (sizes[0],), sizes[-1]
    data = [(torch.randn(batch, *shape), torch.randint(0, classes, (batch,))) for _ in range(4)]
    return model.train(), data


class Loop:
    """One configuration's training loop (``mode``: off, default or every), a step at a time."""

    def __init__(self, name: str, mode: str) -> None:
        self.model, self.data = setup(name)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.loss_fn = nn.CrossEntropyLoss()
        self.doctor = None
        if mode != "off":
            every = 1 if mode == "every" else None
            self.doctor = Doctor(self.model, self.opt, loss=self.loss_fn, sample_every=every,
                                 verbose=False)  # fmt: skip
        self.i = 0

    def step(self) -> float:
        """One step (and the epoch's end after every ``STEPS``-th): its seconds."""
        model, opt, doctor = self.model, self.opt, self.doctor
        x, y = self.data[self.i % len(self.data)]
        t0 = CLOCK()
        opt.zero_grad(set_to_none=True)
        loss = self.loss_fn(model(x), y)
        loss.backward()
        if doctor is not None:
            doctor.step(loss, x, y)
        opt.step()
        loss.item()
        self.i += 1
        if doctor is not None and self.i % STEPS == 0:
            doctor.end_epoch()
        return CLOCK() - t0


def run_alone(name: str, mode: str, epochs: int) -> float:
    """Mean seconds per step of one configuration's whole run (``epochs`` epochs), alone."""
    loop = Loop(name, mode)
    steps = epochs * STEPS
    return sum(loop.step() for _ in range(steps)) / steps


def _nan_in_the_forward(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy plus log(0): the forward's last op makes -inf."""
    return nn.functional.cross_entropy(out, y) + torch.log(out - out).sum()


class MaskedSqrt(nn.Module):
    """torch.where's gradient trap after the model's output: the forward is finite, the
    sqrt's backward makes NaN gradients all the way down."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(x > 0, x.sqrt(), x)


#: The replay's three paths, as (what wraps the model, the loss): nothing non-finite
#: reproduces (the forward with its checks, the loss, one backward); the forward's last
#: op makes inf (every module checked, the loss under the trap); the backward makes NaN
#: (then the batch runs again with every op and graph node watched).
REPLAYS = {
    "clean": (lambda m: m, nn.CrossEntropyLoss()),
    "forward": (lambda m: m, _nan_in_the_forward),
    "backward": (lambda m: nn.Sequential(m, MaskedSqrt()), nn.CrossEntropyLoss()),
}


def replay_cost(name: str, repeats: int) -> dict[str, float]:
    """The NaN replay of one batch over one step (forward and backward), both at their
    smallest over ``5 * repeats`` turns (they are short: more turns find the quiet
    moments of a shared machine), for each of the replay's paths."""
    model, data = setup(name)
    loss_fn = nn.CrossEntropyLoss()
    x, y = data[0]
    step: list[float] = []
    replay: dict[str, list[float]] = {k: [] for k in REPLAYS}
    for _ in range(5 * max(repeats, 3)):
        t0 = CLOCK()
        loss_fn(model(x), y).backward()
        step.append(CLOCK() - t0)
        for kind, (wrap, fn) in REPLAYS.items():
            replayed = wrap(model)
            t0 = CLOCK()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                found, _ = replay_nonfinite(replayed, x, y, fn)
            replay[kind].append(CLOCK() - t0)
            phase = None if found is None else found["phase"]
            assert phase == {"clean": None}.get(kind, kind), (kind, found)
    return {k: min(v) / min(step) for k, v in replay.items()}


class _Counting(TorchDispatchMode):
    """Counts the tensor ops dispatched inside it."""

    def __init__(self) -> None:
        super().__init__()
        self.ops = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.ops += 1
        return func(*args, **(kwargs or {}))


def _ops(fn: Any) -> int:
    with _Counting() as counting:
        fn()
    return counting.ops


def op_counts(name: str) -> list[str]:
    """One row of ``--ops``: the ops of a training step, the doctor's ops on a sampled step,
    and each replay path's ops against those of one forward and backward."""
    model, data = setup(name)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    x, y = data[0]
    doctor = Doctor(model, opt, loss=loss_fn, sample_every=1, verbose=False)

    def step(watched: bool) -> None:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        if watched:
            doctor.step(loss, x, y)
        opt.step()
        loss.item()

    for _ in range(3):  # past the first steps (the pre-flight check, the first sample)
        step(True)
    plain, sampled = _ops(lambda: step(False)), _ops(lambda: step(True))
    doctor.finish()
    once = _ops(lambda: loss_fn(model(x), y).backward())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        replays = [_ops(lambda w=w, f=f: replay_nonfinite(w(model), x, y, f))
                   for w, f in REPLAYS.values()]  # fmt: skip
    return [name, str(plain), f"+{sampled - plain}", str(once),
            *(f"{r} ({r / once:.1f}x)" for r in replays)]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    names = [*ROWS, "cnn"]
    argv = list(sys.argv[1:] if argv is None else argv)
    count = "--ops" in argv
    args = overhead_arguments(
        __doc__.splitlines()[0], list(names), [a for a in argv if a != "--ops"]
    )
    if count:
        header = ["model", "ops / step", "doctor's ops / sampled step", "ops / fwd+bwd",
                  *(f"replay {k} ops" for k in REPLAYS)]  # fmt: skip
        print_table(header, [op_counts(name) for name in args.rows], args.markdown)
        return 0
    global CLOCK
    if args.wall:
        CLOCK = time.perf_counter
    torch.set_num_threads(1)
    rows = args.rows
    lines = []
    for name in rows:
        epochs = EPOCHS[name]
        run_alone(name, "every", 1)  # warm-up (kernels, numba, caches)
        runs: dict[str, list[float]] = {"off": [], "default": [], "every": []}
        modes = list(runs)
        for r in range(args.repeats):
            for mode in modes[r % 3 :] + modes[: r % 3]:  # the order rotates
                runs[mode].append(run_alone(name, mode, epochs))
        # each repeat's runs followed each other: their ratio is a paired measure
        ratios = {k: sorted(v / o for v, o in zip(runs[k], runs["off"])) for k in runs}
        overhead = {k: (r[len(r) // 2] - 1) * 100 for k, r in ratios.items()}  # the median
        desc = "cnn 1x28x28" if name == "cnn" else f"{name} {'-'.join(map(str, ROWS[name][0]))}"
        batch = CNN_BATCH if name == "cnn" else ROWS[name][1]
        low, high = ((ratios["default"][i] - 1) * 100 for i in (0, -1))
        lines.append([
            desc, str(batch), f"{min(runs['off']) * 1e6:.0f}",
            f"{min(runs['default']) * 1e6:.0f}", f"{overhead['default']:+.1f}%",
            f"{low:+.1f}% .. {high:+.1f}%", f"{overhead['every']:+.0f}%",
            *(f"{r:.1f}x" for r in replay_cost(name, args.repeats).values()),
        ])  # fmt: skip
        print("# " + ", ".join(lines[-1]), file=sys.stderr)
    header = ["model", "batch", "off (us/step)", "doctor (us/step)", "overhead",
              "overhead, each repeat", "every step sampled",
              *(f"replay {k} / step" for k in REPLAYS)]  # fmt: skip
    print_table(header, lines, args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
