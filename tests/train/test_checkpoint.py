"""Checkpoints: round trip, atomic writes, no pickle, and bit-for-bit resumption."""

import json
import os
import pickle
import struct

import numpy as np
import pytest

import gradwell as gw
import gradwell.preprocessing as pp
from gradwell.train import checkpoint
from gradwell.train.callbacks import LearningRateScheduler, ModelCheckpoint


def _trained(make_model, blobs, epochs=2):
    X, y = blobs
    model = make_model(batchnorm=True, dropout=0.2)
    opt = gw.optim.Adam(model.parameters(), lr=0.01)
    sched = gw.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    gw.fit(
        model,
        (X, y),
        loss=gw.nn.CrossEntropyLoss(),
        optimizer=opt,
        epochs=epochs,
        callbacks=[LearningRateScheduler(sched)],
        seed=0,
        verbose=0,
    )
    return model, opt, sched


def _assert_equal_nested(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _assert_equal_nested(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b)
        for u, v in zip(a, b):
            _assert_equal_nested(u, v)
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    else:
        assert type(a) is type(b) and a == b


def test_round_trip_restores_model_optimizer_scheduler_scaler_rng_and_metadata(
    make_model, blobs, tmp_path
):
    model, opt, sched = _trained(make_model, blobs)
    scaler = pp.ZScoreScaler().fit(blobs[0])
    path = gw.save(
        tmp_path / "ckpt.safetensors",
        model,
        opt,
        sched,
        scaler,
        epoch=2,
        val_loss=np.float32(0.25),
        note="hello",
        tags=("a", "b"),
    )

    model2 = make_model(seed=5, batchnorm=True, dropout=0.2)
    opt2 = gw.optim.Adam(model2.parameters(), lr=0.5)
    sched2 = gw.optim.lr_scheduler.StepLR(opt2, step_size=1, gamma=0.5)
    meta = gw.load(path, model2, opt2, sched2)

    _assert_equal_nested(dict(model.state_dict()), dict(model2.state_dict()))
    _assert_equal_nested(opt.state_dict(), opt2.state_dict())
    _assert_equal_nested(sched.state_dict(), sched2.state_dict())
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"] == 0.0025
    assert meta["epoch"] == 2 and meta["note"] == "hello" and meta["tags"] == ["a", "b"]
    assert meta["val_loss"] == pytest.approx(0.25)
    assert np.array_equal(meta["scaler"].transform(blobs[0]), scaler.transform(blobs[0]))
    # Dropout's generator continues where the saved one was
    assert model2[3].rng.random() == model[3].rng.random()


def test_file_is_plain_safetensors_with_a_json_header(make_model, blobs, tmp_path):
    model, opt, _ = _trained(make_model, blobs, epochs=1)
    path = gw.save(tmp_path / "c.safetensors", model, opt)
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    config = json.loads(header["__metadata__"]["gradwell"])
    assert config["format"] == "gradwell.checkpoint" and config["version"] == 1
    assert header["model.0.weight"]["dtype"] == "F32" and header["model.0.weight"]["shape"] == [
        16,
        2,
    ]
    assert any(k.startswith("optimizer.") for k in header)


def test_loading_never_unpickles(make_model, blobs, tmp_path, monkeypatch):
    model, opt, sched = _trained(make_model, blobs, epochs=1)
    path = gw.save(tmp_path / "c.safetensors", model, opt, sched)

    def forbidden(*args, **kwargs):
        raise AssertionError("pickle used while loading a checkpoint")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, forbidden)
    gw.load(path, make_model(seed=3, batchnorm=True, dropout=0.2), opt, sched)


