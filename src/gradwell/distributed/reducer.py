"""Gradient averaging over ranks: buckets, filled from gradient hooks, all-reduced early.

Parameters are grouped, in the reverse of ``model.parameters()`` (roughly the order
backward reaches them), into buckets of about ``bucket_bytes`` each: one flat array
per bucket. After the first backward they are grouped again in the order rank 0's
gradients arrived, as PyTorch's DDP does, so a model whose layers are declared in
another order than they run still fills its buckets one after the other.

Each parameter's gradient hook writes its gradient divided by the number of ranks
into its slot (one pass: the all-reduced sum is then the average); when
a bucket is full its non-blocking all-reduce starts at once, while backward goes on
producing the next gradients, and every later hook drives the started ones forward
(Open MPI moves a non-blocking collective only inside MPI calls). Buckets start in
the same order on every rank -- bucket ``i`` only after bucket ``i - 1`` -- since MPI
matches collectives by their order. ``overlap=False`` runs each bucket's blocking
all-reduce in the hook instead: no overlap, but Open MPI's blocking all-reduce can be
several times faster than its non-blocking one on one machine (see
``benchmarks/distributed.py``). The last hook waits for all buckets and hands every
parameter its averaged gradient, so after ``backward()`` every rank holds the same
gradients, bit for bit.

The engine calls a parameter's hook as soon as its gradient is complete (after the
last op that uses it), eagerly and in a compiled replay alike, so the top layers'
buckets travel while backward computes the layers below; the first layer's bucket,
complete last, cannot hide. Progress is made at each hook: on this 2-core machine that
beat both a thread calling MPI's Test every 0.5 ms and a thread running the blocking
all-reduce on a communicator of its own (both steal the core backward runs on; see
``benchmarks/README.md``).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..autograd.tensor import Tensor
from .collectives import _watchdog, broadcast, wait
from .compression import check as check_compression
from .compression import decode, encode, sum_op
from .world import _world, world_size

DEFAULT_BUCKET_BYTES = 1 << 20


class _Bucket:
    """One flat array of averaged gradients (``buffer``; ``slots`` are its views, one per
    parameter) and what travels (``wire``: the buffer itself, or its 16-bit copy)."""

    __slots__ = ("buffer", "wire", "params", "spans", "slots", "filled", "request")

    def __init__(self, params: list[Any], compression: str | None) -> None:
        dtype = params[0].data.dtype
        sizes = [p.data.size for p in params]
        self.buffer = np.zeros(sum(sizes), dtype=dtype)
        self.wire = self.buffer if compression is None else np.zeros(sum(sizes), np.uint16)
        offsets = np.concatenate([[0], np.cumsum(sizes)]).tolist()
        self.params = params
        self.spans = list(zip(offsets, offsets[1:]))
        self.slots = [
            self.buffer[a:b].reshape(p.data.shape) for (a, b), p in zip(self.spans, params)
        ]
        self.filled = 0
        self.request: Any = None


def _ignore(grad: Any) -> None:
    return None


class _GradientHook:
    """The hook of one parameter. A deep copy of the parameter (the doctor replays a
    batch on a copy of the model) gets a hook that does nothing: only the replica's own
    backward may feed the all-reduce, or the ranks' collectives would no longer match."""

    __slots__ = ("reducer", "param")

    def __init__(self, reducer: GradientReducer, param: Any):
        self.reducer, self.param = reducer, param

    def __call__(self, grad: Tensor) -> Any:
        return self.reducer._arrived(self.param, grad)

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        return _ignore


