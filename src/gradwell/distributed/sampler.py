"""DistributedSampler: each rank's share of a data set, reshuffled every epoch."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from .collectives import broadcast
from .world import rank as _rank
from .world import world_size as _world_size


class DistributedSampler:
    """The example indices rank ``rank`` of ``num_replicas`` visits in an epoch.

    With ``shuffle`` the whole data set is permuted from ``(seed, epoch)`` -- the
    same permutation a one-process ``DataLoader(shuffle=True, seed=seed)`` uses --
    and rank ``r`` takes every ``num_replicas``-th index starting at ``r``. So at
    batch size B per rank, batch ``i`` of all ranks together holds the same examples
    as batch ``i`` of one process at batch size ``num_replicas * B``. As in PyTorch,
    the shares are equal: the permutation is padded by repeating its start until it
    divides evenly, or with ``drop_last`` cut to the largest multiple of
    ``num_replicas``. ``pad=False`` neither pads nor drops (shares may differ by one
    example: what evaluation wants, so no example counts twice). ``seed=None``:
    rank 0 draws one and sends it to the others. Call :meth:`set_epoch` before each
    epoch (``gw.fit`` and ``DataLoader`` do).

    >>> import gradwell as gw
    >>> s = gw.distributed.DistributedSampler(10, num_replicas=4, rank=1, shuffle=False)
    >>> list(s), len(s)
    ([1, 5, 9], 3)
    """

    def __init__(
        self,
        dataset: Any,
        num_replicas: int | None = None,
        rank: int | None = None,
        shuffle: bool = True,
        seed: int | None = None,
        drop_last: bool = False,
        pad: bool = True,
    ) -> None:
        n = dataset if isinstance(dataset, (int, np.integer)) else len(dataset)
        self.num_samples_total = int(n)
        self.num_replicas = _world_size() if num_replicas is None else int(num_replicas)
        self.rank = _rank() if rank is None else int(rank)
        if self.num_replicas < 1 or not 0 <= self.rank < self.num_replicas:
            raise ValueError(
                f"DistributedSampler: expected 0 <= rank < num_replicas; got rank {self.rank} "
                f"of {self.num_replicas}"
            )
        if seed is None and shuffle:
            entropy = np.random.SeedSequence().entropy
            assert isinstance(entropy, int)
            drawn = np.array([entropy % 2**63], dtype=np.int64)
            seed = int(broadcast(drawn)[0])  # one seed for every rank
        if seed is not None and (not isinstance(seed, (int, np.integer)) or seed < 0):
            raise TypeError(f"DistributedSampler: expected seed to be an int >= 0; got {seed!r}")
        self.shuffle = bool(shuffle)
        self.seed = None if seed is None else int(seed)
        self.drop_last = bool(drop_last)
        self.pad = bool(pad)
        self.epoch = 0

    def __len__(self) -> int:
        n, w = self.num_samples_total, self.num_replicas
        if not self.pad:
            return max(0, -(-(n - self.rank) // w))
        return n // w if self.drop_last else -(-n // w)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def indices(self, epoch: int | None = None) -> np.ndarray:
        """This rank's indices for ``epoch`` (default: the one set by :meth:`set_epoch`)."""
        epoch = self.epoch if epoch is None else int(epoch)
        n, w = self.num_samples_total, self.num_replicas
        if self.shuffle:
            assert self.seed is not None
            order = np.random.default_rng([self.seed, epoch]).permutation(n)
        else:
            order = np.arange(n)
        if self.pad:
            total = len(self) * w
            if total > n:  # repeat the start (again and again for tiny data sets)
                order = np.resize(order, total)
            order = order[:total]
        return order[self.rank :: w]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __repr__(self) -> str:
        return (
            f"DistributedSampler({self.num_samples_total}, rank={self.rank} of "
            f"{self.num_replicas}, shuffle={self.shuffle}, drop_last={self.drop_last})"
        )


__all__ = ["DistributedSampler"]
