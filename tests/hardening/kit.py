"""Shared helpers of the hardening tests: what an outcome may be."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

#: The exceptions gradwell documents for bad input (its own errors subclass them:
#: CSVFormatError, CheckpointError and the scalers' errors are ValueErrors).
DOCUMENTED: tuple[type[BaseException], ...] = (ValueError, TypeError)
# Anything else fails the test: KeyError, AttributeError, RecursionError and the like
# say nothing about the input (the scalers' NotFittedError is also a ValueError).


def outcome(
    fn: Callable[..., Any],
    *args: Any,
    documented: tuple[type[BaseException], ...] = DOCUMENTED,
    names: tuple[str, ...] = (),
    **kwargs: Any,
) -> Any:
    """``fn(*args, **kwargs)``, or the documented exception it raised (returned).

    The exception must carry a message and, when ``names`` are given, name one of
    them (the argument or the place). Anything else propagates and fails the test.
    """
    try:
        return fn(*args, **kwargs)
    except documented as e:
        message = str(e)
        assert message.strip(), f"{type(e).__name__} without a message"
        if names:
            assert any(n in message for n in names), f"{message!r} names none of {names}"
        return e


class Hang(Exception):
    """A call ran past its time limit."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Fail (raise Hang) instead of hanging, where SIGALRM exists (POSIX, main thread)."""
    if (
        not hasattr(signal, "setitimer")
        or threading.current_thread() is not threading.main_thread()
    ):
        yield
        return

    def alarm(signum: int, frame: Any) -> None:
        raise Hang(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
