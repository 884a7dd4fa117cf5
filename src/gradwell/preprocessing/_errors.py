"""Exceptions raised by gradwell.preprocessing.

They subclass the built-in exceptions a caller would already catch (``ValueError``
and friends), so code written against scikit-learn's conventions keeps working.
"""

from __future__ import annotations


class NotFittedError(ValueError, AttributeError):
    """A scaler was used (transform, inverse_transform, to_config state) before ``fit``."""


class NonFiniteValueError(ValueError):
    """The input holds NaN or +/-inf and the scaler's ``nan_policy`` is ``"error"``."""


class NotInvertibleError(ValueError):
    """``inverse_transform`` was asked of a chain with a lossy step (``Clip``)."""


class ColumnMismatchError(ValueError):
    """The columns given at transform time differ from those seen at fit time."""


class DomainError(ValueError):
    """A value lies outside the domain of a transform (e.g. log of a negative number)."""
