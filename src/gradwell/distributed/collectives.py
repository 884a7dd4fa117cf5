"""Collectives on numpy arrays: all_reduce, broadcast, barrier, and object gathering.

MPI's blocking collectives have no timeout: a rank that hangs (or died unnoticed)
would hold the others forever. So every collective here runs under a deadline kept
by one watchdog thread: when a call has waited longer than ``init(timeout=...)``,
the watchdog aborts the job with a message naming the call. The calls themselves
stay MPI's fast blocking ones (a few microseconds on one machine). In a world of
one process every call returns its input.
"""

from __future__ import annotations

import contextlib
import pickle
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from .world import _world, abort, world_size

_OPS = ("sum", "mean", "max", "min")


class _Watchdog:
    """Aborts the job when the collective under way has waited past its deadline."""

    def __init__(self) -> None:
        self.deadline = 0.0  # 0: no collective under way
        self.what = ""
        self.thread: threading.Thread | None = None

    def _watch(self) -> None:
        while True:
            time.sleep(min(1.0, _world.timeout / 4))
            deadline = self.deadline
            if deadline and time.monotonic() > deadline:
                abort(
                    f"{self.what} waited {_world.timeout:g} s for the other ranks; one of them "
                    "has stopped (it died, hangs or raised). Aborting the job."
                )

    @contextlib.contextmanager
    def guard(self, what: str) -> Iterator[None]:
        if self.thread is None:
            self.thread = threading.Thread(
                target=self._watch, name="gradwell-watchdog", daemon=True
            )
            self.thread.start()
        self.what = what
        self.deadline = time.monotonic() + _world.timeout
        try:
            yield
        finally:
            self.deadline = 0.0


_watchdog = _Watchdog()


def wait(requests: list[Any], what: str) -> None:
    """Wait for non-blocking MPI requests, under the job's timeout."""
    if requests:
        with _watchdog.guard(what):
            _world.MPI.Request.Waitall(requests)


def _check_op(op: str, who: str) -> None:
    if op not in _OPS:
        raise ValueError(f"{who}: expected op to be one of {', '.join(_OPS)}; got {op!r}")


def all_reduce(array: Any, op: str = "sum") -> np.ndarray:
    """The element-wise ``op`` ("sum", "mean", "max" or "min") of ``array`` over all ranks.

    Every rank passes an array of the same shape and dtype and gets the result (a new
    array; the input is left as it is). "mean" is the sum divided by the number of ranks.

    >>> import numpy as np, gradwell as gw
    >>> gw.distributed.all_reduce(np.array([1.0, 2.0]), op="mean")  # one process
    array([1., 2.])
    """
    _check_op(op, "all_reduce")
    out = np.array(getattr(array, "data", array), copy=True, order="C")
    if world_size() == 1:
        return out
    MPI = _world.MPI
    mpi_op = {"sum": MPI.SUM, "mean": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}[op]
    with _watchdog.guard("all_reduce"):
        _world.comm.Allreduce(MPI.IN_PLACE, out, mpi_op)
    return out / _world.size if op == "mean" else out


def broadcast(array: Any, root: int = 0) -> np.ndarray:
    """Rank ``root``'s ``array`` on every rank (each passes an array of the same shape/dtype).

    >>> import numpy as np, gradwell as gw
    >>> gw.distributed.broadcast(np.arange(3))
    array([0, 1, 2])
    """
    out = np.array(getattr(array, "data", array), copy=True, order="C")
    if world_size() == 1:
        return out
    if not 0 <= root < _world.size:
        raise ValueError(f"broadcast: root must be a rank in 0..{_world.size - 1}; got {root!r}")
    with _watchdog.guard(f"broadcast from rank {root}"):
        _world.comm.Bcast(out, root=root)
    return out


def barrier() -> None:
    """Wait until every rank has reached this point."""
    if world_size() > 1:
        with _watchdog.guard("barrier"):
            _world.comm.Barrier()


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's ``obj`` (small, picklable), in rank order, on every rank.

    The sizes travel first, then the pickled bytes.
    """
    if world_size() == 1:
        return [obj]
    data = np.frombuffer(pickle.dumps(obj), dtype=np.uint8)
    sizes = np.zeros(_world.size, dtype=np.int64)
    sizes[_world.rank] = data.size
    sizes = all_reduce(sizes)
    buf = np.zeros(int(sizes.sum()), dtype=np.uint8)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    with _watchdog.guard("all_gather_object"):
        _world.comm.Allgatherv(data, [buf, (sizes.tolist(), offsets.tolist()), _world.MPI.BYTE])
    return [pickle.loads(buf[o : o + s].tobytes()) for o, s in zip(offsets, sizes)]


__all__ = ["all_gather_object", "all_reduce", "barrier", "broadcast", "wait"]
