"""Containers: Sequential (a chain of layers) and ModuleList (a list of sub-modules)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from .module import Module


def _check_module(m: Any, where: str) -> Module:
    if not isinstance(m, Module):
        raise TypeError(f"{where}: expected a gw.nn.Module; got {type(m).__name__} ({m!r})")
    return m


class ModuleList(Module):
    """A list of sub-modules, registered as "0", "1", ... (it has no forward of its own).

    >>> import gradwell as gw
    >>> blocks = gw.nn.ModuleList([gw.nn.Linear(2, 2), gw.nn.ReLU()])
    >>> len(blocks), [name for name, _ in blocks.named_parameters()]
    (2, ['0.weight', '0.bias'])
    """

    def __init__(self, modules: Iterable[Module] = ()) -> None:
        super().__init__()
        for m in modules:
            self.append(m)

    @classmethod
    def _of(cls, modules: list[Module]) -> ModuleList:
        return cls(modules)

    def _index(self, i: int) -> str:
        n = len(self._modules)
        if not -n <= i < n:
            raise IndexError(f"index {i} is out of range for {type(self).__name__} of length {n}")
        return str(i % n)

    def __getitem__(self, i: int | slice) -> Any:
        if isinstance(i, slice):
            return self._of(list(self)[i])
        return self._modules[self._index(i)]

    def __setitem__(self, i: int, module: Module) -> None:
        setattr(self, self._index(i), _check_module(module, type(self).__name__))

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return (m for m in self._modules.values() if m is not None)

    def append(self, module: Module) -> ModuleList:
        """Add ``module`` at the end; returns self."""
        self.add_module(str(len(self._modules)), _check_module(module, type(self).__name__))
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        for m in modules:
            self.append(m)
        return self


class Sequential(ModuleList):
    """Layers applied in order: ``Sequential(a, b, c)(x) == c(b(a(x)))``.

    Indexable (a slice is a new Sequential sharing the layers), ``len``, iterable,
    ``append``; the children are named "0", "1", ... so parameters are named like
    ``"0.weight"``.

    >>> import gradwell as gw
    >>> model = gw.nn.Sequential(gw.nn.Linear(4, 8, rng=0), gw.nn.ReLU(), gw.nn.Linear(8, 2, rng=1))
    >>> model(gw.ones(3, 4)).shape
    (3, 2)
    >>> model
    Sequential(
      (0): Linear(in_features=4, out_features=8, bias=True)
      (1): ReLU()
      (2): Linear(in_features=8, out_features=2, bias=True)
    )
    """

    def __init__(self, *modules: Module) -> None:
        if len(modules) == 1 and not isinstance(modules[0], Module):
            raise TypeError(
                f"Sequential takes modules as separate arguments, Sequential(a, b, c); got one "
                f"{type(modules[0]).__name__} (unpack it: Sequential(*layers))"
            )
        super().__init__(modules)

    @classmethod
    def _of(cls, modules: list[Module]) -> Sequential:
        return cls(*modules)

    def forward(self, x: Any) -> Any:
        for module in self._modules.values():
            x = module(x)  # type: ignore[misc]
        return x
