"""Datasets held in memory, mini-batches, and the train/test split.

A :class:`DataLoader` cuts a dataset into mini-batches of :class:`~gradwell.Tensor`.
Shuffling is explicit and reproducible: the permutation of epoch ``e`` comes from
a generator seeded with ``(seed, e)``, so a run resumed at epoch ``e`` sees the
same batches as an uninterrupted run with the same seed (no generator state to save).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from .._numeric import numeric_array
from ..autograd.creation import fresh_seed
from ..autograd.tensor import Tensor

Seed = int | np.random.Generator | None


def _as_array(a: Any, where: str) -> np.ndarray:
    """An array of numbers for a dataset: float64 becomes float32 (the library's default)."""
    arr = numeric_array(a, where)
    if arr.ndim == 0:
        raise ValueError(f"{where}: expected an array with one row per example; got a scalar")
    if arr.dtype == np.float64:
        arr = arr.astype(np.float32)
    return arr


def _seed_int(seed: Seed, where: str) -> int:
    """A non-negative integer seed from an int, a Generator, or None (fresh entropy)."""
    if seed is None:
        return fresh_seed()  # gw.manual_seed's stream when it was called
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(2**63))
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0:
        return int(seed)
    raise TypeError(
        f"{where}: expected seed to be a non-negative int, a numpy Generator or None; got {seed!r}"
    )


class TensorDataset:
    """Examples stored as arrays that share their first axis (one row per example).

    float64 arrays are stored as float32 (one copy, made here); integer labels
    and other numeric dtypes are kept as they are; text and objects are refused.

    >>> import numpy as np, gradwell as gw
    >>> ds = gw.data.TensorDataset(np.zeros((5, 3)), np.arange(5))
    >>> len(ds), ds.arrays[0].dtype, ds.arrays[1].dtype
    (5, dtype('float32'), dtype('int64'))
    """

    def __init__(self, *arrays: Any) -> None:
        if not arrays:
            raise ValueError("TensorDataset: expected at least one array; got none")
        self.arrays = tuple(_as_array(a, f"TensorDataset array {i}") for i, a in enumerate(arrays))
        n = len(self.arrays[0])
        for i, a in enumerate(self.arrays[1:], start=1):
            if len(a) != n:
                rows = ", ".join(f"array {j}: {len(b)}" for j, b in enumerate(self.arrays))
                raise ValueError(
                    f"TensorDataset: all arrays need the same number of rows; got {rows} "
                    f"(array {i} differs from array 0)"
                )

    def __len__(self) -> int:
        return len(self.arrays[0])

    def __getitem__(self, index: Any) -> tuple[Tensor, ...]:
        return tuple(Tensor(a[index]) for a in self.arrays)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{a.shape} {a.dtype}" for a in self.arrays)
        return f"TensorDataset({shapes})"


