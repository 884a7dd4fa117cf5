"""numba, the one compiler of gradwell's loops: a required dependency, imported here only.

Every compiled loop -- the fused layers' kernels (``nn/kernels.py``), the optimizers'
update rules, the doctor's passes over sampled steps (``doctor/kernels.py``) -- is
decorated with one of these, so all follow one policy: compiled on first call and
cached on disk, without the GIL, and with numpy's floating-point error model
(division by zero gives inf or nan, as numpy does, and without Python's checks the
loops vectorise). There is no pure-numpy fallback: each rule is written once, as a
loop, and tested against an independent formula (``tests/optim/test_update_rules.py``).
"""

from __future__ import annotations

from typing import Any

import numba

jit: Any = numba.njit(cache=True, nogil=True, error_model="numpy")

# Helpers that take the caller's work arrays are inlined into it: compiled apart, they
# could not know that those arrays never overlap the data, and would not vectorise.
inline: Any = numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")

# Sums whose order does not matter (statistics of the doctor): reassociated, so that the
# loop vectorises; inf and NaN still come out.
reassociating: Any = numba.njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc"})
