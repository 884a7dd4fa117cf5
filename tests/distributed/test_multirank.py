"""Two ranks under mpiexec: the numbers of one process, checkpoints, and faults.

Each test launches ``mpiexec -n 2 python ranks.py SCENARIO`` with a hard timeout, so
a hang fails the test instead of hanging the suite. Skipped (with the reason) when
mpi4py or mpiexec is missing: ``pip install gradwell[distributed]``.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import gradwell as gw
from gradwell.distributed import DistributedError
from gradwell.distributed.launch import mpiexec_command

RANKS = Path(__file__).with_name("ranks.py")
TIMEOUT = 90  # seconds for one job; the jobs themselves take a few


def _mpiexec(ranks=2):
    try:
        return mpiexec_command(ranks)
    except DistributedError as e:
        pytest.skip(str(e))


def run(scenario, tmp_path, timeout=TIMEOUT):
    out = tmp_path / f"{scenario}.json"
    cmd = [*_mpiexec(), sys.executable, str(RANKS), scenario, str(out)]
    try:
        job = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=tmp_path)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"the 2-rank job {scenario!r} did not end within {timeout} s: {e.stderr}")
    result = json.loads(out.read_text()) if out.exists() else None
    return job, result


def test_two_ranks_give_the_weights_of_one_process_with_the_double_batch(tmp_path):
    """... after 20 steps of SGD and of Adam (BatchNorm synchronised, Dropout off), with
    averaged gradients bit for bit the same on both ranks; also gradient accumulation,
    Dropout masks per rank, and models that differ between ranks."""
    job, result = run("equivalence", tmp_path)
    assert job.returncode == 0, job.stderr
    for name in ("sgd", "adam"):
        r = result[name]
        assert r["steps"] == 20
        assert r["grads_identical"], f"{name}: averaged gradients differ between ranks"
        assert r["same_on_ranks"]
        # float32 round-off: the two sums run in another order (weights are O(1))
        assert max(r["diffs"].values()) < 2e-5, r["diffs"]
    assert result["accumulates"]
    for unused in result["unused"]:  # parameters a forward never used
        assert unused["fit_ok"]
        assert "left some parameters without a gradient" in unused["told"]
    assert result["per_rank_bn_same_state"]
    # a unit silent on rank 0's examples but not on rank 1's is alive for the job
    assert result["dead_units"] == [
        [[1], [1]],
        [[1], [1]],
    ]  # rank 0's running statistics everywhere
    _the_job_doctor_reads_the_numbers_of_one_process(result["job_doctor"])
    # ranks that built different models are told at start-up, all of them, and go on
    for told in result["mismatch"]:
        assert told["collective"]
        assert told["message"].startswith("the ranks built different models")
        assert (
            "parameter '0.weight': ((17, 6), 'float32') on rank 1, ((16, 6), 'float32') on rank 0"
            in told["message"]
        )
    # overlap: the 4 top parameters' buckets started before backward reached layer 0
    # (BatchNorm's 2 and the last Linear's 2); with the layers declared in reverse, none
    # at the first step, 2 once the buckets follow the gradients' order; a compiled
    # replay averages as eagerly
    assert result["overlap"]["started_before_first_layer"] == [4, 0, 2]
    assert result["overlap"]["replays"] == 3
    assert result["overlap"]["compiled_is_eager"] and result["overlap"]["compiled_same_on_ranks"]
    assert result["overlap"]["fit_compiled_is_eager"]
    assert result["dropout_differs_between_ranks"]
    assert result["dropout_reproducible"]


def _the_job_doctor_reads_the_numbers_of_one_process(job):
    """Every rank's doctor, after the merges, reads what one process with the double
    batch reads (to float32 round-off: the ranks sum in another order)."""
    from distributed.ranks import B, job_doctor

    assert job[0] == job[1]  # the same numbers, and so the same findings, on every rank
    one = job_doctor(batch=2 * B)
    two = job[0]
    np.testing.assert_allclose(two["loss"], one["loss"], rtol=1e-5)
    assert two["findings"] == one["findings"] and "dead_relu" in one["findings"]
    for layer, series in one["signal"].items():  # the RMS of each rank's own gradient
        np.testing.assert_allclose(np.array(two["signal"][layer]) / 2, series, rtol=1e-4)
    for path, ours in two["activations"].items():
        theirs = one["activations"][path]
        for k in ("active_fraction", "saturated_fraction"):
            np.testing.assert_allclose(ours[k], theirs[k], rtol=1e-6, atol=1e-6, err_msg=k)
        silent = np.array(ours["silent_fraction"])  # the least over ranks: a bound
        assert np.all(np.isnan(silent) | (silent >= np.array(theirs["silent_fraction"])))
        assert len(ours["windows"]) == len(theirs["windows"]) == 2
        for a, b in zip(ours["windows"], theirs["windows"]):
            for k in ("examples", "dead_unit_indices", "pinned_units", "end_step"):
                assert a[k] == b[k], (path, k)
            assert a["saturated_fraction"] == pytest.approx(b["saturated_fraction"], abs=1e-6)
    windows = [w for a in two["activations"].values() for w in a["windows"]]
    assert any(w["pinned_units"] for w in windows) and any(w["dead_units"] for w in windows)


def test_compressed_gradients_are_the_average_to_the_formats_round_off(tmp_path):
    """compression="bf16"/"fp16": within the format's round-off of the exact average,
    exactly representable in it, the same bits on both ranks, half the bytes; without
    compression the float32 average bit for bit (each rank's half, summed in float32)."""
    job, result = run("compression", tmp_path)
    assert job.returncode == 0, job.stderr
    own = [[np.array(g, np.float32) for g in grads] for grads in result["own"]]
    halves = [[g * np.float32(0.5) for g in grads] for grads in own]
    float32_sum = [a + b for a, b in zip(*halves)]
    for overlap in (True, False):
        default = result[f"None {overlap}"]
        assert default["same_on_ranks"]
        for got, want in zip(default["grads"], float32_sum):
            assert np.array_equal(np.array(got, np.float32), want)
        # unit round-off, and fp16's spacing of its subnormals
        formats = (("bf16", 2**-8, 0.0, None), ("fp16", 2**-11, 2**-24, np.float16))
        for fmt, unit, tiny, dtype in formats:
            r = result[f"{fmt} {overlap}"]
            assert r["same_on_ranks"], fmt
            assert r["sent"] * 2 == default["sent"]
            changed = False
            for got, a, b, want in zip(r["grads"], *own, float32_sum):
                got = np.array(got, np.float32)
                exact = (a.astype(np.float64) + b) / 2
                # each half rounded once, their sum once more
                bound = 2.01 * unit * (np.abs(a) + np.abs(b)) / 2 + tiny
                assert np.all(np.abs(got - exact) <= bound), fmt
                if dtype is None:  # bfloat16: the upper 16 bits of a float32
                    assert not np.any(got.view(np.uint32) & 0xFFFF), fmt
                else:
                    assert np.array_equal(got.astype(dtype).astype(np.float32), got), fmt
                changed |= not np.array_equal(got, want)
            assert changed, f"{fmt}: no gradient differs from the float32 average"
    fit = result["fit"]
    assert fit["same_on_ranks"]
    assert 0 < max(fit["diffs"]) < 0.05, fit["diffs"]


def test_a_run_checkpointed_at_2_ranks_resumes_at_2_and_at_1(tmp_path):
    from distributed.ranks import B, build, data

    job, result = run("fit_and_resume", tmp_path)
    assert job.returncode == 0, job.stderr
    assert result["logs_same_on_ranks"]
    assert result["saved_by_rank"] == [2, 0]  # rank 0 writes, rank 1 does not
    assert result["resumed_at_2_equal"]
    assert result["doctor_sampled"] > 0 and result["doctor_grad_norms_same_on_ranks"]

    # At 1 rank: epoch 2 from the first checkpoint with batch 2B is the 2-rank epoch 2.
    X, y = data(seed=1)
    Xv, yv = data(n=37, seed=2)
    model = build(seed=5)
    opt = gw.optim.Adam(model.parameters(), lr=0.01)
    gw.load(tmp_path / "ckpt-1.safetensors", model, opt)
    history = gw.fit(
        model,
        (X, y),
        loss="cross_entropy",
        optimizer=opt,
        epochs=2,
        batch_size=2 * B,
        initial_epoch=1,
        seed=3,
        verbose=0,
        metrics=["accuracy"],
        validation=(Xv, yv),
        distributed=True,
    )
    two = build(seed=7)
    gw.load(tmp_path / "ckpt-2.safetensors", two)
    for (name, a), b in zip(model.state_dict().items(), two.state_dict().values()):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=2e-5, err_msg=name)
    # the logs of 2 ranks are over every example, as at 1 rank
    logs = result["history"]
    assert logs["val_accuracy"][-1] == history["val_accuracy"][-1]
    assert logs["val_loss"][-1] == pytest.approx(history["val_loss"][-1], rel=1e-4)
    assert logs["loss"][-1] == pytest.approx(history["loss"][-1], rel=1e-4)
    assert logs["accuracy"][-1] == history["accuracy"][-1]


