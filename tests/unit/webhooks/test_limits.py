"""Concurrency limits and per-channel pacing, with an injected clock: nothing really sleeps."""

from __future__ import annotations

import asyncio

import pytest

from monitor.webhooks.channels import KINDS, Destination, channel_for, render
from monitor.webhooks.limits import DeliveryLimiter, RateLimiter
from monitor.webhooks.outcome import OutcomeKind
from monitor.webhooks.sender import make_client, send_limited
from tests.unit.webhooks.receiver import Receiver
from tests.unit.webhooks.test_sender import EVENT


class FakeClock:
    """Monotonic time that moves only when someone 'sleeps'."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        # Like a real sleep: others run meanwhile, and concurrent sleepers do not add up.
        wake = self.now + seconds
        self.sleeps.append(seconds)
        await asyncio.sleep(0)
        self.now = max(self.now, wake)


async def test_rate_limiter_spaces_requests_per_key() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1.0, clock=clock, sleep=clock.sleep)
    waits = [await limiter.wait("a") for _ in range(3)]
    assert waits == [0.0, 1.0, 1.0]
    assert await limiter.wait("b") == 0.0  # another URL is not held back
    clock.now += 5  # after a quiet spell the next message goes at once
    assert await limiter.wait("a") == 0.0


async def test_rate_limiter_queues_concurrent_callers_in_order() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1.0, clock=clock, sleep=clock.sleep)
    waits = await asyncio.gather(*(limiter.wait("a") for _ in range(4)))
    assert sorted(waits) == [0.0, 1.0, 2.0, 3.0]


async def _peak(limiter: DeliveryLimiter, subscribers: list[str]) -> tuple[int, dict[str, int]]:
    """Run one task per entry, each holding its slot until all have tried; report peaks."""
    running, peak, per, per_peak = 0, 0, dict.fromkeys(subscribers, 0), dict.fromkeys(
        subscribers, 0)
    gate = asyncio.Event()

    async def job(sub: str) -> None:
        nonlocal running, peak
        async with limiter.slot(sub):
            running += 1
            per[sub] += 1
            peak, per_peak[sub] = max(peak, running), max(per_peak[sub], per[sub])
            await gate.wait()
            running -= 1
            per[sub] -= 1

    tasks = [asyncio.create_task(job(s)) for s in subscribers]
    for _ in range(10):  # let every task get as far as the limits allow
        await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(*tasks)
    return peak, per_peak


async def test_overall_limit_holds() -> None:
    peak, _ = await _peak(DeliveryLimiter(overall=3, per_subscriber=2),
                          [f"s{i}" for i in range(10)])
    assert peak == 3


async def test_per_subscriber_limit_holds() -> None:
    peak, per_peak = await _peak(DeliveryLimiter(overall=10, per_subscriber=2),
                                 ["slow"] * 6 + ["other"] * 1)
    assert per_peak == {"slow": 2, "other": 1}
    assert peak == 3


async def test_subscriber_semaphores_are_dropped_when_idle() -> None:
    limiter = DeliveryLimiter()
    async with limiter.slot("a"):
        assert "a" in limiter._subscribers._sems
    assert limiter._subscribers._sems == {}


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        DeliveryLimiter(overall=0)


async def test_slack_messages_are_paced_one_per_second_per_url(rx: Receiver) -> None:
    clock = FakeClock()
    limiter = DeliveryLimiter(per_subscriber=5, clock=clock, sleep=clock.sleep)
    slack = render(EVENT, Destination(kind="slack", url=rx.url("/slack")))
    generic = render(EVENT, Destination(kind="generic", url=rx.url("/ok")))
    assert slack is not None and generic is not None
    async with make_client() as client:
        results = await asyncio.gather(
            *(send_limited(client, limiter, slack, subscriber="team") for _ in range(3)),
            *(send_limited(client, limiter, generic, subscriber="ops") for _ in range(3)))
    assert {r.outcome.kind for r in results} == {OutcomeKind.DELIVERED}
    assert sorted(clock.sleeps) == [1.0, 2.0]  # only Slack waited: 0 s, 1 s, 2 s
    assert len(rx.on("/slack")) == 3 and len(rx.on("/ok")) == 3


async def test_one_shared_client_reuses_connections(rx: Receiver) -> None:
    generic = render(EVENT, Destination(kind="generic", url=rx.url("/ok")))
    assert generic is not None
    limiter = DeliveryLimiter(overall=1, per_subscriber=1)
    async with make_client() as client:
        for _ in range(5):
            await send_limited(client, limiter, generic, subscriber="ops")
        pool = client._transport._pool  # type: ignore[attr-defined]
        assert len(pool.connections) == 1  # keep-alive: five posts, one connection


PACE = {"slack": 1.0, "teams": 0.5}  # seconds per URL; the others are not paced
STAND_IN = {"generic": "/ok", "pagerduty": "/pagerduty"}


@pytest.mark.parametrize("kind", KINDS)
async def test_each_channel_is_paced_as_it_declares(rx: Receiver, kind: str) -> None:
    # Pacing is the channel's attribute, not a name in the sender. Discord declares none:
    # its 429s say when to come back.
    assert channel_for(kind).pace_per_url == PACE.get(kind)
    clock = FakeClock()
    limiter = DeliveryLimiter(per_subscriber=5, clock=clock, sleep=clock.sleep)
    request = render(EVENT, Destination(kind=kind, url=rx.url(STAND_IN.get(kind, f"/{kind}")),
                                        routing_key="k" * 32))
    assert request is not None
    async with make_client() as client:
        results = await asyncio.gather(
            *(send_limited(client, limiter, request, subscriber="s") for _ in range(3)))
    assert {r.outcome.kind for r in results} == {OutcomeKind.DELIVERED}
    interval = PACE.get(kind)
    assert sorted(clock.sleeps) == ([interval, 2 * interval] if interval else [])
