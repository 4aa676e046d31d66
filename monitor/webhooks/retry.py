"""The declared retry policy: when the next attempt of a failed delivery is due.

The default schedule is the example in the Standard Webhooks spec ("Deliverability and
reliability"): immediately, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h and 24 h
after each failure: ten attempts over about 75 hours. After the tenth failure
`next_attempt_at` returns None and the delivery goes to the dead letter state.

Jitter (±10 % by default) spreads retries so that receivers that failed together do not
get hit together again (the spec recommends "some level of random jitter").

A receiver's `Retry-After` replaces the scheduled delay for that one retry, without
jitter (the receiver named the moment), floored at one second so that `Retry-After: 0`
cannot spin, and capped at 24 h so that a hostile or broken value cannot park a delivery
for ever. It still counts as an attempt: a receiver that keeps saying 429 exhausts the
schedule like any other failure.

Pure: the clock is the `now` argument and the randomness is an injected `random.Random`,
so tests check exact times without sleeping.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

DEFAULT_SCHEDULE: tuple[timedelta, ...] = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=14),
    timedelta(hours=20),
    timedelta(hours=24),
)


@dataclass(frozen=True)
class RetryPolicy:
    # Delay before attempt n+1 after attempt n failed; the first attempt is immediate.
    schedule: tuple[timedelta, ...] = DEFAULT_SCHEDULE
    jitter: float = 0.1
    min_retry_after: timedelta = timedelta(seconds=1)
    max_retry_after: timedelta = timedelta(hours=24)
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")
        if any(d < timedelta(0) for d in self.schedule):
            raise ValueError("schedule delays must not be negative")

    @property
    def max_attempts(self) -> int:
        return len(self.schedule) + 1

    def delay(self, attempt_number: int, retry_after: float | None = None) -> timedelta | None:
        """The wait after failed attempt `attempt_number` (1-based), or None when exhausted."""
        if attempt_number < 1:
            raise ValueError("attempt numbers start at 1")
        if attempt_number > len(self.schedule):
            return None
        if retry_after is not None and retry_after >= 0:
            asked = timedelta(seconds=retry_after)
            return min(max(asked, self.min_retry_after), self.max_retry_after)
        base = self.schedule[attempt_number - 1]
        return base * (1 + self.rng.uniform(-self.jitter, self.jitter))

    def next_attempt_at(self, attempt_number: int, now: datetime,
                        retry_after: float | None = None) -> datetime | None:
        """When to try again after attempt `attempt_number` failed at `now`; None = dead letter."""
        wait = self.delay(attempt_number, retry_after)
        return None if wait is None else now + wait


DEFAULT_POLICY = RetryPolicy()
