"""The one way gradwell.keras changes what Keras calls: an attribute of an object (a layer's
``activation`` or ``call``, the model's ``compute_loss``, the optimizer's ``apply``)
replaced on the instance until ``remove()``, like a hook's handle."""

from __future__ import annotations

from typing import Any


class Swapped:
    """``owner.name`` replaced by ``value`` on the instance until ``remove()``, which puts
    back the instance's own value or, when it had none, lets the class's show again."""

    def __init__(self, owner: Any, name: str, value: Any) -> None:
        self.owner, self.name = owner, name
        self.had = name in vars(owner)
        self.original = vars(owner).get(name)
        setattr(owner, name, value)

    def remove(self) -> None:
        if self.had:
            setattr(self.owner, self.name, self.original)
        else:
            delattr(self.owner, self.name)