def test_a_nan_on_rank_1_stops_every_rank_with_the_doctors_finding_and_the_rank(tmp_path):
    job, result = run("nan_on_rank_1", tmp_path)
    assert job.returncode != 0
    # an op made it (sqrt of -1 on rank 1): every rank stopped, told the rank and the op
    made = result["op_made"]
    assert made["message"].startswith("training stopped on all 2 ranks at epoch 0, batch 3")
    assert "non-finite loss on rank 1. rank 1: [critical] nan_trap" in made["message"]
    assert "the first op to make inf or NaN from finite values was 'sqrt'" in made["message"]
    assert [(f["kind"], f["evidence"]["rank"]) for f in made["findings"]] == [("nan_trap", 1)]
    # then the inputs held one
    assert ["nan_trap", 1] in result["findings"]  # rank 1's finding, in rank 0's history
    err = job.stderr
    assert "training stopped on all 2 ranks at epoch 0, batch 3" in err
    assert "non-finite loss on rank 1" in err
    assert "nan_trap" in err and "inputs hold inf or NaN" in err  # the doctor, on rank 1
    assert err.count("DistributedError") == 1  # printed once, by rank 0
    assert job.stdout.count("Epoch 1/2 - ") == 1  # the progress line, by rank 0 alone


def test_a_rank_killed_mid_epoch_ends_the_job(tmp_path):
    job, _ = run("killed", tmp_path, timeout=60)
    assert job.returncode != 0
    assert "rank 1" in job.stderr + job.stdout