@pytest.mark.parametrize("crash", ["during_write", "before_rename"])
def test_a_crash_while_saving_leaves_the_old_checkpoint_intact(
    make_model, blobs, tmp_path, monkeypatch, crash
):
    model, opt, _ = _trained(make_model, blobs, epochs=1)
    path = gw.save(tmp_path / "c.safetensors", model, opt, epoch=1)
    before = path.read_bytes()
    model[0].weight.data += 1.0  # the model changes; a new save is attempted

    if crash == "during_write":
        real_fdopen = os.fdopen

        class HalfWriter:
            def __init__(self, f):
                self.f = f

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.f.close()

            def write(self, data):
                self.f.write(data[: len(data) // 2])
                raise OSError("disk full")

        monkeypatch.setattr(
            checkpoint.os, "fdopen", lambda fd, mode, **kw: HalfWriter(real_fdopen(fd, mode, **kw))
        )
    else:

        def failing_replace(src, dst):
            raise OSError("power cut")

        monkeypatch.setattr(checkpoint.os, "replace", failing_replace)

    with pytest.raises(OSError):
        gw.save(path, model, opt, epoch=2)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.safetensors"]  # no temp file left
    assert gw.load(path, make_model(batchnorm=True, dropout=0.2))["epoch"] == 1


def test_load_errors_are_clear(make_model, blobs, tmp_path):
    model, opt, _ = _trained(make_model, blobs, epochs=1)
    path = gw.save(tmp_path / "c.safetensors", model)
    with pytest.raises(checkpoint.CheckpointError, match="holds no optimizer state"):
        gw.load(path, model, opt)
    with pytest.raises(RuntimeError, match="missing keys|unexpected keys"):
        gw.load(path, make_model())  # no BatchNorm: different keys
    with pytest.raises(FileNotFoundError, match="no checkpoint file"):
        gw.load(tmp_path / "nope.safetensors", model)
    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(checkpoint.CheckpointError, match="not a readable safetensors file"):
        gw.load(tmp_path / "junk.safetensors", model)
    with pytest.raises(TypeError, match="metadata 'when' is a object"):
        gw.save(tmp_path / "d.safetensors", model, when=object())
    assert not (tmp_path / "d.safetensors").exists()
    # the order of torch.save(obj, path), the other way round from gw.save(path, model)
    for fn in (gw.save, gw.load):
        with pytest.raises(TypeError, match=r"path first, then the model .* swap them"):
            fn(model, tmp_path / "e.safetensors")
    with pytest.raises(TypeError, match="expected a model .* got OrderedDict"):
        gw.save(tmp_path / "e.safetensors", model.state_dict())
    assert not (tmp_path / "e.safetensors").exists()


def _run(make_model, blobs, epochs, initial_epoch=0, resume_from=None, ckpt_dir=None):
    """Train with shuffling, Dropout, BatchNorm, Adam and a step schedule; optionally resume."""
    X, y = blobs
    model = make_model(seed=0 if resume_from is None else 123, batchnorm=True, dropout=0.3)
    opt = gw.optim.Adam(model.parameters(), lr=0.02)
    sched = gw.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    if resume_from is not None:
        meta = gw.load(resume_from, model, opt, sched)
        assert meta["epoch"] == initial_epoch
    callbacks = [LearningRateScheduler(sched)]
    if ckpt_dir is not None:
        callbacks.append(ModelCheckpoint(ckpt_dir / "epoch-{epoch}.safetensors"))
    h = gw.fit(
        model,
        (X, y),
        loss=gw.nn.CrossEntropyLoss(),
        optimizer=opt,
        epochs=epochs,
        initial_epoch=initial_epoch,
        batch_size=16,
        callbacks=callbacks,
        seed=7,
        verbose=0,
    )
    return model, opt, h


def test_resumed_run_continues_bit_for_bit(make_model, blobs, tmp_path):
    full_model, full_opt, full = _run(make_model, blobs, epochs=5, ckpt_dir=tmp_path)
    resumed_model, resumed_opt, resumed = _run(
        make_model, blobs, epochs=5, initial_epoch=3, resume_from=tmp_path / "epoch-3.safetensors"
    )
    steps = len(full.steps["loss"]) // 5
    assert resumed.epoch == [3, 4]
    assert resumed.steps["loss"] == full.steps["loss"][3 * steps :]
    assert resumed.steps["lr"] == full.steps["lr"][3 * steps :]
    assert resumed["loss"] == full["loss"][3:]
    _assert_equal_nested(dict(full_model.state_dict()), dict(resumed_model.state_dict()))
    _assert_equal_nested(full_opt.state_dict(), resumed_opt.state_dict())


def test_loader_state_is_saved_and_restored(make_model, blobs, tmp_path):
    X, y = blobs
    loader = gw.data.DataLoader((X, y), batch_size=16, shuffle=True)  # unseeded
    list(loader)
    model = make_model()
    gw.save(tmp_path / "c.safetensors", model, loader=loader)
    other = gw.data.DataLoader((X, y), batch_size=16, shuffle=True)
    gw.load(tmp_path / "c.safetensors", model, loader=other)
    assert [b.data.tolist() for _, b in other] == [b.data.tolist() for _, b in loader]
