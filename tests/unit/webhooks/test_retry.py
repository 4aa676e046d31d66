"""The retry policy with an injected clock (`now`) and injected randomness."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from monitor.webhooks.retry import DEFAULT_SCHEDULE, RetryPolicy

NOW = datetime(2026, 1, 1, tzinfo=UTC)
SPEC_EXAMPLE = [timedelta(seconds=5), timedelta(minutes=5), timedelta(minutes=30),
                timedelta(hours=2), timedelta(hours=5), timedelta(hours=10),
                timedelta(hours=14), timedelta(hours=20), timedelta(hours=24)]


class Fixed(random.Random):
    """`uniform(a, b)` always answers one end: the jitter bounds, exactly."""

    def __init__(self, end: str) -> None:
        super().__init__()
        self.end = end

    def uniform(self, a: float, b: float) -> float:
        return a if self.end == "low" else b


def test_default_schedule_is_the_standard_webhooks_example() -> None:
    assert list(DEFAULT_SCHEDULE) == SPEC_EXAMPLE
    assert RetryPolicy().max_attempts == 10


def test_without_jitter_attempts_follow_the_schedule_then_dead_letter() -> None:
    policy = RetryPolicy(jitter=0)
    at, seen = NOW, []
    for attempt in range(1, 11):
        nxt = policy.next_attempt_at(attempt, at)
        if nxt is None:
            break
        seen.append(nxt - at)
        at = nxt
    assert seen == SPEC_EXAMPLE
    assert attempt == 10  # the tenth failure is the last
    assert at - NOW == timedelta(hours=75, minutes=35, seconds=5)  # the spec's total


@pytest.mark.parametrize(("end", "factor"), [("low", 0.9), ("high", 1.1)])
def test_jitter_reaches_but_never_exceeds_ten_percent(end: str, factor: float) -> None:
    policy = RetryPolicy(rng=Fixed(end))
    for attempt, base in enumerate(SPEC_EXAMPLE, start=1):
        assert policy.next_attempt_at(attempt, NOW) == NOW + base * factor


def test_jitter_spreads_retries_within_bounds() -> None:
    policy = RetryPolicy(rng=random.Random(7))
    delays = {policy.delay(3) for _ in range(200)}
    assert len(delays) > 150  # actually random
    assert all(timedelta(minutes=27) <= d <= timedelta(minutes=33) for d in delays if d)


def test_retry_after_replaces_the_scheduled_delay_without_jitter() -> None:
    policy = RetryPolicy(rng=Fixed("high"))
    assert policy.next_attempt_at(1, NOW, retry_after=2) == NOW + timedelta(seconds=2)
    assert policy.next_attempt_at(4, NOW, retry_after=2) == NOW + timedelta(seconds=2)


def test_retry_after_is_floored_and_capped() -> None:
    policy = RetryPolicy()
    assert policy.next_attempt_at(1, NOW, retry_after=0) == NOW + timedelta(seconds=1)
    week = 7 * 86400.0
    assert policy.next_attempt_at(1, NOW, retry_after=week) == NOW + timedelta(hours=24)


def test_retry_after_does_not_extend_the_schedule() -> None:
    assert RetryPolicy().next_attempt_at(10, NOW, retry_after=5) is None


def test_custom_schedule_and_bad_input() -> None:
    policy = RetryPolicy(schedule=(timedelta(seconds=1),), jitter=0)
    assert policy.next_attempt_at(1, NOW) == NOW + timedelta(seconds=1)
    assert policy.next_attempt_at(2, NOW) is None
    with pytest.raises(ValueError, match="start at 1"):
        policy.next_attempt_at(0, NOW)
    with pytest.raises(ValueError, match="jitter"):
        RetryPolicy(jitter=1.5)