def test_a_rank_that_hangs_makes_the_others_abort_after_the_timeout(tmp_path):
    job, _ = run("hangs", tmp_path, timeout=60)
    assert job.returncode != 0
    assert "rank 0/2: all_reduce waited 2 s for the other ranks" in job.stderr


def test_a_rank_that_raises_aborts_every_rank_with_its_error(tmp_path):
    job, _ = run("raises", tmp_path, timeout=60)
    assert job.returncode != 0
    assert "rank 1/2: raised ValueError; aborting all 2 ranks" in job.stderr
    assert "a bug on rank 1" in job.stderr


def tiny_csv(path, n=96):
    rng = np.random.default_rng(0)
    rows = ["a,b,colour,label"]
    for _ in range(n):
        a, b = rng.normal(size=2)
        colour = rng.choice(["red", "blue"])
        rows.append(f"{a:.3f},{b:.3f},{colour},{'yes' if a + (colour == 'red') > 0.5 else 'no'}")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_gradwell_train_ranks_2_starts_mpiexec_itself(tmp_path):
    _mpiexec()  # skips without MPI
    data, out = tiny_csv(tmp_path / "tiny.csv"), tmp_path / "run"
    cmd = [sys.executable, "-m", "gradwell", "train", str(data), "--target", "label", "--ranks",
           "2", "--epochs", "2", "--batch-size", "8", "--quiet", "--out", str(out)]  # fmt: skip
    job = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, cwd=tmp_path)
    assert job.returncode == 0, job.stderr
    assert job.stdout.startswith("gradwell train: starting 2 ranks with mpiexec")
    assert job.stdout.count("tiny.csv: 96 rows;") == 1 and job.stdout.count("verdict:") == 1
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_run"] == 2 and 0 <= metrics["test_accuracy"] <= 1
    assert (out / "model.safetensors").exists() and (out / "report.html").exists()
    assert "ranks" not in json.loads((out / "config.json").read_text())  # how, not what
