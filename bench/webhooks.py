"""Webhook deliveries per second: `send_limited` vs plain httpx posts, same receiver, same run.

The receiver is `bench.sink`, in a process of its own. Ours signs every attempt, passes
the limiter and classifies the answer; the baseline posts the same bytes with a bare
httpx.AsyncClient at the same concurrency. Printed as a ratio (ours/baseline).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import httpx

from monitor.events.model import Event, EventType
from monitor.webhooks.channels import Destination, render
from monitor.webhooks.limits import DeliveryLimiter
from monitor.webhooks.outcome import OutcomeKind
from monitor.webhooks.sender import make_client, send_limited
from monitor.webhooks.signing import generate_secret


async def _rate(n: int, concurrency: int, one: Callable[[int], Awaitable[float]]) -> tuple[
        float, float]:
    slots = asyncio.Semaphore(concurrency)

    async def bounded(i: int) -> float:
        async with slots:
            return await one(i)

    await asyncio.gather(*(bounded(i) for i in range(50)))  # warm the pool
    started = time.perf_counter()
    latencies = await asyncio.gather(*(bounded(i) for i in range(n)))
    elapsed = time.perf_counter() - started
    return n / elapsed, statistics.quantiles(latencies, n=100)[98]


async def measure(url: str, n: int, concurrency: int) -> tuple[tuple[float, float],
                                                               tuple[float, float]]:
    secret = generate_secret()
    event = Event(id="0190bench", type=EventType.PROBE_FAILED, provider="relay",
                  timestamp=datetime.now(UTC), data={"step": "rcpt", "code": 451})
    request = render(event, Destination(kind="generic", url=url, secrets=(secret,)))
    assert request is not None
    limiter = DeliveryLimiter(overall=concurrency, per_subscriber=2)
    async with make_client(max_connections=max(20, concurrency),
                           max_keepalive=max(10, concurrency)) as client:
        async def ours(i: int) -> float:
            signed = request.signed(event.id, int(time.time()), [secret])
            result = await send_limited(client, limiter, signed, subscriber=f"s{i % 500}")
            if result.outcome.kind is not OutcomeKind.DELIVERED:
                raise RuntimeError(result.outcome.reason)
            return result.latency_ms

        mine = await _rate(n, concurrency, ours)
    limits = httpx.Limits(max_connections=max(20, concurrency),
                          max_keepalive_connections=max(10, concurrency))
    async with httpx.AsyncClient(limits=limits) as raw:
        async def baseline(i: int) -> float:
            started = time.perf_counter()
            response = await raw.post(url, content=request.body, headers=dict(request.headers))
            response.raise_for_status()
            return (time.perf_counter() - started) * 1000

        base = await _rate(n, concurrency, baseline)
    return mine, base


def main(quick: bool = False) -> None:
    n = 300 if quick else 2000
    sink = subprocess.Popen([sys.executable, "-m", "bench.sink"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert sink.stdout is not None
        url = f"http://127.0.0.1:{json.loads(sink.stdout.readline())['port']}/hook"
        print(f"webhook deliveries: {n} per measurement, receiver in its own process")
        print(f"{'concurrency':>11} | {'ours/s':>8} | {'httpx/s':>8} | ratio | "
              f"{'ours p99':>9} | {'httpx p99':>9}")
        for concurrency in (10, 100):
            (rate, p99), (base_rate, base_p99) = asyncio.run(measure(url, n, concurrency))
            print(f"{concurrency:>11} | {rate:>8,.0f} | {base_rate:>8,.0f} | "
                  f"{rate / base_rate:>5.2f} | {p99:>6.1f} ms | {base_p99:>6.1f} ms")
    finally:
        assert sink.stdin is not None
        sink.stdin.close()
        sink.wait(timeout=10)


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
