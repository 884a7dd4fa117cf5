"""gradwell.distributed in one process: a world of one, the sampler, SyncBatchNorm's
arithmetic and the metric merge (the parts that need two ranks: test_multirank.py)."""

import numpy as np
import pytest

import gradwell as gw
from gradwell import distributed as dist
from gradwell.distributed import batchnorm as sync_bn
from gradwell.distributed import fit as dist_fit


def test_a_plain_process_is_a_world_of_one_and_collectives_return_their_input():
    dist.init()
    assert (dist.rank(), dist.world_size(), dist.is_main()) == (0, 1, True)
    a = np.arange(6.0).reshape(2, 3)
    for op in ("sum", "mean", "max", "min"):
        out = dist.all_reduce(a, op=op)
        np.testing.assert_array_equal(out, a)
        assert out is not a
    np.testing.assert_array_equal(dist.broadcast(a), a)
    assert dist.all_gather_object({"x": 1}) == [{"x": 1}]
    dist.barrier()
    with pytest.raises(ValueError, match="expected op to be one of sum, mean, max, min; got 'avg'"):
        dist.all_reduce(a, op="avg")
    with pytest.raises(ValueError, match="expected timeout > 0"):
        dist.init(timeout=0)


@pytest.mark.parametrize("n, world", [(10, 4), (12, 4), (3, 4), (7, 2)])
def test_sampler_shards_are_equal_disjoint_and_padded_from_the_start_as_in_pytorch(n, world):
    shards = [dist.DistributedSampler(n, world, r, seed=5).indices(2) for r in range(world)]
    per_rank = -(-n // world)
    assert all(len(s) == per_rank for s in shards)
    order = np.random.default_rng([5, 2]).permutation(n)
    padded = np.resize(order, per_rank * world)  # the permutation, then its start again
    np.testing.assert_array_equal(np.sort(np.concatenate(shards)), np.sort(padded))
    for r, s in enumerate(shards):
        np.testing.assert_array_equal(s, padded[r::world])


def test_sampler_drop_last_and_no_padding():
    dropped = [dist.DistributedSampler(10, 4, r, shuffle=False, drop_last=True) for r in range(4)]
    assert [list(s) for s in dropped] == [[0, 4], [1, 5], [2, 6], [3, 7]]
    unpadded = [dist.DistributedSampler(10, 4, r, shuffle=False, pad=False) for r in range(4)]
    assert [len(s) for s in unpadded] == [3, 3, 2, 2]
    assert sorted(i for s in unpadded for i in s) == list(range(10))


def test_sampler_reshuffles_each_epoch_reproducibly_and_checks_its_arguments():
    s = dist.DistributedSampler(50, 2, 1, seed=3)
    e0, e1 = s.indices(0), s.indices(1)
    assert not np.array_equal(e0, e1)
    s.set_epoch(1)
    np.testing.assert_array_equal(np.fromiter(s, int), e1)
    with pytest.raises(ValueError, match="expected 0 <= rank < num_replicas; got rank 2 of 2"):
        dist.DistributedSampler(10, 2, 2)
    with pytest.raises(TypeError, match="expected seed to be an int >= 0"):
        dist.DistributedSampler(10, 2, 0, seed=-1)


def test_per_rank_batches_together_are_the_one_process_batch_of_twice_the_size():
    X, y = np.arange(40.0).reshape(20, 2), np.arange(20)
    one = gw.data.DataLoader((X, y), batch_size=6, shuffle=True, seed=9)
    ranks = [
        gw.data.DataLoader((X, y), batch_size=3, sampler=dist.DistributedSampler(20, 2, r, seed=9))
        for r in range(2)
    ]
    for epoch in range(2):
        for loader in (one, *ranks):
            loader.set_epoch(epoch)
        for big, a, b in zip(one, *ranks):
            assert sorted(big[1].data.tolist()) == sorted(a[1].data.tolist() + b[1].data.tolist())
    assert len(ranks[0]) == 4 and len(one) == 4


def test_a_loader_with_a_sampler_saves_the_samplers_seed_and_rejects_shuffle():
    sampler = dist.DistributedSampler(8, 2, 0, seed=11)
    loader = gw.data.DataLoader(np.zeros((8, 1)), batch_size=2, sampler=sampler)
    assert loader.state_dict() == {"seed": 11, "epoch": 0}
    plain = gw.data.DataLoader(np.zeros((8, 1)), batch_size=2, shuffle=True, seed=1)
    plain.load_state_dict(loader.state_dict())
    assert plain.seed == 11
    loader.load_state_dict({"seed": 4, "epoch": 3})
    assert (sampler.seed, loader.epoch) == (4, 3)
    with pytest.raises(ValueError, match="pass shuffle=False with it"):
        gw.data.DataLoader(np.zeros((8, 1)), shuffle=True, sampler=sampler)


def _model():
    return gw.nn.Sequential(
        gw.nn.Linear(3, 8, rng=0),
        gw.nn.BatchNorm1d(8),
        gw.nn.ReLU(),
        gw.nn.Dropout(0.2, rng=1),
        gw.nn.Linear(8, 2, rng=2),
    )


def test_fit_distributed_in_one_process_is_plain_fit():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    runs = []
    for distributed in (False, True, {"sync_batchnorm": True}):
        model = _model()
        h = gw.fit(
            model,
            (X, y),
            loss="cross_entropy",
            epochs=2,
            batch_size=8,
            seed=0,
            optimizer=gw.optim.Adam(model.parameters(), lr=0.01),
            verbose=0,
            metrics=["accuracy"],
            validation=(X[:10], y[:10]),
            distributed=distributed,
        )
        runs.append((h.history["loss"], h.history["val_accuracy"], model.state_dict()))
    for loss, acc, state in runs[1:]:
        assert (loss, acc) == runs[0][:2]
        assert all(np.array_equal(a, b) for a, b in zip(state.values(), runs[0][2].values()))
    with pytest.raises(TypeError, match="unknown distributed option"):
        gw.fit(
            _model(),
            (X, y),
            loss="mse",
            optimizer=gw.optim.SGD(_model().parameters(), lr=1),
            epochs=1,
            distributed={"sync_bn": True},
        )
    with pytest.raises(ValueError, match=r"fit: distributed: expected compression None, 'bf16' "
                       r"or 'fp16' .*; got 'fp8'"):  # fmt: skip
        model = _model()
        opt = gw.optim.SGD(model.parameters(), lr=1)
        gw.fit(
            model, (X, y), loss="mse", optimizer=opt, epochs=1, distributed={"compression": "fp8"}
        )


def test_data_parallel_in_one_process_is_the_module_with_its_state_dict_keys():
    module = _model()
    net = dist.DataParallel(module)
    assert net.reducer is None
    assert list(net.state_dict()) == list(module.state_dict())
    x = gw.ones(4, 3)
    module.eval(), net.eval()
    np.testing.assert_array_equal(net(x).data, module(x).data)
    with pytest.raises(TypeError, match="expected a gw.nn.Module; got list"):
        dist.DataParallel([module])
    with pytest.raises(ValueError, match="DataParallel: expected compression None, 'bf16' or"):
        dist.DataParallel(module, compression="float16")


def test_sync_batchnorm_computes_batchnorm_when_the_other_ranks_add_nothing(monkeypatch):
    """Its composed arithmetic (sum over ranks, mean, variance, running statistics and the
    gradients through the sums) against the fused BatchNorm1d, with a world whose
    all-reduce sees this rank alone."""
    monkeypatch.setattr(sync_bn, "world_size", lambda: 2)
    monkeypatch.setattr(sync_bn, "all_reduce", lambda a: np.array(a, copy=True))
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, size=(16, 5))
    g = rng.normal(size=(16, 5))
    results = []
    for sync in (False, True):
        bn = gw.nn.BatchNorm1d(5, momentum=None, dtype=np.float64)
        bn.weight.data[:] = rng.normal(size=5) if not results else results[0][3]
        if sync:
            dist.convert_sync_batchnorm(bn)
            assert type(bn) is dist.SyncBatchNorm
        xt = gw.tensor(x, dtype=np.float64, requires_grad=True)
        for _ in range(2):  # the second step moves the running statistics by 1/2
            out = bn(xt)
        (out * gw.tensor(g, dtype=np.float64)).sum().backward()
        results.append(
            (
                out.data,
                xt.grad.data,
                bn.weight.grad.data,
                bn.weight.data.copy(),
                bn.running_mean.data.copy(),
                bn.running_var.data.copy(),
            )
        )
    for fused, composed in zip(*results):
        np.testing.assert_allclose(composed, fused, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("metric", ["accuracy", "mse", "rmse", "r2"])
def test_reduced_metrics_are_the_metric_over_every_ranks_examples(metric, monkeypatch):
    rng = np.random.default_rng(1)
    if metric == "accuracy":
        t, p = rng.integers(0, 3, size=30), rng.normal(size=(30, 3))
    else:
        t, p = rng.normal(size=(30, 2)), rng.normal(size=(30, 2))
    whole, ours, theirs = (gw.train.metrics.get(metric) for _ in range(3))
    for m in (whole, ours, theirs):
        m.reset()
    whole.update(t, p)
    ours.update(t[:13], p[:13])
    theirs.update(t[13:], p[13:])
    other = dist_fit.ReducedMetric(theirs)
    fields = ("hits", "count") if hasattr(theirs, "hits") else ("total", "count")
    monkeypatch.setattr(
        dist_fit,
        "all_gather_object",
        lambda obj: [obj, (theirs.n, theirs.mean, theirs.m2, theirs.res)],
    )
    monkeypatch.setattr(
        dist_fit,
        "all_reduce",
        lambda a: a + np.array([float(getattr(theirs, f, 0)) for f in fields]),
    )
    assert dist_fit.ReducedMetric(ours).result() == pytest.approx(whole.result(), rel=1e-12)
    assert other.name == metric
    with pytest.raises(TypeError, match="cannot reduce the metric"):
        dist_fit.ReducedMetric(object.__new__(gw.train.metrics.Metric))


def test_a_deep_copy_of_a_replica_does_not_feed_the_gradient_all_reduce():
    """The doctor replays a NaN batch on a deep copy of the model: its backward must not
    start collectives that the other ranks never join."""
    import copy

    model = gw.nn.Linear(3, 2, rng=0)
    reducer = dist.GradientReducer(list(model.parameters()))
    twin = copy.deepcopy(model)
    twin(gw.ones(4, 3)).sum().backward()
    assert not reducer.pending
    assert twin.weight.grad is not None
    reducer.remove()
    model(gw.ones(4, 3)).sum().backward()  # no hooks left: plain local gradients
    assert not reducer.pending and model.weight.grad is not None


def test_gradwell_train_ranks_says_what_to_install_when_mpi_is_missing(
    tmp_path, monkeypatch, capsys
):
    from gradwell.cli import main
    from gradwell.distributed import launch

    data = tmp_path / "d.csv"
    data.write_text("x,y\n" + "".join(f"{i},{i % 2}\n" for i in range(20)))
    monkeypatch.setattr(launch, "find_mpiexec", lambda: None)
    assert main(["train", str(data), "--target", "y", "--ranks", "2"]) == 2
    err = capsys.readouterr().err
    assert "gradwell train: --ranks 2: running on 2 ranks needs MPI" in err
    assert "pip install 'gradwell[distributed]'" in err
    assert main(["train", str(data), "--target", "y", "--ranks", "0"]) == 2
    assert "expected --ranks N with N >= 1, got 0" in capsys.readouterr().err
