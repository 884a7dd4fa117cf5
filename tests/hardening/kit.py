"""Shared helpers of the hardening tests: what an outcome may be."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: The exceptions gradwell documents for bad input (its own errors subclass them:
#: CSVFormatError, CheckpointError and the scalers' errors are ValueErrors).
DOCUMENTED: tuple[type[BaseException], ...] = (ValueError, TypeError)
#: What must never escape, whatever the input: they say nothing about the input.
NEVER = (KeyError, AttributeError, RecursionError, IndexError)


def outcome(fn: Callable[..., Any], *args: Any, documented: tuple[type[BaseException], ...] = DOCUMENTED,
            names: tuple[str, ...] = (), **kwargs: Any) -> Any:  # fmt: skip
    """``fn(*args, **kwargs)``, or the documented exception it raised (returned).

    The exception must carry a message and, when ``names`` are given, name one of
    them (the argument or the place). Anything else propagates and fails the test.
    """
    try:
        return fn(*args, **kwargs)
    except documented as e:
        if isinstance(e, NEVER) and not isinstance(e, ValueError):
            raise
        message = str(e)
        assert message.strip(), f"{type(e).__name__} without a message"
        if names:
            assert any(n in message for n in names), f"{message!r} names none of {names}"
        return e
