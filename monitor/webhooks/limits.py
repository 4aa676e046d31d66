"""Concurrency and pacing for outgoing webhooks.

Three limits, taken in this order for each request:

1. per subscriber (default 2 at a time): one slow receiver holds at most two of our
   slots, and ordering per subscriber stays close to event order;
2. per webhook URL, for channels that declare `pace_per_url` (Slack: one message a
   second, its incoming-webhook rate limit; bursts get 429): waited for while holding
   only the subscriber's slot;
3. overall (default 10): measured on httpx's pool (issue 5), about 10 requests in flight
   reach ~1,000 deliveries/s to a local receiver, while ~100 and more degrade it
   (p99 around 1 s). More concurrency buys nothing but queueing inside the pool.

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
                   interval: float | None = None) -> AsyncIterator[None]:
        """Hold the limits for one request; `paced_url` is spaced `interval` s from the last."""
        async with self._subscribers.hold(subscriber):
            if paced_url is not None and interval:
                await self.pacer(interval).wait(rate_key(paced_url))
            async with self._overall:
                yield
