"""The one atomic writer: whole or not at all."""

from __future__ import annotations

import pytest

from gradwell._atomic import atomic_file, atomic_write


def test_writes_text_and_bytes(tmp_path):
    atomic_write(tmp_path / "a.txt", "héllo")
    atomic_write(tmp_path / "b.bin", b"\x00\x01", durable=True)
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "héllo"
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"


def test_a_failure_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "report.html"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="crash"):
        with atomic_file(target) as f:
            f.write("half of the new")
            raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_a_folder_is_not_a_file(tmp_path):
    with pytest.raises(IsADirectoryError, match="folder"):
        atomic_write(tmp_path, "x")
