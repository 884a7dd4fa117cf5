"""Data-parallel training over MPI: throughput at 1 and 2 ranks, and a cost model for N.

Rows are the MLPs of ``benchmarks/mlp.py`` (Linear -> BatchNorm1d -> ReLU ->
Dropout(0.1) blocks, cross-entropy, Adam) wrapped in ``gw.distributed.DataParallel``,
with the same batch per rank at 1 and at 2 ranks (so 2 ranks train twice the
examples per step). Every process runs with one BLAS thread: 2 ranks use 2 cores.

Per row and rank count it reports the median step time, the throughput in samples/s,
and from the gradient reducer's own clock: ``issue`` (copying gradients into buckets
and starting their all-reduces, inside backward), ``window`` (backward time left after
the first bucket started: what communication can hide behind), ``wait`` (time after
backward until every bucket is reduced and averaged: the communication *not* hidden),
and ``alone`` (the same buckets all-reduced on their own, blocking: the whole cost of
communication). ``comm %`` is (issue + wait) / step; ``hidden %`` the share of the
gradient bytes whose all-reduce had finished when backward did (overlapped with it).
"2 blocking" is ``DataParallel(overlap=False)``: each bucket's blocking all-reduce
runs in the hook that fills it (no overlap; then ``issue`` holds the communication);
"2 bf16" / "2 fp16" are ``DataParallel(compression=...)`` (16-bit gradients on the
wire), "2 bucket 4 MB" and the like other ``bucket_bytes`` (1 MB by default). ``sent
MB`` is the gradient bytes each rank all-reduces per step. ``cpu ms`` is the process's
CPU time per step (``time.process_time``: what the rank itself ran, not the time it
waited for a core, so less disturbed by other work on the machine than the step time),
and ``cpu extra %`` how much of it the 2-rank step spends beyond the 1-rank step of
the same row and batch per rank: everything data parallelism costs the rank,
communication, waiting (Open MPI polls) and cache contention between the ranks together.

The cost model: the all-reduce latency ``a`` (8 bytes) and bus bandwidth measured at
2 ranks here, fed into the ring all-reduce time for N machines,
``2 (N - 1) a + 2 (N - 1) / N * bytes / link`` for 1 and 10 Gbit/s links (and the bus
bandwidth measured here, as if every machine were linked that fast), next to the
measured compute of one step (the 1-rank step time): what fraction of a step would be
communication with no overlap at all (a pessimistic bound). ``a`` here is a
shared-memory latency: a real network adds tens of microseconds per message.

    python benchmarks/distributed.py                 # both rows, --repeat 3
    python benchmarks/distributed.py --rows wide --repeat 5 --markdown
    python benchmarks/distributed.py --rows wide --setups "1,2,2 bf16,2 fp16"
    python benchmarks/distributed.py --accuracy --epochs 20   # what compression costs

``--accuracy`` measures what the 16-bit all-reduce costs in training instead: an MLP
64-1024-1024-10 (ReLU, no Dropout: the runs differ only by their arithmetic) trained
on scikit-learn's digits with ``gw.fit`` and Adam, in one process at batch 64 and at 2
ranks at batch 32 each (the same examples per step), with and without compression:
the loss per epoch, the validation accuracy, and how far the final weights are from
the one-process run's (the L2 norm of the difference over the norm of the weights).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from mlp import ROWS, gradwell_model, synthetic_batches  # noqa: E402

MODEL_ROWS = {"mlp128": ROWS["mlp128"], "wide": ROWS["wide"]}
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
#: name -> (ranks, DataParallel's options)
SETUPS: dict[str, tuple[int, dict[str, Any]]] = {
    "1": (1, {}),
    "2": (2, {}),
    "2 blocking": (2, {"overlap": False}),
    "2 bf16": (2, {"compression": "bf16"}),
    "2 fp16": (2, {"compression": "fp16"}),
    "2 bf16 blocking": (2, {"compression": "bf16", "overlap": False}),
    **{f"2 bucket {mb:g} MB": (2, {"bucket_bytes": int(mb * 2**20)}) for mb in (0.25, 4, 25)},
}
DEFAULT_SETUPS = "1,2,2 blocking,2 bf16"


def worker(row: str, steps: int, options: dict[str, Any]) -> dict[str, Any] | None:
    """One rank of a measurement; rank 0 returns the numbers."""
    import gradwell as gw
    from gradwell import distributed as dist

    dist.init()
    sizes, batch = MODEL_ROWS[row]
    model, _ = gradwell_model(sizes)
    net = dist.DataParallel(model, **options)
    opt = gw.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = gw.nn.CrossEntropyLoss()
    data = [(gw.tensor(x), gw.tensor(y)) for x, y in synthetic_batches(sizes, batch)]
    reducer = net.reducer
    times, cpu, issue, window, wait, hidden, sent = [], [], [], [], [], [], []
    for i in range(steps + 5):
        before = dict(reducer.stats) if reducer else None
        dist.barrier()  # ranks start each step together: the wait is communication, not skew
        t0, c0 = time.perf_counter(), time.process_time()
        x, y = data[i % len(data)]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()
        loss.item()
        elapsed, cpu_s = time.perf_counter() - t0, time.process_time() - c0
        if i < 5:
            continue
        times.append(elapsed)
        cpu.append(cpu_s)
        if reducer and before:
            issue.append(reducer.stats["issue"] - before["issue"])
            window.append(reducer.stats["window"] - before["window"])
            wait.append(reducer.stats["wait"] - before["wait"])
            sent.append(reducer.stats["bytes"] - before["bytes"])
            hidden.append((reducer.stats["hidden"] - before["hidden"]) / sent[-1])
    alone = 0.0
    if reducer:
        from mpi4py import MPI

        runs = []
        for _ in range(10):
            dist.barrier()
            t0 = time.perf_counter()
            for b in reducer.buckets:
                MPI.COMM_WORLD.Allreduce(MPI.IN_PLACE, b.wire, reducer.op)
            runs.append(time.perf_counter() - t0)
        alone = statistics.median(runs)
    link = _link(dist) if dist.world_size() > 1 else {}
    median = statistics.median
    result = {
        "row": row,
        "ranks": dist.world_size(),
        "batch_per_rank": batch,
        "step_s": median(times),
        "cpu_s": median(cpu),
        "sent_bytes": median(sent) if sent else 0,
        "samples_per_s": dist.world_size() * batch / median(times),
        "issue_s": median(issue) if issue else 0.0,
        "window_s": median(window) if window else 0.0,
        "wait_s": median(wait) if wait else 0.0,
        "hidden": median(hidden) if hidden else 0.0,
        "alone_s": alone,
        "grad_bytes": int(sum(p.data.nbytes for p in net.parameters())),
        "buckets": len(reducer.buckets) if reducer else 0,
        **link,
    }
    return result if dist.is_main() else None


ACCURACY_RUNS = {  # name -> (ranks, compression)
    "1 process": (1, None),
    "2 ranks": (2, None),
    "2 ranks bf16": (2, "bf16"),
    "2 ranks fp16": (2, "fp16"),
}


def accuracy_worker(name: str, epochs: int, weights_out: str) -> dict[str, Any] | None:
    """One training run of ``--accuracy``; rank 0 returns its history and saves the weights."""
    import numpy as np

    import gradwell as gw
    from gradwell.data.datasets import load_digits

    ranks, compression = ACCURACY_RUNS[name]
    ds = load_digits()
    order = np.random.default_rng(0).permutation(len(ds.X))
    X, y = (ds.X[order] / 16).astype(np.float32), ds.y[order]  # type: ignore[index]
    train, val = slice(0, 1437), slice(1437, None)
    nn = gw.nn
    model = nn.Sequential(nn.Linear(64, 1024, rng=0), nn.ReLU(), nn.Linear(1024, 1024, rng=1),
                          nn.ReLU(), nn.Linear(1024, 10, rng=2))  # fmt: skip
    history = gw.fit(
        model,
        (X[train], y[train]),
        loss="cross_entropy",
        optimizer=gw.optim.Adam(model.parameters(), lr=1e-3),
        epochs=epochs,
        batch_size=64 // ranks,
        seed=0,
        verbose=0,
        validation=(X[val], y[val]),
        metrics=["accuracy"],
        distributed={"compression": compression} if ranks > 1 else False,
    )
    if not gw.distributed.is_main():
        return None
    np.savez(weights_out, **{k: np.asarray(v) for k, v in model.state_dict().items()})
    return {"name": name, **{k: history.history[k] for k in ("loss", "val_loss", "val_accuracy")}}


def accuracy(epochs: int, markdown: bool) -> None:
    import tempfile

    import numpy as np

    runs, weights = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (ranks, _) in ACCURACY_RUNS.items():
            out = str(Path(tmp) / f"{len(weights)}.npz")
            cmd = [sys.executable, __file__, "--accuracy-worker", name, "--epochs", str(epochs),
                   "--weights-out", out]  # fmt: skip
            runs[name] = _run(cmd, ranks)
            with np.load(out) as f:
                weights[name] = {k: f[k] for k in f.files}
    one = weights["1 process"]
    shown = sorted({0, epochs // 4, epochs // 2, epochs - 1})
    table = [["run", *(f"loss ep {e + 1}" for e in shown), "val loss", "val acc %",
              "|w - w(1 process)| / |w|"]]  # fmt: skip
    norm = np.sqrt(sum(float(np.sum(np.square(w))) for w in one.values()))
    for name, r in runs.items():
        diff = np.sqrt(sum(float(np.sum(np.square(weights[name][k] - one[k]))) for k in one))
        table.append([name, *(f"{r['loss'][e]:.5f}" for e in shown), f"{r['val_loss'][-1]:.4f}",
                      f"{100 * r['val_accuracy'][-1]:.2f}", f"{diff / norm:.2e}"])  # fmt: skip
    print(f"digits, MLP 64-1024-1024-10, Adam lr 1e-3, {epochs} epochs of 64 examples a step")
    _print(table, " | " if markdown else "  ", markdown)


def _link(dist: Any) -> dict[str, float]:
    """All-reduce latency (8 bytes) and bus bandwidth (16 MB) between the ranks here."""
    import numpy as np
    from mpi4py import MPI

    comm = MPI.COMM_WORLD

    def timed(n_bytes: int, repeats: int) -> float:
        a = np.zeros(n_bytes // 4, dtype=np.float32)
        runs = []
        for _ in range(repeats):
            dist.barrier()
            t0 = time.perf_counter()
            comm.Allreduce(MPI.IN_PLACE, a, MPI.SUM)
            runs.append(time.perf_counter() - t0)
        return statistics.median(runs)

    n = comm.Get_size()
    big = 16 << 20
    return {
        "latency_s": timed(8, 200),
        "bus_bytes_per_s": 2 * (n - 1) / n * big / timed(big, 10),
    }


def ring_seconds(n: int, n_bytes: float, latency: float, link_bytes_per_s: float) -> float:
    """The ring all-reduce: N-1 reduce-scatter and N-1 all-gather steps of bytes/N each."""
    return 2 * (n - 1) * latency + 2 * (n - 1) / n * n_bytes / link_bytes_per_s


def measure(row: str, setup: str, steps: int) -> dict[str, Any]:
    ranks, options = SETUPS[setup]
    cmd = [sys.executable, __file__, "--worker", row, "--steps", str(steps)]
    cmd += ["--options", json.dumps(options)]
    return _run(cmd, ranks)


def _run(cmd: list[str], ranks: int) -> dict[str, Any]:
    """``cmd`` at ``ranks`` ranks, one BLAS thread each; the JSON line rank 0 printed."""
    if ranks > 1:
        from gradwell.distributed.launch import mpiexec_command

        cmd = [*mpiexec_command(ranks), *cmd]
    env = {**os.environ, **ONE_THREAD}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stderr}")
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("{")][-1]
    return dict(json.loads(line))


def _spread(values: list[float], scale: float = 1.0, fmt: str = "{:.1f}") -> str:
    """median [min-max] of the repeats."""
    v = sorted(x * scale for x in values)
    med = statistics.median(v)
    return f"{fmt.format(med)} [{fmt.format(v[0])}-{fmt.format(v[-1])}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default=",".join(MODEL_ROWS))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument(
        "--setups", default=DEFAULT_SETUPS, help=f"comma-separated, of: {', '.join(SETUPS)}"
    )
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--options", default="{}", help=argparse.SUPPRESS)
    parser.add_argument("--accuracy", action="store_true")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--accuracy-worker", help=argparse.SUPPRESS)
    parser.add_argument("--weights-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker or args.accuracy_worker:
        if args.worker:
            result = worker(args.worker, args.steps, json.loads(args.options))
        else:
            result = accuracy_worker(args.accuracy_worker, args.epochs, args.weights_out)
        if result is not None:
            print(json.dumps(result), flush=True)
        return
    if args.accuracy:
        accuracy(args.epochs, args.markdown)
        return

    rows = args.rows.split(",")
    setups = args.setups.split(",")
    unknown = [s for s in setups if s not in SETUPS]
    if unknown or "1" not in setups:
        parser.error(f"--setups: expected names of {', '.join(SETUPS)}, with 1; got {unknown}")
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for _ in range(args.repeat):  # rows and setups take turns: a burst of load spoils one
        for row in rows:
            for setup in setups:
                runs.setdefault((row, setup), []).append(measure(row, setup, args.steps))
    load = os.getloadavg()

    sep = " | " if args.markdown else "  "
    print(f"{args.repeat} repeats, {args.steps} timed steps each, 1 BLAS thread per rank; "
          "median [min-max] of the repeats; load average at the end "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")  # fmt: skip
    head = ["row", "setup", "batch/rank", "step ms", "samples/s", "issue ms", "window ms",
            "wait ms", "alone ms", "sent MB", "comm %", "hidden %", "cpu ms",
            "cpu extra %"]  # fmt: skip
    table = [head]
    for (row, setup), rs in runs.items():
        several = setup != "1"
        comm = [(r["issue_s"] + r["wait_s"]) / r["step_s"] for r in rs]
        cpu_one = statistics.median(r["cpu_s"] for r in runs[(row, "1")])
        table.append([
            row, setup, str(rs[0]["batch_per_rank"]),
            _spread([r["step_s"] for r in rs], 1e3), _spread([r["samples_per_s"] for r in rs],
                                                             fmt="{:.0f}"),
            *(_spread([r[k] for r in rs], 1e3, "{:.2f}") if several else "-"
              for k in ("issue_s", "window_s", "wait_s", "alone_s")),
            f"{rs[0]['sent_bytes'] / 1e6:.1f}" if several else "-",
            _spread(comm, 100) if several else "-",
            _spread([r["hidden"] for r in rs], 100, "{:.0f}") if several else "-",
            _spread([r["cpu_s"] for r in rs], 1e3),
            _spread([1 - cpu_one / r["cpu_s"] for r in rs], 100) if several else "-",
        ])  # fmt: skip
    _print(table, sep, args.markdown)

    two = [r for (row, setup), rs in runs.items() if setup != "1" for r in rs]
    latency = statistics.median(r["latency_s"] for r in two)
    bus = statistics.median(r["bus_bytes_per_s"] for r in two)
    print(f"\nmeasured at 2 ranks (shared memory): all-reduce latency {latency * 1e6:.1f} us, "
          f"bus bandwidth {bus / 1e9:.2f} GB/s")  # fmt: skip
    print("ring all-reduce of the gradients at N machines, no overlap (comm % of a step):")
    model = [["row", "grad MB", "compute ms", "link", *(f"N={n}" for n in (2, 8, 32, 128))]]
    for row in rows:
        grad = runs[(row, "1")][0]["grad_bytes"]
        compute = statistics.median(r["step_s"] for r in runs[(row, "1")])
        links = [("1 Gbit/s", 1e9 / 8), ("10 Gbit/s", 10e9 / 8), ("as measured", bus)]
        for name, link in links:
            cells = []
            for n in (2, 8, 32, 128):
                t = ring_seconds(n, grad, latency, link)
                cells.append(f"{t * 1e3:.1f} ms ({100 * t / (t + compute):.0f}%)")
            model.append([row, f"{grad / 1e6:.1f}", f"{compute * 1e3:.1f}", name, *cells])
    _print(model, sep, args.markdown)


def _print(table: list[list[str]], sep: str, markdown: bool) -> None:
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for k, r in enumerate(table):
        line = sep.join(c.rjust(w) for c, w in zip(r, widths))
        print(f"| {line} |" if markdown else line)
        if markdown and k == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


if __name__ == "__main__":
    main()
