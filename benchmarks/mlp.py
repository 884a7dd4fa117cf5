"""Training-step time of MLPs: gradwell next to PyTorch (eager) and JAX (jit).

Each row is a model made of blocks Linear -> BatchNorm1d -> ReLU -> Dropout(0.1),
a last Linear, cross-entropy and Adam (lr 1e-3), trained on synthetic data (a
few pre-made random batches, so data loading is not measured). A step is:
zero the gradients, forward, loss, backward, optimizer update, read the loss.
The time is the median over many steps after a warm-up (JAX's compilation
happens in the warm-up); with ``--repeat N`` the frameworks take turns N times
and each row keeps its fastest median (a burst of other load on the machine
then spoils one run, not the table).

Every framework runs in its own process with the same thread count: the
OMP/OpenBLAS/MKL thread variables, ``torch.set_num_threads`` and, for fewer
threads than cores, the CPU affinity (XLA has no thread-count switch of its
own; pinning the process to N cores limits it too).

The matmul floor is the step's matmul FLOPs -- per Linear the forward product and
the two backward products (weight gradient, input gradient; the first layer
needs no input gradient) -- divided by the float32 GEMM throughput that numpy
reaches on this machine, measured in the same run with the same threads. No
framework can beat it without doing less arithmetic.

    python benchmarks/mlp.py                  # all rows, all installed frameworks
    python benchmarks/mlp.py --threads 1 --rows tiny,mlp128 --markdown
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from typing import Any

ROWS: dict[str, tuple[list[int], int]] = {
    "tiny": ([2, 8, 8, 2], 32),
    "mlp128": ([784, 512, 256, 10], 128),
    "mlp32": ([784, 512, 256, 10], 32),
    "wide": ([1024, 1024, 1024, 1024, 10], 256),
}
FRAMEWORKS = ("gradwell", "compiled", "torch", "jax")  # compiled: gradwell's compile_step
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
# Variables that change which OpenBLAS kernel runs; shown in the header when set.
BLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_VERBOSE")


def matmul_flops(sizes: list[int], batch: int) -> int:
    """FLOPs of a step's matmuls: 2*B*in*out per product, 3 per Linear (2 for the first)."""
    total = 0
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        products = 2 if i == 0 else 3
        total += products * 2 * batch * n_in * n_out
    return total


# --------------------------------------------------------------------- timing
# What a step's time is: wall-clock, or with --cpu-time the process's CPU time (all its
# threads), which other processes on a shared machine do not add to.
clock = time.perf_counter


def time_steps(step: Any, min_seconds: float, warmup: int = 10) -> tuple[float, int]:
    """Median seconds per call of ``step`` and the number of timed calls."""
    for _ in range(warmup):
        step()
    samples: list[float] = []
    deadline = time.perf_counter() + min_seconds
    while len(samples) < 20 or (time.perf_counter() < deadline and len(samples) < 5000):
        t0 = clock()
        step()
        samples.append(clock() - t0)
    samples.sort()
    return samples[len(samples) // 2], len(samples)


def synthetic_batches(sizes: list[int], batch: int, count: int = 4) -> list[tuple[Any, Any]]:
    import numpy as np

    rng = np.random.default_rng(0)
    return [
        (
            rng.standard_normal((batch, sizes[0]), dtype=np.float32),
            rng.integers(0, sizes[-1], size=batch, dtype=np.int64),
        )
        for _ in range(count)
    ]


def gemm_gflops(n: int = 1024, repeats: int = 10) -> float:
    """float32 GEMM throughput of numpy's BLAS (best of ``repeats`` n x n x n products)."""
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    out = np.empty((n, n), dtype=np.float32)
    np.matmul(a, b, out=out)
    best = float("inf")
    for _ in range(repeats):
        t0 = clock()
        np.matmul(a, b, out=out)
        best = min(best, clock() - t0)
    return 2 * n**3 / best / 1e9


# --------------------------------------------------------------- frameworks
def gradwell_model(sizes: list[int]) -> tuple[Any, Any]:
    """The benchmark's model in gradwell and its Adam optimizer (also used by the other
    benchmarks of this folder)."""
    import gradwell as gw

    nn = gw.nn
    layers: list[Any] = []
    for n_in, n_out in zip(sizes[:-2], sizes[1:-1]):
        layers += [nn.Linear(n_in, n_out, rng=0), nn.BatchNorm1d(n_out), nn.ReLU(),
                   nn.Dropout(0.1, rng=0)]  # fmt: skip
    layers.append(nn.Linear(sizes[-2], sizes[-1], rng=0))
    model = nn.Sequential(*layers)
    return model, gw.optim.Adam(model.parameters(), lr=1e-3)


def eager_step(model: Any, loss_fn: Any, opt: Any, data: list[Any]) -> Any:
    """One training step as both eager frameworks spell it: zero the gradients, forward,
    loss, backward, update, read the loss; batches taken in turn from ``data``."""
    i = 0

    def step() -> None:
        nonlocal i
        x, y = data[i % len(data)]
        i += 1
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        loss.item()

    return step


def gradwell_step(sizes: list[int], batch: int) -> Any:
    import gradwell as gw

    model, opt = gradwell_model(sizes)
    loss_fn = gw.nn.CrossEntropyLoss()
    data = [(gw.Tensor(x), gw.Tensor(y)) for x, y in synthetic_batches(sizes, batch)]
    return eager_step(model, loss_fn, opt, data)


def compiled_step(sizes: list[int], batch: int) -> Any:
    """gradwell's step through ``gw.compile_step``: forward, loss and backward replayed."""
    import gradwell as gw

    model, opt = gradwell_model(sizes)
    step = gw.compile_step(model, gw.nn.CrossEntropyLoss())
    data = [(gw.Tensor(x), gw.Tensor(y)) for x, y in synthetic_batches(sizes, batch)]
    i = 0

    def run() -> None:
        nonlocal i
        x, y = data[i % len(data)]
        i += 1
        opt.zero_grad(set_to_none=True)
        _, loss = step(x, y)
        opt.step()
        loss.item()

    return run


def torch_step(sizes: list[int], batch: int) -> Any:
    import torch

    layers: list[Any] = []
    for n_in, n_out in zip(sizes[:-2], sizes[1:-1]):
        layers += [torch.nn.Linear(n_in, n_out), torch.nn.BatchNorm1d(n_out), torch.nn.ReLU(),
                   torch.nn.Dropout(0.1)]  # fmt: skip
    layers.append(torch.nn.Linear(sizes[-2], sizes[-1]))
    model = torch.nn.Sequential(*layers).train()
    loss_fn = torch.nn.CrossEntropyLoss()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    data = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in synthetic_batches(sizes, batch)]
    return eager_step(model, loss_fn, opt, data)


