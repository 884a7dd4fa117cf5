"""SyncBatchNorm: batch normalization over the whole batch of every rank together."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..autograd.tensor import Tensor
from ..nn.batchnorm import BatchNorm1d
from .collectives import all_reduce
from .world import world_size


def _summed_over_ranks(t: Tensor) -> Tensor:
    """``t`` summed over all ranks, differentiably.

    The value is the all-reduced sum; the gradient reaching it is all-reduced too
    before it flows back into ``t`` (the VJP of a sum over ranks is the sum over ranks
    of the gradients). ``t - t.data`` is exactly zero, so the value is the sum bit for bit.
    """
    out = t - Tensor(t.data) + Tensor(all_reduce(t.data))
    if out.requires_grad:
        out.register_hook(lambda g: Tensor(all_reduce(g.data)))
    return out


class SyncBatchNorm(BatchNorm1d):
    """BatchNorm1d whose training statistics are the mean and variance over the batches of
    all ranks together, as one process with the whole batch would compute them.

    Outside a job of several processes, and in evaluation, it is BatchNorm1d. Costs
    two small all-reduces forward and two backward per layer; opt in with
    ``DataParallel(model, sync_batchnorm=True)`` or :func:`convert_sync_batchnorm`.
    """

    def forward(self, x: Any) -> Tensor:
        if not self.training or world_size() == 1:
            return super().forward(x)
        if not isinstance(x, Tensor) or x.ndim != 2 or x.shape[1] != self.num_features:
            return super().forward(x)  # its checks and messages
        n = int(all_reduce(np.array([x.shape[0]], dtype=np.int64))[0])
        mean = _summed_over_ranks(x.sum(axis=0)) * (1.0 / n)
        centred = x - mean
        var = _summed_over_ranks((centred * centred).sum(axis=0)) * (1.0 / n)
        out = centred * (var + self.eps) ** -0.5
        if self.affine:
            out = out * self.weight + self.bias
        if self.track_running_stats:
            self._update_running(mean.data, var.data, n)
        return out

    def _update_running(self, mean: np.ndarray, var: np.ndarray, n: int) -> None:
        """As BatchNorm1d: move towards the mean and the unbiased variance (in place)."""
        batches = self.num_batches_tracked.data
        momentum = self.momentum if self.momentum is not None else 1.0 / (int(batches) + 1)
        dt = mean.dtype.type
        rm, rv = self.running_mean.data, self.running_var.data
        rm *= dt(1.0 - momentum)
        rm += dt(momentum) * mean
        rv *= dt(1.0 - momentum)
        rv += dt(momentum * n / max(n - 1, 1)) * var
        batches[()] += 1


def convert_sync_batchnorm(model: Any) -> Any:
    """Make every BatchNorm1d of ``model`` a :class:`SyncBatchNorm`, in place.

    The layers keep their parameters, buffers and settings (an optimizer made
    before still updates them). Returns ``model``.
    """
    for module in model.modules():
        if type(module) is BatchNorm1d:
            module.__class__ = SyncBatchNorm  # the same state; only forward differs
    return model


__all__ = ["SyncBatchNorm", "convert_sync_batchnorm"]
