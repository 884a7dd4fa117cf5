"""Files on disk: whole or not at all, even under kill -9; no stale temporaries; the
user's permissions."""

from __future__ import annotations

import os
import random
import signal
import stat
import sys
import time

import pytest

import gradwell as gw
from gradwell._atomic import atomic_file, atomic_write, remove_stale_temporaries

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX locks and signals")


def temporaries(folder, name):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(f".{name}."))


@posix_only
def test_kill_9_during_save_never_corrupts_and_the_next_save_cleans_up(tmp_path):
    # A model large enough (about 4 MB) that many kills land in the middle of a write.
    model = gw.nn.Sequential(gw.nn.Linear(500, 1000, rng=0), gw.nn.Linear(1000, 500, rng=1))
    target = tmp_path / "run.safetensors"
    start = time.perf_counter()
    gw.save(target, model, epoch=-1)
    # Kills land between a fraction of one save and a few saves, however slow the machine is
    # (a fixed window never let a child finish one save on a loaded machine).
    one_save = time.perf_counter() - start
    rng = random.Random(0)
    epochs, left = set(), []
    for trial in range(24):
        pid = os.fork()
        if pid == 0:  # the child saves over and over until it is killed
            try:
                for epoch in range(10**6):
                    gw.save(target, model, epoch=trial * 10**6 + epoch)
            finally:
                os._exit(0)
        time.sleep(rng.uniform(0.2, 4.0) * one_save)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        epochs.add(gw.load(target, model)["epoch"])  # always a whole checkpoint
        left.append(len(temporaries(tmp_path, target.name)))
    assert len(epochs) > 1  # the children did write
    assert max(left) == 1, left  # each save removed the temporaries of the killed ones
    assert sum(left) >= 1, f"no kill landed during a write ({left}): use a larger model"
    gw.save(target, model, epoch=0)  # the next save of the same file removes them
    assert temporaries(tmp_path, target.name) == []
    assert gw.load(target, model)["epoch"] == 0


@posix_only
def test_a_live_writers_temporary_is_left_alone(tmp_path):
    target = tmp_path / "page.html"
    with atomic_file(target) as f:
        f.write("being written")
        (live,) = temporaries(tmp_path, target.name)
        assert remove_stale_temporaries(target) == []
        atomic_write(target, "another writer")  # a second writer meanwhile
        assert live in temporaries(tmp_path, target.name)
    assert target.read_text() == "being written"
    assert temporaries(tmp_path, target.name) == []


def test_other_files_that_look_alike_are_left_alone(tmp_path):
    target = tmp_path / "a.json"
    keep = [tmp_path / ".a.json.backup.tmp", tmp_path / ".a.json.tmp", tmp_path / "a.json.tmp"]
    for p in keep:
        p.write_text("mine")
    atomic_write(target, "{}")
    assert all(p.exists() for p in keep)


@posix_only
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_files_get_the_permissions_open_would_give(tmp_path, umask):
    old = os.umask(umask)
    try:
        written = [gw.save(tmp_path / "m.safetensors", gw.nn.Linear(2, 2))]
        atomic_write(tmp_path / "r.json", "{}")
        written.append(tmp_path / "r.json")
        with open(tmp_path / "plain", "w") as f:
            f.write("x")
    finally:
        os.umask(old)
    expected = stat.S_IMODE(os.stat(tmp_path / "plain").st_mode)
    assert expected == 0o666 & ~umask
    for path in written:
        assert stat.S_IMODE(os.stat(path).st_mode) == expected, path


@posix_only
def test_rewriting_a_file_keeps_its_mode(tmp_path):
    target = tmp_path / "shared.html"
    atomic_write(target, "one")
    os.chmod(target, 0o640)
    atomic_write(target, "two")
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640


def test_a_failed_save_leaves_the_old_file(tmp_path):
    target = tmp_path / "run.safetensors"
    model = gw.nn.Linear(2, 2)
    gw.save(target, model, note="old")
    with pytest.raises(TypeError):
        gw.save(target, model, note=object())
    assert gw.load(target, model)["note"] == "old"
    assert temporaries(tmp_path, target.name) == []
