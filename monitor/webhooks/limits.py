"""Concurrency and pacing for outgoing webhooks.

Three limits, taken in this order for each request:

1. per subscriber (default 2 at a time): one slow receiver holds at most two of our
   slots, and ordering per subscriber stays close to event order;
2. per webhook URL, for channels that declare `pace_per_url` (Slack: one message a
   second, its incoming-webhook rate limit; bursts get 429): waited for while holding
   only the subscriber's slot. This process's own requests to one URL queue here in
   order; the pace shared with other replicas is a `turn` the caller claims (the
   outbox, in the database: `monitor.store.pacing`), so each process puts at most
   about one claimant per interval and URL to the database, not one per delivery;
3. overall (default 10): measured on httpx's pool (issue 5), about 10 requests in flight
   reach ~1,000 deliveries/s to a local receiver, while ~100 and more degrade it
   (p99 around 1 s). More concurrency buys nothing but queueing inside the pool.
   A shared turn is claimed holding this slot, so the request follows its grant at
   once (a grant that then queued here would squeeze the next replica's message
   closer to it); waiting for the turn holds only the subscriber's slot.

Clock and sleep are injected, so pacing is tested without real waiting.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

DEFAULT_OVERALL = 10
DEFAULT_PER_SUBSCRIBER = 2

# Asked for a turn shared with other processes: None to go now, else seconds to wait.
Turn = Callable[[], Awaitable[float | None]]


class RateLimiter:
    """At most one request per `interval` seconds per key; callers queue in arrival order."""

    def __init__(self, interval: float, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.interval = interval
        self._clock = clock
        self._sleep = sleep
        self._next: dict[str, float] = {}

    async def wait(self, key: str) -> float:
        """Reserve the key's next free slot and sleep until it; returns the seconds waited."""
        now = self._clock()
        slot = max(now, self._next.get(key, now))
        self._next[key] = slot + self.interval
        if len(self._next) > 1024:  # forget keys whose slot has passed
            self._next = {k: t for k, t in self._next.items() if t > now}
        delay = slot - now
        if delay > 0:
            await self._sleep(delay)
        return delay


class _Keyed:
    """A semaphore per key, dropped when nobody holds or waits for it."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._sems: dict[str, tuple[asyncio.Semaphore, list[int]]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        sem, users = self._sems.setdefault(key, (asyncio.Semaphore(self.size), [0]))
        users[0] += 1
        try:
            async with sem:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._sems[key]


def rate_key(url: str) -> str:
    # Hash: the limiter's memory then holds no credential (a Slack URL is one).
    return hashlib.sha256(url.encode()).hexdigest()


class DeliveryLimiter:
    def __init__(self, overall: int = DEFAULT_OVERALL,
                 per_subscriber: int = DEFAULT_PER_SUBSCRIBER, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        if overall < 1 or per_subscriber < 1:
            raise ValueError("concurrency limits must be at least 1")
        self.overall = overall
        self._overall = asyncio.Semaphore(overall)
        self._subscribers = _Keyed(per_subscriber)
        self._clock, self._sleep = clock, sleep
        self._pacers: dict[float, RateLimiter] = {}  # one per interval a channel declares

    def pacer(self, interval: float) -> RateLimiter:
        if interval not in self._pacers:
            self._pacers[interval] = RateLimiter(interval, clock=self._clock, sleep=self._sleep)
        return self._pacers[interval]

    @asynccontextmanager
    async def slot(self, subscriber: str, *, paced_url: str | None = None,
                   interval: float | None = None,
                   turn: Turn | None = None) -> AsyncIterator[None]:
        """Hold the limits for one request; `paced_url` is spaced `interval` s from the last.

        `turn`, when given, is then asked for the shared turn until it grants one: None
        is granted, a number the seconds to wait before asking again. It may raise to
        give up; the request is then not sent.
        """
        async with self._subscribers.hold(subscriber):
            if paced_url is not None and interval:
                await self.pacer(interval).wait(rate_key(paced_url))
            while True:
                async with self._overall:
                    wait = None if turn is None else await turn()
                    if wait is None:
                        yield
                        return
                await self._sleep(wait)
