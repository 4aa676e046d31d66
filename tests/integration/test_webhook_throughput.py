"""Deliveries per second through `send_limited()` to a loopback receiver in another process.

Measured, not assumed: 2,000 signed generic webhooks through one shared client, with the
limiter's default overall concurrency (10) and, for comparison, 100. Run with `-s` to see
the numbers; the assertions only guard against a collapse (the machine may be busy).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from monitor.events.model import Event, EventType
from monitor.webhooks import (
    DeliveryLimiter,
    Destination,
    OutcomeKind,
    generate_secret,
    make_client,
    render,
    send_limited,
)

REQUESTS = 2000


@pytest.fixture(scope="module")
def sink_url() -> Iterator[str]:
    sink = subprocess.Popen([sys.executable, "-m", "tests.unit.webhooks.sink"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert sink.stdout is not None
        port = json.loads(sink.stdout.readline())["port"]
        yield f"http://127.0.0.1:{port}/hook"
    finally:
        assert sink.stdin is not None
        sink.stdin.close()
        sink.wait(timeout=10)


async def _run(url: str, overall: int) -> tuple[float, float, float]:
    secret = generate_secret()
    event = Event(id="0190bench", type=EventType.PROBE_FAILED, provider="relay",
                  timestamp=datetime.now(UTC), data={"step": "rcpt", "code": 451})
    request = render(event, Destination(kind="generic", url=url, secrets=(secret,)))
    assert request is not None
    limiter = DeliveryLimiter(overall=overall, per_subscriber=2)
    async with make_client(max_connections=max(20, overall),
                           max_keepalive=max(10, overall)) as client:
        async def one(i: int) -> float:
            # Signing is part of every attempt, so it is part of the measurement.
            signed = request.signed(event.id, int(time.time()), [secret])
            result = await send_limited(client, limiter, signed, subscriber=f"s{i % 500}")
            assert result.outcome.kind is OutcomeKind.DELIVERED, result.outcome.reason
            return result.latency_ms

        await asyncio.gather(*(one(i) for i in range(50)))  # warm the pool
        started = time.perf_counter()
        latencies = await asyncio.gather(*(one(i) for i in range(REQUESTS)))
        elapsed = time.perf_counter() - started
    cuts = statistics.quantiles(latencies, n=100)
    return REQUESTS / elapsed, cuts[49], cuts[98]


def test_deliveries_per_second(sink_url: str) -> None:
    rows = {c: asyncio.run(_run(sink_url, c)) for c in (10, 100)}
    print()
    for concurrency, (rate, p50, p99) in rows.items():
        print(f"webhooks: {REQUESTS} deliveries at overall concurrency {concurrency:>3}: "
              f"{rate:,.0f}/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    rate10, _, p99_10 = rows[10]
    assert rate10 > 200, "deliveries collapsed"
    assert p99_10 < 500