def jax_step(sizes: list[int], batch: int) -> Any:
    """The same model in JAX: BatchNorm in training mode (running statistics updated too),
    dropout from a split PRNG key, Adam written out, the whole step one jitted function."""
    import jax
    import jax.numpy as jnp

    key = jax.random.PRNGKey(0)
    params, stats = [], []
    hidden = len(sizes) - 2
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        key, sub = jax.random.split(key)
        bound = (6.0 / n_in) ** 0.5
        w = jax.random.uniform(sub, (n_in, n_out), jnp.float32, -bound, bound)
        layer = {"w": w, "b": jnp.zeros(n_out, jnp.float32)}
        if i < hidden:  # blocks with BatchNorm; the last Linear has none
            layer |= {"gamma": jnp.ones(n_out, jnp.float32), "beta": jnp.zeros(n_out, jnp.float32)}
            stats.append(
                {"mean": jnp.zeros(n_out, jnp.float32), "var": jnp.ones(n_out, jnp.float32)}
            )
        params.append(layer)
    lr, b1, b2, eps, momentum, keep = 1e-3, 0.9, 0.999, 1e-8, 0.1, 0.9

    def loss_fn(params: Any, stats: Any, x: Any, y: Any, key: Any) -> Any:
        h = x
        new_stats = []
        for i in range(hidden):
            p, s = params[i], stats[i]
            h = h @ p["w"] + p["b"]
            mean = h.mean(axis=0)
            var = h.var(axis=0)
            h = (h - mean) / jnp.sqrt(var + 1e-5) * p["gamma"] + p["beta"]
            n = h.shape[0]
            new_stats.append({
                "mean": (1 - momentum) * s["mean"] + momentum * mean,
                "var": (1 - momentum) * s["var"] + momentum * var * n / (n - 1),
            })  # fmt: skip
            h = jax.nn.relu(h)
            key, sub = jax.random.split(key)
            h = jnp.where(jax.random.bernoulli(sub, keep, h.shape), h / keep, 0.0)
        logits = h @ params[-1]["w"] + params[-1]["b"]
        logp = jax.nn.log_softmax(logits)
        loss = -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))
        return loss, new_stats

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def train_step(params: Any, stats: Any, m: Any, v: Any, t: Any, x: Any, y: Any, key: Any):
        key, sub = jax.random.split(key)
        (loss, new_stats), grads = grad_fn(params, stats, x, y, sub)
        t = t + 1
        m = jax.tree_util.tree_map(lambda m, g: b1 * m + (1 - b1) * g, m, grads)
        v = jax.tree_util.tree_map(lambda v, g: b2 * v + (1 - b2) * g * g, v, grads)
        c1, c2 = 1 - b1**t, 1 - b2**t
        params = jax.tree_util.tree_map(
            lambda p, m, v: p - lr * (m / c1) / (jnp.sqrt(v / c2) + eps), params, m, v
        )
        return params, new_stats, m, v, t, key, loss

    jitted = jax.jit(train_step, donate_argnums=(0, 1, 2, 3))
    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    state = [params, stats, zeros, jax.tree_util.tree_map(jnp.zeros_like, params),
             jnp.float32(0), key]  # fmt: skip
    data = [(jnp.asarray(x), jnp.asarray(y.astype("int32"))) for x, y in
            synthetic_batches(sizes, batch)]  # fmt: skip
    i = 0

    def step() -> None:
        nonlocal i
        x, y = data[i % len(data)]
        i += 1
        p, s, m, v, t, k = state
        p, s, m, v, t, k, loss = jitted(p, s, m, v, t, x, y, k)
        state[:] = [p, s, m, v, t, k]
        float(loss)  # waits for the result, as reading the loss does elsewhere

    return step


