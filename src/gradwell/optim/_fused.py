"""Fused update kernels: one pass over memory per parameter, compiled by numba.

Every optimizer states its update twice, side by side in its own file: as a
sequence of in-place numpy operations (always available) and as an elementwise
loop that numba compiles into a single pass. The loop is the fast path, used
whenever numba can be imported: for Adam it measured about 4x faster than the
numpy sequence both on the ten small arrays of a 2-8-8-2 MLP with BatchNorm,
where per-call overhead rules, and on 1024x1024 matrices, where memory traffic
does (SGD with momentum: about 2x); see ``benchmarks/optim_step.py``. numba is
imported, and each loop compiled, on the first ``step()`` that needs it, so
importing gradwell stays fast; compiled code is cached on disk.

Set the environment variable ``GRADWELL_DISABLE_NUMBA=1`` (or call
:func:`set_enabled`) to run the numpy formulation instead.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

_enabled = os.environ.get("GRADWELL_DISABLE_NUMBA", "") in ("", "0")
_numba: Any = None  # the numba module once imported; False when it cannot be


def set_enabled(enabled: bool) -> bool:
    """Use the numba kernels (True) or the numpy formulation (False); returns the old setting."""
    global _enabled
    previous = _enabled
    _enabled = bool(enabled)
    return previous


def available() -> bool:
    """Whether the fused kernels run: enabled and numba importable."""
    return _enabled and _import_numba() is not False


def _import_numba() -> Any:
    global _numba
    if _numba is None:
        try:
            import numba

            _numba = numba
        except ImportError:
            _numba = False
    return _numba


# Arrays at least this long are updated by all cores: below it, waking the threads
# costs more than the loop (a 2-8-8-2 MLP's parameters stay on one core).
PARALLEL_MIN_SIZE = 1 << 16


def prange(*args: int) -> range:
    """``range`` in Python; the kernels' loops become numba.prange when compiled."""
    return range(*args)


class Kernel:
    """An elementwise loop over flat arrays, compiled by numba on first use.

    ``get()`` returns a function with the loop's signature that runs the compiled
    loop -- on one core for small arrays, split over all cores for large ones --
    or None when the kernels are disabled or numba is missing (the caller then
    runs its numpy formulation). Both compilations run the same per-element
    arithmetic, so results do not depend on the split. The loops index 1-D
    contiguous arrays without bounds checks, so callers pass flat views of
    arrays whose sizes they have checked.
    """

    __slots__ = ("_loop", "_serial", "_parallel", "_run")

    def __init__(self, loop: Callable[..., None]) -> None:
        self._loop = loop
        self._serial: Callable[..., None] | None = None
        self._parallel: Callable[..., None] | None = None
        self._run: Callable[..., None] | None = None

    def _compile(self, parallel: bool) -> Callable[..., None]:
        numba = _import_numba()
        self._loop.__globals__["prange"] = numba.prange
        # error_model="numpy": division by zero gives inf/nan as numpy does, and
        # without the Python-style check the loop vectorises.
        return numba.njit(cache=True, nogil=True, error_model="numpy", parallel=parallel)(
            self._loop
        )

    def get(self) -> Callable[..., None] | None:
        if not _enabled:
            return None
        if self._run is None:
            if _import_numba() is False:
                return None
            self._serial = serial = self._compile(parallel=False)

            def run(p: Any, *args: Any) -> None:
                if p.size < PARALLEL_MIN_SIZE:
                    serial(p, *args)
                    return
                if self._parallel is None:
                    self._parallel = self._compile(parallel=True)
                self._parallel(p, *args)

            self._run = run
        return self._run
