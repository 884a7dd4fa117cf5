"""When the doctor looks closely: a small state machine over step numbers.

Every ``every``-th step is sampled (the probes measure it in detail), and every step
while the alarm is up: after the loss jumps above ``ALARM_LOSS_FACTOR`` times its
starting level, becomes non-finite, or a non-finite value was found. Between those,
a step costs the Doctor two comparisons (:meth:`Schedule.quiet`).
"""

from __future__ import annotations

import math

from .trace import median

#: Sample every this many steps at most: a sampled step costs about three quarters of a
#: step of the smallest benchmark model (benchmarks/doctor_overhead.py; sampled every
#: 12th step there, because of the rule below, the doctor costs it 9-10%) and far less
#: of a larger model's step...
DEFAULT_SAMPLE_EVERY = 16
#: ...and at least this many times per epoch, so short epochs still give windows.
MIN_SAMPLES_PER_EPOCH = 4
#: Steps sampled densely after the loss jumps (so an explosion is seen in detail).
ALARM_STEPS = 20
#: The loss at this multiple of its starting level raises the alarm (mini-batch noise
#: stays well under it; an explosion passes it within a step or two)...
ALARM_LOSS_FACTOR = 3.0
#: ...the median of the first this-many losses.
ALARM_REFERENCE_STEPS = 5


class Schedule:
    """The sampling schedule.

    ``next_event`` is the next step that needs a close look: the one before a sampled
    step (it arms the probes), a sampled one, the one after (its update is measured),
    or any while the starting level is measured. ``alarm_level``: a loss above it
    raises the alarm; ``alarm_until``: the last step of the dense sampling.

    >>> s = Schedule(every=4)
    >>> [t for t in range(12) if s.sampled(t)]
    [0, 4, 8]
    >>> s.alarm(5); [t for t in range(12) if s.sampled(t)]
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    """

    def __init__(self, every: int = DEFAULT_SAMPLE_EVERY) -> None:
        self.every = every
        self.reset()

    def reset(self) -> None:
        self.alarm_until = -1
        self.alarm_level = math.inf
        self.next_event = 0
        self.first_losses: list[float] = []

    def quiet(self, step: int, loss: float) -> bool:
        """Whether ``step`` with this loss needs nothing (the every-step test)."""
        return step < self.next_event and -math.inf < loss <= self.alarm_level

    def sampled(self, step: int) -> bool:
        return step % self.every == 0 or step <= self.alarm_until

    def alarm(self, step: int) -> None:
        """Sample densely from now until ``ALARM_STEPS`` after ``step``."""
        self.alarm_until = max(self.alarm_until, step + ALARM_STEPS)
        self.next_event = 0

    def see_loss(self, step: int, loss: float) -> None:
        """A closely observed step's loss: raise the alarm on a jump or a non-finite loss;
        the first few set the starting level."""
        if not math.isfinite(loss) or loss > self.alarm_level:
            self.alarm_until = step + ALARM_STEPS
        first = self.first_losses
        if len(first) < ALARM_REFERENCE_STEPS:  # the median of the first few losses
            first.append(loss)
            finite = [v for v in first if math.isfinite(v)]
            ref = median(finite) if finite else math.nan
            self.alarm_level = ALARM_LOSS_FACTOR * ref if ref > 0 else math.inf

    def plan(self, step: int, busy: bool) -> None:
        """Set ``next_event`` after a closely observed step; ``step`` is the next one and
        ``busy`` says whether it needs a look anyway (probes armed, an update pending)."""
        if busy or len(self.first_losses) < ALARM_REFERENCE_STEPS:
            self.next_event = step
        else:
            self.next_event = step + (-step % self.every) - 1
