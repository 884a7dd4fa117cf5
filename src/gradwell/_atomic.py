"""Writing files whole or not at all: every file gradwell writes goes through here.

A file is written to a temporary file beside it, ``.NAME.RANDOM.tmp``, then renamed
over it. A process killed while writing leaves that temporary behind; the next write
of the same file removes it. The writer holds a lock on its temporary (POSIX
``flock``, which the system releases when the process dies), so only the temporaries
of writers that no longer run are removed, never one a live process is writing.
Files get the permissions ``open()`` would give them: those of the file they
replace, or 0o666 less the umask for a new one.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

try:
    import fcntl
except ImportError:  # not POSIX: no locks, so stale temporaries are left alone
    fcntl = None  # type: ignore[assignment]


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str], mode: str = "w", *, durable: bool = False
                ) -> Iterator[IO[Any]]:  # fmt: skip
    """Open a temporary file beside ``path``; on a clean exit it replaces ``path``.

    If the block raises (or the process dies), ``path`` keeps its old content and the
    temporary file is removed (after a kill, by the next write of ``path``): a crash
    never leaves a truncated file. ``durable`` also fsyncs the file and its folder, so
    the rename survives a power cut.
    """
    target = Path(path).expanduser()
    if target.is_dir():
        raise IsADirectoryError(f"{target} is a folder; expected a file path")
    remove_stale_temporaries(target)
    fd, tmp = _new_temporary(target)
    try:  # fd holds the lock until the rename is done; the file object writes through a copy
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(os.dup(fd), mode, encoding=encoding) as f:
            yield f
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    finally:
        os.close(fd)
    if durable:
        _fsync_folder(target.parent)


_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)


def _temporary_pattern(target: Path) -> re.Pattern[str]:
    return re.compile(rf"\.{re.escape(target.name)}\.[a-z0-9_]{{8}}\.tmp")


def _new_temporary(target: Path) -> tuple[int, Path]:
    """Create and lock ``.NAME.RANDOM.tmp`` beside ``target``, with open()'s permissions."""
    try:
        keep_mode: int | None = stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        keep_mode = None
    while True:
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:  # 0o666: the system applies the umask, as for open()
            fd = os.open(tmp, _CREATE, 0o666)
        except FileExistsError:
            continue
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError:  # a file system without locks: nobody can take it for stale
                pass
            if os.fstat(fd).st_nlink == 0:  # a cleanup took it for stale before we locked it
                os.close(fd)
                continue
        if keep_mode is not None:
            os.chmod(tmp, keep_mode)
        return fd, tmp


def remove_stale_temporaries(target: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporaries that killed writers of ``target`` left; returns them.

    A temporary is stale when no process holds its lock. Without POSIX locks nothing
    is removed.
    """
    if fcntl is None:
        return []
    target = Path(target)
    pattern = _temporary_pattern(target)
    try:
        names = [n for n in os.listdir(target.parent) if pattern.fullmatch(n)]
    except OSError:
        return []
    removed = []
    for name in names:
        tmp = target.parent / name
        try:
            fd = os.open(tmp, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.unlink(tmp)
            removed.append(tmp)
        except OSError:  # locked by a live writer, already gone, or not ours to remove
            pass
        finally:
            os.close(fd)
    return removed


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some systems cannot open folders; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike[str], data: str | bytes, *, durable: bool = False) -> None:
    """Write ``data`` (text or bytes) to ``path`` whole or not at all."""
    with atomic_file(path, "wb" if isinstance(data, bytes) else "w", durable=durable) as f:
        f.write(data)