BUILDERS = {
    "gradwell": gradwell_step,
    "compiled": compiled_step,
    "torch": torch_step,
    "jax": jax_step,
}


# --------------------------------------------------------------- processes
def _worker(framework: str, rows: list[str], threads: int, seconds: float, cpu_time: bool) -> None:
    """Runs in a child process: time the rows for one framework, print JSON."""
    global clock
    clock = time.process_time if cpu_time else time.perf_counter
    if framework == "torch":
        import torch

        torch.set_num_threads(threads)
    result: dict[str, Any] = {}
    if framework == "gradwell":
        result["gemm_gflops"] = gemm_gflops()
        try:
            from threadpoolctl import threadpool_info

            result["blas"] = [
                f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')} "
                f"({i.get('num_threads')} threads)"
                for i in threadpool_info() if i.get("user_api") == "blas"
            ]  # fmt: skip
        except ImportError:
            result["blas"] = []
    for row in rows:
        sizes, batch = ROWS[row]
        step = BUILDERS[framework](sizes, batch)
        for _ in range(10):  # warm-up: JIT compilation (numba, XLA) is not training memory
            step()
        before = _reset_peak_rss()
        seconds_per_step, n = time_steps(step, seconds, warmup=0)
        # Peak growth while training: the high-water mark of resident memory during the
        # timed steps, less the resident size when they began.
        grown = max(0, _peak_rss() - before) if before is not None else None
        result[row] = {"us": seconds_per_step * 1e6, "steps": n, "mem": grown}
    print(json.dumps(result))


def _reset_peak_rss() -> int | None:
    """Reset the kernel's resident high-water mark (Linux) and return the current size."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return None


def _peak_rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def _child_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    for var in THREAD_VARS:
        env[var] = str(threads)
    if threads == 1:
        env["XLA_FLAGS"] = (
            env.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
            " intra_op_parallelism_threads=1"
        ).strip()
    src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _run_framework(framework: str, rows: list[str], *options: Any) -> Any:
    """Each row in its own process (a clean memory high-water mark); results merged."""
    merged: dict[str, Any] = {}
    for row in rows:
        one = _run_row(framework, row, *options)
        if one is None:
            return None
        merged.update(one)
    return merged


def _run_row(framework: str, row: str, threads: int, seconds: float, cpu_time: bool) -> Any:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", framework, "--rows", row,
           "--threads", str(threads), "--seconds", str(seconds)]  # fmt: skip
    if cpu_time:
        cmd.append("--cpu-time")
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    preexec = None
    if cpus and threads < len(cpus):
        pinned = set(cpus[:threads])
        preexec = lambda: os.sched_setaffinity(0, pinned)  # noqa: E731
    proc = subprocess.run(
        cmd, env=_child_env(threads), capture_output=True, text=True, preexec_fn=preexec
    )
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["(no output)"]
        print(f"({framework} failed: {tail[0]})", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _best(results: list[Any], rows: list[str]) -> Any:
    """Per row, the fastest of the repeated runs' medians (None if every run failed)."""
    ok = [r for r in results if r]
    if not ok:
        return None
    best = dict(ok[0])
    for row in rows:
        best[row] = min((r[row] for r in ok), key=lambda x: x["us"])
    best["gemm_gflops"] = max((r.get("gemm_gflops", 0.0) for r in ok), default=0.0)
    return best