class DataLoader:
    """Mini-batches of a dataset as tuples of Tensors.

    ``data`` is a :class:`TensorDataset`, a tuple ``(X, y)`` (or any number of
    arrays with the same number of rows), a single array, or any object with
    ``__len__`` and ``__getitem__(i)`` returning a tuple of arrays (collated with
    ``np.stack``; slower). With ``shuffle`` each pass visits the examples in a
    new order drawn from ``seed`` (an int, a numpy Generator, or None for fresh
    entropy); the order of pass ``e`` depends only on ``(seed, e)``. The pass
    number advances on every iteration and can be set with :meth:`set_epoch`.
    ``drop_last`` drops the final incomplete batch; ``batch_size=None`` makes one
    batch of everything. ``sampler`` (instead of ``shuffle``) chooses the examples
    and their order: an iterable of indices with ``set_epoch(epoch)``, such as
    ``gw.distributed.DistributedSampler`` (each rank its share).

    >>> import numpy as np, gradwell as gw
    >>> loader = gw.data.DataLoader((np.ones((10, 2)), np.arange(10)), batch_size=4)
    >>> [xb.shape for xb, yb in loader]
    [(4, 2), (4, 2), (2, 2)]
    """

    def __init__(
        self,
        data: Any,
        batch_size: int | None = 32,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: Seed = None,
        sampler: Any = None,
    ) -> None:
        if isinstance(data, TensorDataset):
            self.dataset: Any = data
        elif isinstance(data, (tuple, list)):
            self.dataset = TensorDataset(*data)
        elif isinstance(data, (np.ndarray, Tensor)):
            self.dataset = TensorDataset(data)
        elif hasattr(data, "__len__") and hasattr(data, "__getitem__"):
            self.dataset = data
        else:
            raise TypeError(
                "DataLoader: expected a TensorDataset, a tuple of arrays such as (X, y), an "
                f"array, or a dataset with __len__ and __getitem__; got {type(data).__name__}"
            )
        n = len(self.dataset)
        if batch_size is None:
            batch_size = max(n, 1)
        if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool):
            raise TypeError(f"DataLoader: expected batch_size to be an int; got {batch_size!r}")
        if batch_size < 1:
            raise ValueError(f"DataLoader: expected batch_size >= 1; got {batch_size}")
        self.batch_size = int(batch_size)
        if sampler is not None and (shuffle or not hasattr(sampler, "set_epoch")):
            raise ValueError(
                "DataLoader: a sampler chooses the order itself: pass shuffle=False with it, "
                f"and a sampler with __iter__, __len__ and set_epoch; got shuffle={shuffle}, "
                f"{type(sampler).__name__}"
            )
        self.sampler = sampler
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.seed = _seed_int(seed, "DataLoader") if shuffle else None
        self.epoch = 0

    def __len__(self) -> int:
        n = len(self.dataset) if self.sampler is None else len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass use the order of pass ``epoch`` (0-based)."""
        self.epoch = int(epoch)

    def order(self, epoch: int) -> np.ndarray | None:
        """The example order of pass ``epoch`` (None when not shuffling)."""
        if self.sampler is not None:
            self.sampler.set_epoch(epoch)
            return np.fromiter(iter(self.sampler), dtype=np.intp, count=len(self.sampler))
        if not self.shuffle:
            return None
        assert self.seed is not None
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.dataset))

    def __iter__(self) -> Iterator[tuple[Tensor, ...]]:
        epoch = self.epoch
        self.epoch += 1
        return self._batches(self.order(epoch))

    def _batches(self, order: np.ndarray | None) -> Iterator[tuple[Tensor, ...]]:
        n, bs = len(self.dataset) if order is None else len(order), self.batch_size
        stop = n - n % bs if self.drop_last else n
        if isinstance(self.dataset, TensorDataset):
            arrays = self.dataset.arrays
            for start in range(0, stop, bs):
                if order is None:  # contiguous slices are views: no copy
                    yield tuple(Tensor(a[start : start + bs]) for a in arrays)
                else:  # one fancy index per array and batch
                    idx = order[start : start + bs]
                    yield tuple(Tensor(a[idx]) for a in arrays)
            return
        for start in range(0, stop, bs):
            rows = (
                np.arange(start, min(start + bs, n)) if order is None else order[start : start + bs]
            )
            yield _collate([self.dataset[int(i)] for i in rows])

    def state_dict(self) -> dict[str, Any]:
        """What reproduces the next pass: the shuffle seed and the pass number.

        With a sampler that shuffles from a seed (DistributedSampler), its seed: the
        state then loads into a loader with any number of ranks, or none.
        """
        seed = self.seed if self.sampler is None else getattr(self.sampler, "seed", None)
        return {"seed": seed, "epoch": self.epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._prepare_load(state)()

    def _prepare_load(self, state: Any) -> Callable[[], None]:
        """Check ``state``; return the function that loads it (which cannot fail)."""
        seed = state.get("seed", ()) if isinstance(state, dict) else ()
        epoch = state.get("epoch") if isinstance(state, dict) else None
        whole = (int, np.integer)
        if not (
            (seed is None or (isinstance(seed, whole) and seed >= 0))
            and isinstance(epoch, whole)
            and epoch >= 0
            and not isinstance(seed, bool)
            and not isinstance(epoch, bool)
        ):
            raise ValueError(
                "DataLoader.load_state_dict: expected {'seed': an int >= 0 or None, 'epoch': an "
                f"int >= 0}} (as made by state_dict()); got {state!r:.200}"
            )

        def write() -> None:
            value = None if seed is None else int(seed)
            if self.sampler is not None and hasattr(self.sampler, "seed"):
                self.sampler.seed = value  # a DistributedSampler shuffles from its own seed
            else:
                self.seed = value
            self.epoch = int(epoch)

        return write

    def __repr__(self) -> str:
        return (
            f"DataLoader({self.dataset!r}, batch_size={self.batch_size}, "
            f"shuffle={self.shuffle}, drop_last={self.drop_last})"
        )


def _collate(items: list[Any]) -> tuple[Tensor, ...]:
    """Stack examples (each a tuple of arrays) into one batch per field."""
    if not isinstance(items[0], (tuple, list)):
        items = [(it,) for it in items]
    return tuple(
        Tensor(_as_array(np.stack([np.asarray(getattr(v, "data", v)) for v in field]), "batch"))
        for field in zip(*items)
    )


def _take(a: Any, idx: np.ndarray) -> Any:
    """Rows ``idx`` of an array, a list, or a pandas object (kept as pandas)."""
    if hasattr(a, "iloc"):
        return a.iloc[idx]
    return (a.data if isinstance(a, Tensor) else np.asarray(a))[idx]


def _test_count(n: int, test_size: float | int) -> int:
    if isinstance(test_size, (float, np.floating)):
        if not 0.0 < test_size < 1.0:
            raise ValueError(
                f"train_test_split: a float test_size is a fraction in (0, 1); got {test_size}"
            )
        n_test = int(np.ceil(test_size * n))
    elif isinstance(test_size, (int, np.integer)) and not isinstance(test_size, bool):
        n_test = int(test_size)
    else:
        raise TypeError(
            f"train_test_split: expected test_size to be a fraction or a count; got {test_size!r}"
        )
    if not 0 < n_test < n:
        raise ValueError(
            f"train_test_split: {n} examples cannot be split into {n_test} test and "
            f"{n - n_test} train examples; both parts need at least one"
        )
    return n_test


def _stratified_test_rows(labels: np.ndarray, n_test: int, rng: np.random.Generator) -> np.ndarray:
    """Test rows with each class in proportion (largest remainders, ties at random)."""
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    if counts.min() < 2:
        rare = classes[np.argmin(counts)]
        raise ValueError(
            f"train_test_split: stratify needs at least 2 examples of every class; class "
            f"{rare!r} has {counts.min()}"
        )
    exact = counts * (n_test / len(labels))
    take = np.floor(exact).astype(np.int64)
    short = n_test - int(take.sum())
    if short:
        remainder = exact - take
        # Largest remainders first; a random permutation breaks ties fairly.
        perm = rng.permutation(len(classes))
        by_remainder = perm[np.argsort(-remainder[perm], kind="stable")]
        take[by_remainder[:short]] += 1
    rows = []
    for c, k in enumerate(take):
        members = np.flatnonzero(inverse == c)
        rows.append(rng.permutation(members)[:k])
    return np.concatenate(rows)


def train_test_split(
    X: Any,
    y: Any = None,
    test_size: float | int = 0.2,
    seed: Seed = None,
    stratify: Any = None,
) -> tuple[Any, ...]:
    """Split examples at random into a training and a test part.

    Returns ``(X_train, X_test, y_train, y_test)`` (or ``(X_train, X_test)``
    without ``y``), in scikit-learn's order. ``test_size`` is a fraction (rounded
    up to whole examples) or a count. ``stratify`` is an array of class labels
    (or ``True`` for ``y``): each class then keeps its proportion in both parts.
    Rows come out in random order; pandas inputs stay pandas.

    >>> import numpy as np, gradwell as gw
    >>> X, y = np.arange(20).reshape(10, 2), np.array([0, 1] * 5)
    >>> X_tr, X_te, y_tr, y_te = gw.data.train_test_split(X, y, test_size=0.2, seed=0,
    ...                                                     stratify=y)
    >>> sorted(y_te.tolist())
    [0, 1]
    """
    n = len(X)
    if y is not None and len(y) != n:
        raise ValueError(f"train_test_split: X has {n} rows but y has {len(y)}")
    n_test = _test_count(n, test_size)
    rng = np.random.default_rng(_seed_int(seed, "train_test_split"))
    if stratify is None or stratify is False:
        perm = rng.permutation(n)
        test, train = perm[:n_test], perm[n_test:]
    else:
        if stratify is True:
            if y is None:
                raise ValueError("train_test_split: stratify=True needs y")
            stratify = y
        labels = np.asarray(getattr(stratify, "data", stratify))
        if labels.ndim != 1 or len(labels) != n:
            raise ValueError(
                f"train_test_split: stratify must be one label per row ({n},); got shape "
                f"{labels.shape}"
            )
        test = rng.permutation(_stratified_test_rows(labels, n_test, rng))
        mask = np.ones(n, dtype=bool)
        mask[test] = False
        train = rng.permutation(np.flatnonzero(mask))
    parts = [_take(X, train), _take(X, test)]
    if y is not None:
        parts += [_take(y, train), _take(y, test)]
    return tuple(parts)


__all__ = ["DataLoader", "TensorDataset", "train_test_split"]
