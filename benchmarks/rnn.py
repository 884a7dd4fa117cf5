"""LSTM forward + backward: gradwell next to PyTorch (eager) and JAX (jit), in one run.

One step: forward a batch through a one-layer LSTM (input 32, hidden 128, batch 32,
sequence length L), the mean square of the outputs as the loss, backward to every
parameter and the input. Each framework runs ``--repeat`` turns per length in one
process with the same thread count; a turn reports its median step, the table the
fastest turn's median and the spread (max / min of the turn medians). The last rows fit
time = a + b * L per framework over the lengths (least squares on the fastest turns):
``b`` is the per-time-step cost, ``a`` the per-call overhead.

``--clock cpu`` times the process's CPU time instead of the wall clock: on a machine
shared with other work the wall clock counts the time the process waits for a core,
the CPU time only the time it computes (every framework runs on one thread, so it is
the same measure for all; memory and cache contention still show in it).

"gradwell composed" is the fused op's reference (the same recurrence in core primitives,
one op per gate) differentiated op by op: the difference is what the fused op saves.

    python benchmarks/rnn.py --threads 1 --repeat 3 --markdown
"""

from __future__ import annotations

import argparse
import os
import sys
import time

INPUT, HIDDEN, BATCH = 32, 128, 32


def _batch(length: int):
    import numpy as np

    return np.random.default_rng(0).standard_normal((length, BATCH, INPUT)).astype(np.float32)


def _gradwell(length: int, composed: bool = False):
    import gradwell as gw
    from gradwell.nn import fused, recurrence

    lstm = gw.nn.LSTM(INPUT, HIDDEN, rng=0)
    x = gw.tensor(_batch(length), requires_grad=True)

    def forward():
        if not composed:
            return lstm(x)[0]
        # the same recurrence as its reference in core primitives, differentiated op by op
        xp = fused.linear(x, lstm.weight_ih_l0, lstm.bias_ih_l0)
        h0 = gw.zeros(BATCH, HIDDEN)
        hc = recurrence.lstm.reference(
            None, xp, h0, h0, lstm.weight_hh_l0, lstm.bias_hh_l0, reverse=False
        )
        return hc[0]

    def run() -> float:
        lstm.zero_grad()
        x.grad = None
        out = forward()
        loss = (out * out).mean()
        loss.backward()
        return float(loss.item())

    return run


def _torch(length: int):
    import torch

    torch.manual_seed(0)
    lstm = torch.nn.LSTM(INPUT, HIDDEN)
    x = torch.tensor(_batch(length), requires_grad=True)

    def run() -> float:
        lstm.zero_grad()
        x.grad = None
        out, _ = lstm(x)
        loss = (out * out).mean()
        loss.backward()
        return float(loss.item())

    return run


def _jax(length: int):
    import jax
    import jax.numpy as jnp
    import numpy as np

    rng = np.random.default_rng(0)
    k = 1 / np.sqrt(HIDDEN)
    params = {
        name: jnp.asarray(rng.uniform(-k, k, shape).astype(np.float32))
        for name, shape in (("w_ih", (4 * HIDDEN, INPUT)), ("w_hh", (4 * HIDDEN, HIDDEN)),
                            ("b_ih", (4 * HIDDEN,)), ("b_hh", (4 * HIDDEN,)))
    }  # fmt: skip
    x = jnp.asarray(_batch(length))

    def loss_fn(p, x):
        xp = x @ p["w_ih"].T + p["b_ih"]

        def cell(carry, xp_t):
            h, c = carry
            z = xp_t + h @ p["w_hh"].T + p["b_hh"]
            i, f, g, o = jnp.split(z, 4, axis=-1)
            c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
            h = jax.nn.sigmoid(o) * jnp.tanh(c)
            return (h, c), h

        zeros = jnp.zeros((BATCH, HIDDEN), jnp.float32)
        _, out = jax.lax.scan(cell, (zeros, zeros), xp)
        return jnp.mean(out * out)

    grad = jax.jit(jax.value_and_grad(loss_fn, argnums=(0, 1)))

    def run() -> float:
        loss, grads = grad(params, x)
        jax.block_until_ready(grads)
        return float(loss)

    return run


def median_step(step, steps: int, clock=time.perf_counter) -> float:
    """The median time of ``steps`` calls of ``step`` after three warm-up calls."""
    for _ in range(3):
        step()
    times = []
    for _ in range(steps):
        t = clock()
        step()
        times.append(clock() - t)
    return sorted(times)[len(times) // 2]


def _fit(lengths: list[int], times: list[float]) -> tuple[float, float]:
    """Least squares time = a + b * L: (a, b)."""
    n = len(lengths)
    mean_l, mean_t = sum(lengths) / n, sum(times) / n
    b = sum((length - mean_l) * (t - mean_t) for length, t in zip(lengths, times))
    b /= sum((length - mean_l) ** 2 for length in lengths)
    return mean_t - b * mean_l, b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--lengths", default="10,25,50,100")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    parser.add_argument(
        "--frameworks", default="gradwell,gradwell composed,torch,jax",
        help="comma-separated, from: gradwell, gradwell composed, torch, jax",
    )  # fmt: skip
    args = parser.parse_args()
    wanted = set(args.frameworks.split(","))
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    os.environ.setdefault(
        "XLA_FLAGS", f"--xla_cpu_multi_thread_eigen={'true' if args.threads > 1 else 'false'}"
    )
    frameworks = {"gradwell": _gradwell, "gradwell composed": lambda n: _gradwell(n, True)}
    try:
        import torch

        torch.set_num_threads(args.threads)
        frameworks["torch"] = _torch
    except ImportError:
        print("(torch is not installed)", file=sys.stderr)
    try:
        import jax  # noqa: F401

        frameworks["jax"] = _jax
    except ImportError:
        print("(jax is not installed)", file=sys.stderr)
    frameworks = {name: make for name, make in frameworks.items() if name in wanted | {"gradwell"}}
    lengths = [int(n) for n in args.lengths.split(",")]
    best: dict[str, list[float]] = {name: [] for name in frameworks}
    sep = " | " if args.markdown else "  "

    def line(cells: list[str]) -> None:
        print(("| " if args.markdown else "") + sep.join(cells) + (" |" if args.markdown else ""))

    others = [name for name in frameworks if name != "gradwell"]
    head = ["L", "gradwell ms", "spread"]
    for name in others:
        head += [f"{name} ms", "spread", f"gradwell / {name}"]
    line(head)
    if args.markdown:
        print("|" + "---|" * len(head))
    for length in lengths:
        steps = {name: make(length) for name, make in frameworks.items()}
        turns: dict[str, list[float]] = {name: [] for name in steps}
        for _ in range(args.repeat):
            for name, step in steps.items():
                turns[name].append(median_step(step, args.steps, clock))
        for name, t in turns.items():
            best[name].append(min(t))
        cells = [str(length)]
        for name in ["gradwell", *others]:
            t = turns[name]
            cells += [f"{min(t) * 1e3:.2f}", f"{max(t) / min(t):.2f}"]
            if name != "gradwell":
                cells.append(f"{min(turns['gradwell']) / min(t):.2f}x")
        line(cells)
    if len(lengths) < 2:
        return
    print()
    line(["framework", "per time step (us)", "per call (ms)"])
    if args.markdown:
        print("|---|---|---|")
    for name, times in best.items():
        a, b = _fit(lengths, times)
        line([name, f"{b * 1e6:.0f}", f"{a * 1e3:.2f}"])


if __name__ == "__main__":
    main()