def _installed(framework: str) -> bool:
    import importlib.util

    return framework in ("gradwell", "compiled") or importlib.util.find_spec(framework) is not None


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _fmt_us(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0))
                        if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)  # fmt: skip
    parser.add_argument("--rows", default=",".join(ROWS), help=f"from {', '.join(ROWS)}")
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS))
    parser.add_argument("--seconds", type=float, default=2.0, help="minimum timed seconds per row")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs per framework; each row keeps its fastest")  # fmt: skip
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time steps in process CPU time (use with --threads 1)")  # fmt: skip
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    rows = args.rows.split(",")
    for row in rows:
        if row not in ROWS:
            parser.error(f"unknown row {row!r}; expected some of {', '.join(ROWS)}")
    if args.worker:
        _worker(args.worker, rows, args.threads, args.seconds, args.cpu_time)
        return 0

    frameworks = [f for f in args.frameworks.split(",") if _installed(f)]
    missing = [f for f in args.frameworks.split(",") if f not in frameworks]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    runs: dict[str, list[Any]] = {f: [] for f in frameworks}
    for _ in range(args.repeat):  # frameworks take turns, so a burst of load hits one run
        for f in frameworks:
            runs[f].append(_run_framework(f, rows, args.threads, args.seconds, args.cpu_time))
    results = {f: _best(r, rows) for f, r in runs.items()}
    ours = results.get("gradwell") or {}
    gflops = ours.get("gemm_gflops")

    print(f"CPU: {_cpu_name()}; threads: {args.threads} for every framework; "
          f"load average before the run: {load:.2f}"
          + ("; times are process CPU time" if args.cpu_time else ""))  # fmt: skip
    for line in ours.get("blas", []):
        print(f"numpy BLAS: {line}")
    blas_env = [f"{v}={os.environ[v]}" for v in BLAS_VARS if v in os.environ]
    print("BLAS environment: " + (" ".join(blas_env) if blas_env else "(no OPENBLAS_* overrides)"))
    if gflops:
        print(f"numpy float32 GEMM (1024^3): {gflops:.1f} GFLOP/s")
    for f in missing:
        print(f"({f} not installed: pip install {f} to compare)")
    versions = {"gradwell": None, "torch": None, "jax": None}
    for f in frameworks:
        if f in ("torch", "jax") and results.get(f):
            import importlib.metadata as md

            versions[f] = md.version(f)

    headers = ["model", "batch", "gradwell us", "compiled us", "torch us", "jax us", "ratio",
               "ratio compiled", "floor us", "compiled / floor", "gradwell MB", "compiled MB",
               "torch MB", "jax MB"]  # fmt: skip
    table = []
    for row in rows:
        sizes, batch = ROWS[row]

        def us(f: str, row: str = row) -> float | None:
            r = results.get(f)
            return r[row]["us"] if r else None

        others = [t for t in (us("torch"), us("jax")) if t is not None]

        def ratio(f: str, others: list[float] = others) -> str:
            mine = us(f)
            return f"{mine / min(others):.2f}" if others and mine else "-"

        floor = matmul_flops(sizes, batch) / (gflops * 1e9) * 1e6 if gflops else None

        def mb(f: str, row: str = row) -> str:
            r = results.get(f)
            mem = r[row].get("mem") if r else None
            return "-" if mem is None else f"{mem / 2**20:,.1f}"

        table.append(["-".join(map(str, sizes)), str(batch), _fmt_us(us("gradwell")),
                      _fmt_us(us("compiled")), _fmt_us(us("torch")), _fmt_us(us("jax")),
                      ratio("gradwell"), ratio("compiled"),
                      "-" if floor is None else f"{floor:,.1f}",
                      "-" if floor is None or us("compiled") is None
                      else f"{us('compiled') / floor:,.2f}",
                      mb("gradwell"), mb("compiled"), mb("torch"), mb("jax")])  # fmt: skip
    labels = [f"torch {versions['torch']}" if versions["torch"] else "torch",
              f"jax {versions['jax']}" if versions["jax"] else "jax"]  # fmt: skip
    print(f"(µs per training step, median; gradwell = eager, compiled = gw.compile_step; ratio ="
          f" gradwell's time / the faster of {' and '.join(labels)};"
          " MB = peak resident memory growth while training)")  # fmt: skip
    if args.markdown:
        print("| " + " | ".join(headers) + " |")
        print("|" + "|".join(["---"] + ["---:"] * (len(headers) - 1)) + "|")
        for r in table:
            print("| " + " | ".join(r) + " |")
    else:
        widths = [max(len(h), *(len(r[i]) for r in table)) for i, h in enumerate(headers)]
        print(
            "  ".join(
                h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(headers, widths))
            )
        )
        for r in table:
            print(
                "  ".join(
                    c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))
                )
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