class GradientReducer:
    """Averages the gradients of ``params`` over all ranks, from their gradient hooks.

    ``stats`` accumulates, over steps, the seconds spent copying into buckets and
    starting all-reduces (``issue``), between the first bucket's start and the end of
    backward (``window``: the backward time communication can hide behind), waiting
    for them after backward (``wait``: the part of communication not hidden, with the
    averaging), the gradient bytes all-reduced (``bytes``, as they travel: half of them
    with ``compression``) and of those, the bytes whose all-reduce had already finished
    when backward did (``hidden``), and the steps.

    ``compression="bf16"`` or ``"fp16"`` all-reduces the gradients rounded to that 16-bit
    format (see :mod:`.compression`); None, the default, all-reduces them as they are.
    """

    def __init__(
        self,
        params: list[Any],
        bucket_bytes: int = DEFAULT_BUCKET_BYTES,
        overlap: bool = True,
        compression: str | None = None,
    ) -> None:
        if not isinstance(bucket_bytes, int) or bucket_bytes < 1:
            raise ValueError(f"DataParallel: expected bucket_bytes >= 1; got {bucket_bytes!r}")
        if not isinstance(overlap, bool):
            raise TypeError(f"DataParallel: expected overlap True or False; got {overlap!r}")
        self.overlap = overlap
        self.compression = check_compression(compression)
        self._scale = 1.0 / world_size()
        self.params = [p for p in params if p.requires_grad]
        self.bucket_bytes = bucket_bytes
        self.buckets: list[_Bucket] = []
        self._where: dict[int, tuple[_Bucket, int]] = {}
        self._fill(self.params[::-1])
        self._index = {id(p): k for k, p in enumerate(self.params)}
        self._arrivals: list[int] | None = []  # the first step's order (None: regrouped)
        self._ready = 0  # parameters whose gradient has arrived this step
        self._next = 0  # the next bucket to start
        self._previous: dict[int, Any] = {}  # .grad before this backward (accumulation)
        self.stats = {"issue": 0.0, "window": 0.0, "wait": 0.0, "bytes": 0, "hidden": 0, "steps": 0}
        self._first_start = 0.0
        self._handles = [p.register_hook(_GradientHook(self, p)) for p in self.params]

    def _fill(self, order: list[Any]) -> None:
        """Buckets of about ``bucket_bytes`` (one dtype each), filled in ``order``."""
        self.buckets = []
        current: list[Any] = []
        size = 0
        for p in order:
            if current and (
                size + p.data.nbytes > self.bucket_bytes or p.data.dtype != current[0].data.dtype
            ):
                self.buckets.append(_Bucket(current, self.compression))
                current, size = [], 0
            current.append(p)
            size += p.data.nbytes
        if current:
            self.buckets.append(_Bucket(current, self.compression))
        self._where = {id(p): (b, i) for b in self.buckets for i, p in enumerate(b.params)}

    def _regroup(self) -> None:
        """After the first step: buckets in the order rank 0's gradients arrived (every
        rank must group alike, so rank 0's order counts; parameters that got no gradient
        keep their place at the end)."""
        assert self._arrivals is not None
        seen = set(self._arrivals)
        rest = [k for k in range(len(self.params) - 1, -1, -1) if k not in seen]
        order = broadcast(np.array(self._arrivals + rest, dtype=np.int64)).tolist()
        self._arrivals = None
        layout = [self._index[id(p)] for b in self.buckets for p in b.params]
        if order != layout:
            self._fill([self.params[k] for k in order])

    @property
    def op(self) -> Any:
        """The MPI operation that sums the buckets as they travel."""
        return _world.MPI.SUM if self.compression is None else sum_op(self.compression)

    @property
    def pending(self) -> bool:
        """Whether some gradients of the current step have not been averaged yet."""
        return self._ready > 0

    def _arrived(self, p: Any, grad: Tensor) -> Any:
        """``p``'s gradient hook: into its bucket; start what is full; finish after the last."""
        started = time.perf_counter()
        bucket, i = self._where[id(p)]
        if self._arrivals is not None:
            self._arrivals.append(self._index[id(p)])
        before = p.grad
        if before is not None and np.may_share_memory(before.data, bucket.buffer):
            # the last step's average, still in the bucket: keep it for accumulation
            before = p.grad = Tensor(before.data.copy())
        if self.compression is None:
            np.multiply(grad.data, self._scale, out=bucket.slots[i])
        else:
            a, b = bucket.spans[i]
            encode(self.compression, grad.data, self._scale, bucket.wire[a:b])
        self._previous[id(p)] = before
        bucket.filled += 1
        self._ready += 1
        self._start_full_buckets()
        self.stats["issue"] += time.perf_counter() - started
        if self._ready == len(self.params):
            return self.finish(last=p)
        return None

    def _start_full_buckets(self) -> None:
        MPI, op = _world.MPI, self.op
        buckets = self.buckets
        while self._next < len(buckets) and buckets[self._next].filled == len(
            buckets[self._next].params
        ):
            b = buckets[self._next]
            if self._next == 0:
                self._first_start = time.perf_counter()
            if self.overlap:
                b.request = _world.comm.Iallreduce(MPI.IN_PLACE, b.wire, op)
            else:
                with _watchdog.guard("the gradient all-reduce"):
                    _world.comm.Allreduce(MPI.IN_PLACE, b.wire, op)
            self._next += 1
        started = [b.request for b in buckets[: self._next] if b.request is not None]
        if started:
            MPI.Request.Testall(started)  # progress for the ones already on their way

    def finish(self, last: Any = None) -> Any:
        """Average whatever this step has: parameters without a gradient count as zero.

        Called by the last gradient hook (then ``last`` is that parameter, whose
        averaged gradient is returned for backward to store), and by ``fit`` after
        backward for the steps where some parameter got no gradient. A no-op when
        nothing is pending.
        """
        if not self._ready:
            return None
        started = time.perf_counter()
        if self._next:
            self.stats["window"] += started - self._first_start
        for bucket in self.buckets:
            if bucket.filled < len(bucket.params):
                for i, p in enumerate(bucket.params):
                    if id(p) not in self._previous:  # no gradient this step: zero
                        a, b = bucket.spans[i]
                        bucket.wire[a:b] = 0  # +0.0 in every format
                        self._previous[id(p)] = p.grad
                bucket.filled = len(bucket.params)
        self._start_full_buckets()
        for b in self.buckets:
            self.stats["bytes"] += b.wire.nbytes
            if b.request is not None and b.request.Test():
                self.stats["hidden"] += b.wire.nbytes
        wait([b.request for b in self.buckets if b.request is not None], "the gradient all-reduce")
        result = None
        for bucket in self.buckets:
            bucket.request, bucket.filled = None, 0
            if self.compression is not None:
                decode(self.compression, bucket.wire, bucket.buffer)
            for p, slot in zip(bucket.params, bucket.slots):
                if p is last:
                    result = slot  # backward copies it (a view) or adds it to .grad
                    continue
                before = self._previous[id(p)]
                # A view of the bucket: no copy. The next backward writes the bucket again
                # only after this .grad was used (and saves it first when it accumulates).
                p.grad = Tensor(slot) if before is None else Tensor(before.data + slot)
        self._previous.clear()
        self._ready = self._next = 0
        if self._arrivals is not None:
            self._regroup()
        self.stats["wait"] += time.perf_counter() - started
        self.stats["steps"] += 1
        return result

    def remove(self) -> None:
        """Unregister the gradient hooks."""
        for h in self._handles:
            h()
        self._handles = []
