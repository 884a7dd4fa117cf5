"""Data parallelism: one replica of the model per rank, kept identical step by step."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..nn.module import Module
from ..train.checkpoint import _generators
from .batchnorm import convert_sync_batchnorm
from .collectives import all_gather_object, broadcast
from .compression import check as check_compression
from .reducer import DEFAULT_BUCKET_BYTES, GradientReducer
from .world import DistributedError, init, rank, world_size


def _layout(model: Any) -> list[tuple[str, tuple[int, ...], str]]:
    state = [("parameter", n, t) for n, t in model.named_parameters()]
    state += [("buffer", n, t) for n, t in model.named_buffers() if t is not None]
    return [(f"{kind} {name!r}", tuple(t.data.shape), str(t.data.dtype)) for kind, name, t in state]


def check_same_model(model: Any) -> None:
    """Raise on every rank if some rank's parameters or buffers differ from rank 0's
    in name, shape or dtype (a rank that built another model would otherwise hang
    or silently corrupt the all-reduce)."""
    layouts = all_gather_object(_layout(model))
    problems = []
    for r, layout in enumerate(layouts[1:], start=1):
        if layout == layouts[0]:
            continue
        ours, theirs = dict((k, v) for k, *v in layouts[0]), dict((k, v) for k, *v in layout)
        diff = [
            f"{k}: {tuple(theirs[k]) if k in theirs else 'missing'} on rank {r}, "
            f"{tuple(ours[k]) if k in ours else 'missing'} on rank 0"
            for k in list(ours) + [k for k in theirs if k not in ours]
            if ours.get(k) != theirs.get(k)
        ]
        problems.append(f"rank {r}: " + "; ".join(diff[:4]) + (" ..." if len(diff) > 4 else ""))
    if problems:
        raise DistributedError(
            "the ranks built different models (every rank must build the same one, with "
            "the same shapes): " + " | ".join(problems),
            collective=True,
        )


def _broadcast(tensors: Any) -> None:
    """Rank 0's values of ``tensors`` everywhere (in place: optimizers keep their arrays),
    one broadcast per dtype: each collective costs a round trip however small it is."""
    by_dtype: dict[Any, list[Any]] = {}
    for t in tensors:
        if t is not None:
            by_dtype.setdefault(t.data.dtype, []).append(t)
    for group in by_dtype.values():
        flat = broadcast(np.concatenate([t.data.reshape(-1) for t in group]))
        start = 0
        for t in group:
            t.data[...] = flat[start : start + t.data.size].reshape(t.data.shape)
            start += t.data.size


def broadcast_buffers(model: Any) -> None:
    """Rank 0's buffers (BatchNorm's running statistics) on every rank. With BatchNorm
    per rank each rank's statistics drift apart; as PyTorch's DDP, rank 0's count."""
    if world_size() > 1:
        _broadcast(model.buffers())


def _reseed_generators(model: Any) -> None:
    """Give each rank its own random stream for every Generator a module holds (Dropout):
    rank 0 draws one number per Generator and every rank seeds ``(number, rank)``, so
    masks differ between ranks yet are reproducible from the model's seeds and the rank."""
    gens = _generators(model)
    drawn = np.array([g.integers(2**63) for g in gens.values()], dtype=np.int64)
    drawn = broadcast(drawn)
    for (path, _), seed in zip(gens.items(), drawn.tolist()):
        module_path, _, attr = path.rpartition(".")
        module = dict(model.named_modules())[module_path]
        setattr(module, attr, np.random.default_rng([seed, rank()]))


def replicate(
    model: Any,
    *,
    sync_batchnorm: bool = False,
    bucket_bytes: int = DEFAULT_BUCKET_BYTES,
    overlap: bool = True,
    compression: str | None = None,
) -> GradientReducer | None:
    """Make ``model`` one replica of a data-parallel job, in place.

    Checks that every rank built the same model, copies rank 0's parameters and
    buffers to every rank, gives each rank its own Dropout stream, optionally makes
    BatchNorm synchronised, and returns the :class:`GradientReducer` that averages
    gradients from now on (None in a single process, where nothing changes).
    """
    init()
    if not isinstance(sync_batchnorm, bool):
        raise TypeError(
            f"DataParallel: expected sync_batchnorm True or False; got {sync_batchnorm!r}"
        )
    check_compression(compression)
    if world_size() == 1:
        return None
    check_same_model(model)
    _broadcast([*model.parameters(), *model.buffers()])
    _reseed_generators(model)
    if sync_batchnorm:
        convert_sync_batchnorm(model)
    return GradientReducer(list(model.parameters()), bucket_bytes, overlap, compression)


class DataParallel(Module):
    """``module`` trained by every rank on its own share of each batch, as one model.

    At creation it checks that every rank built the same model and copies rank 0's
    weights to all. From then on each ``backward()`` ends with the gradients averaged
    over the ranks (in buckets, all-reduced from the gradient hooks while backward
    still runs; ``overlap=False``: blocking, see :class:`GradientReducer`), so an
    optimizer stepping on each rank keeps the replicas identical.
    ``compression="bf16"`` (or ``"fp16"``) all-reduces the gradients rounded to that
    16-bit format, as DDP's ``bf16_compress_hook``: half the bytes, and every gradient
    off by the format's round-off (the same on every rank; off by default).
    BatchNorm normalises each rank's batch (as PyTorch's DDP) unless
    ``sync_batchnorm=True`` (statistics of all ranks' batches together). Dropout
    masks differ between ranks, reproducibly. Each training forward starts from rank 0's
    buffers (as DDP's ``broadcast_buffers``). ``state_dict`` is the wrapped module's,
    so checkpoints load with or without DataParallel, at any number of ranks.
    In a single process it is just ``module``. Through ``gw.compile_step`` a replay
    averages the gradients all the same, but runs the recorded ops, not this forward:
    call :func:`broadcast_buffers` yourself for rank 0's statistics (``fit`` does).

    >>> import gradwell as gw
    >>> net = gw.distributed.DataParallel(gw.nn.Linear(3, 2, rng=0))
    >>> opt = gw.optim.SGD(net.parameters(), lr=0.1)
    >>> loss = net(gw.ones(4, 3)).sum()
    >>> loss.backward()   # gradients averaged over all ranks here
    >>> opt.step()
    """

    def __init__(
        self,
        module: Any,
        *,
        sync_batchnorm: bool = False,
        bucket_bytes: int = DEFAULT_BUCKET_BYTES,
        overlap: bool = True,
        compression: str | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DataParallel: expected a gw.nn.Module; got {type(module).__name__}")
        self.module = module
        self.reducer = replicate(
            module,
            sync_batchnorm=sync_batchnorm,
            bucket_bytes=bucket_bytes,
            overlap=overlap,
            compression=compression,
        )

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self.reducer is not None:
            if self.reducer.pending:
                raise DistributedError(
                    "DataParallel: the previous backward left some parameters without a "
                    "gradient (the model did not use them), so their average was never taken. "
                    "Call model.reducer.finish() after backward() and before optimizer.step()"
                )
            if self.training:  # not in evaluation: ranks may evaluate different batch counts
                broadcast_buffers(self.module)
        return self.module(*args, **kwargs)

    def state_dict(self, *args: Any, **kwargs: Any) -> Any:
        return self.module.state_dict(*args, **kwargs)

    def load_state_dict(self, *args: Any, **kwargs: Any) -> Any:
        return self.module.load_state_dict(*args, **kwargs)


__all__ = ["DataParallel", "broadcast_buffers", "check_same_model", "replicate"]
