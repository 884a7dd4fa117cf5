"""What each rank runs in the multi-rank tests: ``mpiexec -n 2 python ranks.py SCENARIO OUT``.

Rank 0 writes what the test checks to ``OUT`` (JSON, and checkpoints beside it).
"""

import json
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np

import gradwell as gw
from gradwell import distributed as dist
from gradwell import nn

B = 8  # examples per rank and batch
STEPS = 20


def build(seed=0, width=16, dropout=0.0):
    # No bias before BatchNorm: its true gradient is zero, and Adam would turn the
    # round-off left in it (different at 1 and 2 ranks) into steps of size lr.
    return nn.Sequential(
        nn.Linear(6, width, bias=False, rng=seed),
        nn.BatchNorm1d(width),
        nn.ReLU(),
        nn.Dropout(dropout, rng=seed + 2),
        nn.Linear(width, 3, rng=seed + 1),
    )


def data(n=STEPS * 2 * B // 2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 1)
    return X, y


def optimizers(params):
    params = list(params)
    return {
        "sgd": gw.optim.SGD(params, lr=0.1, momentum=0.9),
        "adam": gw.optim.Adam(params, lr=0.01),
    }


def weights(model):
    return {
        k: np.asarray(v.data if hasattr(v, "data") else v) for k, v in model.state_dict().items()
    }


def equivalence(out):
    """20 steps at 2 ranks x B against 20 steps of one process x 2B (computed here too)."""
    X, y = data()  # 10 batches of 2B an epoch: 2 epochs are 20 steps
    loss_fn = nn.CrossEntropyLoss()
    result = {}
    for name in ("sgd", "adam"):
        net = dist.DataParallel(build(), sync_batchnorm=True)
        opt = optimizers(net.parameters())[name]
        sampler = dist.DistributedSampler(len(X), seed=0)
        loader = gw.data.DataLoader((X, y), batch_size=B, sampler=sampler)
        identical = True
        for _ in range(2):
            for xb, yb in loader:
                opt.zero_grad()
                loss_fn(net(xb), yb).backward()
                grads = [p.grad.data.tobytes() for p in net.parameters()]
                identical &= all(g == grads for g in dist.all_gather_object(grads))
                opt.step()
        ref = build()
        ref_opt = optimizers(ref.parameters())[name]
        ref_loader = gw.data.DataLoader((X, y), batch_size=2 * B, shuffle=True, seed=0)
        for _ in range(2):
            for xb, yb in ref_loader:
                ref_opt.zero_grad()
                loss_fn(ref(xb), yb).backward()
                ref_opt.step()
        ours, theirs = weights(net), weights(ref)
        result[name] = {
            "grads_identical": bool(identical),
            "steps": net.reducer.stats["steps"],
            "diffs": {
                k: float(np.max(np.abs(ours[k] - theirs[k])))
                for k in ours
                if ours[k].dtype.kind == "f"
            },
            "same_on_ranks": all(
                all(np.array_equal(a[k], ours[k]) for k in ours)
                for a in dist.all_gather_object(ours)
            ),
        }
    # Accumulation: two backward passes without zero_grad add two averages (zero_grad
    # that keeps the arrays writes zeros into the reducer's buckets, where .grad lives).
    net = dist.DataParallel(build(), overlap=False)
    xb, yb = gw.tensor(X[:B] + dist.rank()), gw.tensor(y[:B])
    loss_fn(net(xb), yb).backward()
    once = [p.grad.data.copy() for p in net.parameters()]
    net.zero_grad(set_to_none=False)
    for _ in range(2):
        loss_fn(net(xb), yb).backward()
    result["accumulates"] = all(
        np.allclose(p.grad.data, 2 * g, rtol=1e-6, atol=1e-7)
        for p, g in zip(net.parameters(), once)
    )
    result["overlap"] = overlap(X, y)
    result["mismatch"] = dist.all_gather_object(mismatch())
    result["dead_units"] = dist.all_gather_object(dead_units())
    result["job_doctor"] = dist.all_gather_object(job_doctor())
    result["unused"] = dist.all_gather_object(unused_parameters(X, y))
    # BatchNorm per rank (the default): the ranks' statistics differ, rank 0's are kept
    model = build()
    gw.fit(model, (X, y), loss="cross_entropy", optimizer=gw.optim.SGD(model.parameters(),
           lr=0.1), epochs=1, batch_size=B, seed=0, verbose=0, distributed=True)  # fmt: skip
    state = weights(model)
    result["per_rank_bn_same_state"] = all(
        all(np.array_equal(a[k], state[k]) for k in state) for a in dist.all_gather_object(state)
    )
    # Dropout: masks differ between ranks, and the same seeds give the same masks again.
    masks = []
    for _ in range(2):
        net = dist.DataParallel(build(dropout=0.5))
        drop = net.module[3]
        masks.append((drop(gw.ones(4, 16)).data != 0).tolist())
    everyone = dist.all_gather_object(masks)
    result["dropout_differs_between_ranks"] = everyone[0][0] != everyone[1][0]
    result["dropout_reproducible"] = all(m[0] == m[1] for m in everyone)
    return result


def compression(out):
    """One backward per setting, on each rank's own batch: the averaged gradients, and
    each rank's own (local) gradients, for the test to average itself."""
    X, y = data()
    xb, yb = gw.tensor(X[:B] * (1 + dist.rank())), gw.tensor(y[:B])
    loss_fn = nn.CrossEntropyLoss()
    alone = build(width=64)
    loss_fn(alone(xb), yb).backward()
    result = {"own": dist.all_gather_object([p.grad.data.tolist() for p in alone.parameters()])}
    for compression in (None, "bf16", "fp16"):
        for overlap in (True, False):
            net = dist.DataParallel(
                build(width=64), compression=compression, overlap=overlap, bucket_bytes=1024
            )
            loss_fn(net(xb), yb).backward()
            grads = [p.grad.data.tobytes() for p in net.parameters()]
            result[f"{compression} {overlap}"] = {
                "grads": [p.grad.data.tolist() for p in net.parameters()],
                "same_on_ranks": all(g == grads for g in dist.all_gather_object(grads)),
                "sent": net.reducer.stats["bytes"],
            }
    # fit passes the option through: an epoch with bf16 lands near, not on, float32's
    fitted = {}
    for compression in (None, "bf16"):
        model = build(width=64)
        gw.fit(model, (X, y), loss="cross_entropy", optimizer=gw.optim.SGD(model.parameters(),
               lr=0.1), epochs=1, batch_size=B, seed=0, verbose=0,
               distributed={"compression": compression})  # fmt: skip
        fitted[compression] = weights(model)
    ours = fitted["bf16"]
    result["fit"] = {
        "same_on_ranks": all(
            all(np.array_equal(a[k], ours[k]) for k in ours) for a in dist.all_gather_object(ours)
        ),
        "diffs": [float(np.max(np.abs(ours[k] - fitted[None][k]))) for k in ours],
    }
    return result


def fit_and_resume(out):
    """fit(distributed=True) for 2 epochs with checkpoints; resume epoch 2 from the first."""
    X, y = data(seed=1)
    Xv, yv = data(n=37, seed=2)
    folder = Path(out).parent

    def run(model, epochs, initial_epoch=0, callbacks=()):
        opt = gw.optim.Adam(model.parameters(), lr=0.01)
        if initial_epoch:
            gw.load(folder / f"ckpt-{initial_epoch}.safetensors", model, opt)
        return gw.fit(
            model,
            (X, y),
            loss="cross_entropy",
            optimizer=opt,
            epochs=epochs,
            batch_size=B,
            initial_epoch=initial_epoch,
            seed=3,
            verbose=0,
            metrics=["accuracy"],
            validation=(Xv, yv),
            callbacks=list(callbacks),
            distributed={"sync_batchnorm": True},
        )

    model = build()
    saver = gw.callbacks.ModelCheckpoint(folder / "ckpt-{epoch}.safetensors", monitor="loss")
    history = run(model, 2, callbacks=[saver])
    dist.barrier()  # rank 0 has written the checkpoints
    resumed = build(seed=5)  # other initial weights: the checkpoint must replace them
    run(resumed, 2, initial_epoch=1)
    a, b = weights(model), weights(resumed)
    logs = {k: v for k, v in history.history.items() if k != "time"}
    norms = history.doctor.trace.grad_norm  # read after backward: the averaged gradients
    return {
        "doctor_grad_norms_same_on_ranks": all(n == norms for n in dist.all_gather_object(norms)),
        "doctor_sampled": len(history.doctor.trace.samples),
        "history": history.history,
        "logs_same_on_ranks": all(h == logs for h in dist.all_gather_object(logs)),
        "resumed_at_2_equal": all(np.array_equal(a[k], b[k]) for k in a),
        "saved_by_rank": dist.all_gather_object(len(saver.saved)),
    }


class _On(gw.callbacks.Callback):
    """Calls ``action`` on rank 1 at batch 3 of the first epoch (and ``others`` on the
    other ranks)."""

    def __init__(self, action, others=lambda: None):
        super().__init__()
        self.action, self.others = action, others

    def on_batch_end(self, step, logs=None):
        if step == 3:
            (self.action if dist.rank() == 1 else self.others)()


def _fit(X, y, callbacks=()):
    model = build()
    return gw.fit(
        model,
        (X, y),
        loss="cross_entropy",
        optimizer=gw.optim.SGD(model.parameters(), lr=0.1),
        epochs=2,
        batch_size=B,
        seed=0,
        verbose=1,
        callbacks=list(callbacks),
        distributed=True,
    )


class _Sqrt(nn.Module):
    def forward(self, x):
        return gw.sqrt(x)


def nan_on_rank_1(out):
    """First an op makes a NaN on rank 1 (sqrt of a negative input: every rank stops, and
    the job goes on to the next run); then rank 1's inputs hold one (the job ends)."""
    X, y = data()
    shard = dist.DistributedSampler(len(X), seed=0).indices(0)
    X = np.abs(X)
    if dist.rank() == 1:
        X[shard[3 * B]] = -1.0  # batch 3 of epoch 0 on rank 1
    model = nn.Sequential(_Sqrt(), nn.Linear(6, 3, rng=0))
    op_made = None
    try:
        gw.fit(model, (X, y), loss="cross_entropy", epochs=1, batch_size=B, seed=0, verbose=0,
               optimizer=gw.optim.SGD(model.parameters(), lr=0.1), distributed=True)  # fmt: skip
    except dist.DistributedError as e:
        op_made = {"message": str(e), "findings": [f.to_dict() for f in e.history.findings]}
    if dist.rank() == 1:
        X[shard[3 * B]] = np.nan
    try:
        _fit(X, y)
    except dist.DistributedError as e:
        found = [(f.kind, f.evidence.get("rank")) for f in e.history.findings]
        if dist.is_main():
            Path(out).write_text(json.dumps({"findings": found, "op_made": op_made}))
        raise


def killed(out):
    _fit(*data(), callbacks=[_On(lambda: os.kill(os.getpid(), signal.SIGKILL))])


def hangs(out):
    """Rank 1 stops answering; rank 0's next collective waits 2 s at most (the timeout is
    cut only now, so a slow start on a busy machine does not count)."""
    _fit(*data(), callbacks=[_On(lambda: time.sleep(120), lambda: dist.init(timeout=2))])


def raises(out):
    def fail():
        raise ValueError("a bug on rank 1")

    _fit(*data(), callbacks=[_On(fail)])


class _Unused(nn.Module):
    """A model with a layer its forward never calls."""

    def __init__(self):
        super().__init__()
        self.used, self.unused = nn.Linear(6, 3, rng=0), nn.Linear(6, 3, rng=1)

    def forward(self, x):
        return self.used(x)


def unused_parameters(X, y):
    """fit averages what it has (the unused layer's gradient is zero); a hand-written
    loop is told at the next forward, on every rank."""
    model = _Unused()
    before = model.unused.weight.data.copy()
    gw.fit(
        model,
        (X[:32], y[:32]),
        loss="cross_entropy",
        epochs=1,
        batch_size=B,
        seed=0,
        optimizer=gw.optim.SGD(model.parameters(), lr=0.1),
        verbose=0,
        distributed=True,
    )
    fit_ok = np.array_equal(model.unused.weight.data, before)
    net = dist.DataParallel(_Unused())
    nn.CrossEntropyLoss()(net(gw.tensor(X[:B])), gw.tensor(y[:B])).backward()
    try:
        net(gw.tensor(X[:B]))
        told = ""
    except dist.DistributedError as e:
        told = str(e)
    net.reducer.finish()
    return {"fit_ok": fit_ok, "told": told}


def dead_units():
    """Unit 0 is silent on rank 0's examples only, unit 1 on every rank's: the job's
    doctor calls unit 1 dead, not unit 0 (the intersection over ranks)."""
    rng = np.random.default_rng(4)
    X = rng.normal(size=(512, 2)).astype(np.float32)
    X[:, 0] = np.abs(X[:, 0]) * (-1.0 if dist.rank() == 0 else 1.0)
    y = (X[:, 1] > 0).astype(np.int64)
    first = nn.Linear(2, 3, rng=0)
    first.weight.data[:] = [[1, 0], [0, 0], [0, 1]]
    first.bias.data[:] = [0, -1, 0]
    model = nn.Sequential(first, nn.ReLU(), nn.Linear(3, 2, rng=1))
    history = gw.fit(
        model, (X, y), loss="cross_entropy", optimizer=gw.optim.SGD(model.parameters(), lr=1e-6),
        epochs=2, batch_size=32, seed=0, verbose=0, distributed=True,
        doctor=gw.doctor.Doctor(sample_every=1),
    )  # fmt: skip
    return [w["dead_unit_indices"] for w in history.doctor.trace.activations["1"].windows]


class _Reversed(nn.Module):
    def __init__(self):
        super().__init__()
        self.last = nn.Linear(16, 3, rng=1)  # declared first, used last
        self.first = nn.Linear(6, 16, rng=0)

    def forward(self, x):
        return self.last(gw.relu(self.first(x)))


def overlap(X, y):
    """Buckets start while backward still runs: when backward reaches the first layer's
    output, the top layers' buckets (one parameter each) are on their way. And a
    compiled replay averages as eager backward does, bit for bit."""
    loss_fn = nn.CrossEntropyLoss()
    net = dist.DataParallel(build(), bucket_bytes=1)
    started = []

    def watch(module, inputs, out):
        out.register_hook(lambda g: started.append(net.reducer._next))

    net.module[0].register_forward_hook(watch)
    loss_fn(net(gw.tensor(X[:B])), gw.tensor(y[:B])).backward()
    # Layers declared in the reverse of their use: after the first step the buckets
    # follow the order the gradients came in, and start during backward again.
    net = dist.DataParallel(_Reversed(), bucket_bytes=1)
    net.module.first.register_forward_hook(watch)
    for _ in range(2):
        net.zero_grad()
        loss_fn(net(gw.tensor(X[:B])), gw.tensor(y[:B])).backward()
    runs = []
    for compiled in (False, True):
        net = dist.DataParallel(build())
        opt = gw.optim.Adam(net.parameters(), lr=0.01)
        step = gw.compile_step(net, loss_fn) if compiled else None
        for k in range(5):
            xb, yb = gw.tensor(X[k * B : (k + 1) * B] + dist.rank()), gw.tensor(y[:B])
            opt.zero_grad()
            if step is None:
                loss_fn(net(xb), yb).backward()
            else:
                step(xb, yb)
            opt.step()
        # parameters only: a replay runs the recorded ops, not DataParallel.forward, so
        # it does not start from rank 0's BatchNorm statistics (fit broadcasts them)
        runs.append(({n: p.data for n, p in net.named_parameters()}, step.replays if step else 0))
    (eager, _), (replayed, replays) = runs
    fitted = []
    for compile in (False, True):  # fit(compile=True) replays, averaging the same
        model = build()
        gw.fit(model, (X[:64] + dist.rank(), y[:64]), loss="cross_entropy", epochs=1,
               optimizer=gw.optim.SGD(model.parameters(), lr=0.1), batch_size=B, seed=0,
               verbose=0, doctor=False, compile=compile, distributed=True)  # fmt: skip
        fitted.append({n: p.data for n, p in model.named_parameters()})
    return {
        "fit_compiled_is_eager": all(np.array_equal(fitted[0][k], fitted[1][k]) for k in fitted[0]),
        "started_before_first_layer": started,
        "replays": replays,
        "compiled_is_eager": all(np.array_equal(eager[k], replayed[k]) for k in eager),
        "compiled_same_on_ranks": all(
            all(np.array_equal(a[k], replayed[k]) for k in a)
            for a in dist.all_gather_object(replayed)
        ),
    }


def doctor_case():
    """A run for the job's doctor: tanh units pinned or saturated, ReLU units dead:
    (X, y, model), the same on every rank."""
    rng = np.random.default_rng(6)
    X = rng.normal(size=(16 * 2 * B, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    first = nn.Linear(4, 6, rng=0)
    first.bias.data[:2] = 6.0  # two tanh units pinned near 1
    first.weight.data[2] *= 4.0  # one saturated on some examples
    second = nn.Linear(6, 5, rng=1)
    second.bias.data[:2] = -50.0  # two ReLU units that never fire
    model = nn.Sequential(first, nn.Tanh(), second, nn.ReLU(), nn.Linear(5, 2, rng=2))
    return X, y, model


def doctor_numbers(history):
    """What the doctor measured, as plain lists."""
    trace = history.doctor.trace
    acts = {path: a.to_dict() for path, a in trace.activations.items()}
    return {
        "loss": list(history.steps["loss"]),
        "signal": {k: list(v) for k, v in trace.signal.items()},
        "activations": {
            p: {
                k: a[k]
                for k in ("active_fraction", "silent_fraction", "saturated_fraction", "windows")
            }
            for p, a in acts.items()
        },
        "findings": sorted(f.kind for f in history.findings),
    }


def job_doctor(batch=B):
    X, y, model = doctor_case()
    history = gw.fit(
        model, (X, y), loss="cross_entropy", optimizer=gw.optim.SGD(model.parameters(), lr=1e-3),
        epochs=2, batch_size=batch, seed=0, verbose=0, distributed=True,
        doctor=gw.doctor.Doctor(sample_every=1),
    )  # fmt: skip
    return doctor_numbers(history)


def mismatch():
    """Rank 1 builds another model: every rank raises the same error, none hangs."""
    try:
        dist.DataParallel(build(width=16 if dist.rank() == 0 else 17))
    except dist.DistributedError as e:
        return {"collective": e.collective, "message": str(e)}
    return None


if __name__ == "__main__":
    scenario, out = sys.argv[1], sys.argv[2]
    dist.init(timeout=60)  # a hang fails fast; the test's own timeout is longer
    result = globals()[scenario](out)
    if dist.is_main() and result is not None:
        Path(out).write_text(json.dumps(result))
