"""`python -m bench alerts`: how soon an alert leaves, and how fast the outbox drains.

* **Alert latency**: a failing (then recovering) run is recorded, its event and
  outbox row commit together, and the webhook arrives at a receiver in this
  process; latency = arrival - the commit's return, both on one monotonic clock.
  Events are recorded one at a time, each at a random moment (0-0.5 s after the
  previous arrival, so a poll's phase is not in our favour). Measured on SQLite
  (one process: the commit wakes its own outbox) and on PostgreSQL with two
  contexts on one database, as two replicas would be (the recorder's NOTIFY
  wakes the sender's LISTEN). Baseline, same run: the same with every wake-up
  ignored, so only the 0.5 s poll delivers — the design before the wake-up.
* **Outbox deliveries/s end to end**: N deliveries queued, then the outbox claims
  them from the database, signs, sends and records each attempt, at its default
  concurrency (10, at most 2 per subscriber: spread over 10 subscriptions), against
  the same bodies posted with a bare httpx.AsyncClient at concurrency 10 to the same
  receiver (`bench.sink`, a process of its own).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # no stubs, no py.typed
import httpx
import uvicorn
from cryptography.fernet import Fernet

from bench.report import aligned
from monitor import store
from monitor.config import Config
from monitor.events.model import Event, EventType
from monitor.ids import new_id
from monitor.probe.result import ProbeResult, Step, StepResult
from monitor.results import FailureClass
from monitor.service.context import AppContext
from monitor.service.outbox import Outbox
from monitor.service.probing import record
from monitor.service.subscriptions import sync_config_subscriptions
from monitor.store.db import migrate
from monitor.webhooks.channels import Destination, render
from monitor.webhooks.signing import generate_secret

PG = os.environ.get("MONITOR_BENCH_PG", "postgres@127.0.0.1:5432")
SUBSCRIBERS = 10


class _Deaf(asyncio.Event):
    """The outbox's wake-up, ignored: the baseline delivers at its polls only."""

    def set(self) -> None:
        pass


class _Arrivals:
    """An in-process webhook receiver: when each request arrived (monotonic)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.seen = asyncio.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        more = True
        while more:
            more = (await receive()).get("more_body", False)
        self.times.append(time.monotonic())
        self.seen.set()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})


@asynccontextmanager
async def _serving(app: Any) -> AsyncIterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                           lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    finally:
        server.should_exit = True
        await task


@asynccontextmanager
async def _database(kind: str) -> AsyncIterator[str]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="monitor-bench-") as tmp:
            yield f"sqlite+aiosqlite:///{Path(tmp) / 'monitor.db'}"
        return
    name = f"dm_bench_{new_id()[-8:]}"
    admin = await asyncpg.connect(f"postgresql://{PG}/postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+asyncpg://{PG}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def _config(url: str, subscribers: int = 1) -> Config:
    return Config.model_validate({
        "providers": [{"name": "relay", "host": "127.0.0.1", "port": 25, "helo": "t.test",
                       "thresholds": {"failure": 1}}],
        "subscriptions": [{"name": f"s{i}", "kind": "generic", "url": url,
                           "secret": generate_secret()} for i in range(subscribers)],
        "settings": {"allow_private_destinations": True, "allow_http_destinations": True}})


def _result(ok: bool) -> ProbeResult:
    steps = [StepResult(step=Step.CONNECT, command="connect", code=220)]
    if not ok:
        steps.append(StepResult(step=Step.RCPT, command="RCPT TO:<a@b.test>", code=550,
                                enhanced_code="5.1.1", ok=False,
                                failure_class=FailureClass.PERMANENT))
    return ProbeResult(
        run_id=new_id("r"), provider="relay", host="127.0.0.1", port=25, tls_mode="none",
        mode="send", started_at=datetime.now(UTC), duration_ms=10, ok=ok, steps=tuple(steps),
        failed_step=None if ok else Step.RCPT,
        failure_class=None if ok else FailureClass.PERMANENT)


@dataclass(frozen=True)
class Latency:
    database: str
    woken: bool
    samples: list[float]

    def quantile(self, q: int) -> float:
        return statistics.quantiles(self.samples, n=100)[q - 1] if len(self.samples) > 1 \
            else self.samples[0]


async def alert_latency(database: str, woken: bool, events: int) -> Latency:
    arrivals = _Arrivals()
    async with _serving(arrivals) as url, _database(database) as db:
        config = _config(url)
        recorder = AppContext.create(config, db)
        # Two replicas on PostgreSQL; on SQLite one process records and sends.
        sender = AppContext.create(config, db) if database == "postgresql" else recorder
        if not woken:
            recorder.outbox_wake = sender.outbox_wake = _Deaf()
        await migrate(recorder.engine)
        await sync_config_subscriptions(recorder)
        stopping = asyncio.Event()
        worker = asyncio.create_task(Outbox(sender).run(stopping))
        if database == "postgresql" and woken:
            while not sender.metrics.outbox_listening._value.get():  # noqa: ASYNC110
                await asyncio.sleep(0.01)  # a gauge, not an event: polled until the LISTEN
        samples = []
        try:
            for i in range(events):
                await asyncio.sleep(random.uniform(0, 0.5))
                arrivals.seen.clear()
                seen = len(arrivals.times)
                raised = await record(recorder, config.providers[0], _result(ok=i % 2 == 1))
                committed = time.monotonic()
                assert len(raised) == 1, raised
                while len(arrivals.times) == seen:
                    await asyncio.wait_for(arrivals.seen.wait(), 10)
                samples.append(arrivals.times[seen] - committed)
        finally:
            stopping.set()
            await worker
            for ctx in {id(recorder): recorder, id(sender): sender}.values():
                await ctx.close()
    return Latency(database, woken, samples)


@contextmanager
def _sink() -> Any:
    sink = subprocess.Popen([sys.executable, "-m", "bench.sink"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert sink.stdout is not None
        yield f"http://127.0.0.1:{json.loads(sink.stdout.readline())['port']}/hook"
    finally:
        assert sink.stdin is not None
        sink.stdin.close()
        sink.wait(timeout=10)


async def outbox_rate(url: str, database: str, deliveries: int) -> float:
    """Deliveries/s from queued rows to recorded attempts."""
    async with _database(database) as db:
        config = _config(url, SUBSCRIBERS)
        ctx = AppContext.create(config, db)
        ctx.outbox_wake = _Deaf()  # the queue is full before the worker starts
        await migrate(ctx.engine)
        await sync_config_subscriptions(ctx)
        per_event = deliveries // SUBSCRIBERS  # every event goes to every subscriber
        now = ctx.clock()
        events = [Event(id=new_id("e"), type=EventType.PROBE_FAILED, provider="relay",
                        timestamp=now, data={"step": "rcpt", "code": 550})
                  for _ in range(per_event)]
        await ctx.writer.run(lambda s: store.events.add_events(s, events, now))
        stopping = asyncio.Event()
        started = time.perf_counter()
        worker = asyncio.create_task(Outbox(ctx).run(stopping))
        try:
            while True:
                async with ctx.sessions() as session:
                    if not await store.outbox.outbox_depth(session):
                        break
                await asyncio.sleep(0.05)
            elapsed = time.perf_counter() - started
        finally:
            stopping.set()
            await worker
            await ctx.close()
    return per_event * SUBSCRIBERS / elapsed


async def httpx_rate(url: str, deliveries: int, concurrency: int = 10) -> float:
    secret = generate_secret()
    event = Event(id=new_id("e"), type=EventType.PROBE_FAILED, provider="relay",
                  timestamp=datetime.now(UTC), data={"step": "rcpt", "code": 550})
    request = render(event, Destination(kind="generic", url=url, secrets=(secret,)))
    assert request is not None
    signed = request.signed(event.id, int(time.time()), [secret])
    slots = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient() as client:
        async def one() -> None:
            async with slots:
                response = await client.post(url, content=signed.body,
                                             headers=dict(signed.headers))
                response.raise_for_status()

        await asyncio.gather(*(one() for _ in range(50)))  # warm the pool, as ours reuses it
        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(deliveries)))
        return deliveries / (time.perf_counter() - started)


def _ms(value: float) -> str:
    return f"{value * 1000:.1f}"


def latency_rows(results: Sequence[Latency]) -> list[tuple[str, ...]]:
    rows = []
    for database in ("sqlite", "postgresql"):
        pair = {r.woken: r for r in results if r.database == database}
        if len(pair) != 2:
            continue
        ours, base = pair[True], pair[False]
        where = "one process" if database == "sqlite" else "two replicas"
        rows.append((f"alert latency, {database} ({where}), p50 / p99 ms",
                     f"{_ms(ours.quantile(50))} / {_ms(ours.quantile(99))}",
                     f"{_ms(base.quantile(50))} / {_ms(base.quantile(99))} (poll only)",
                     f"{ours.quantile(99) / base.quantile(99):.2f}",
                     "p99 < 100 ms: " + ("met" if ours.quantile(99) < 0.1 else "missed")))
    return rows


async def _main(args: argparse.Namespace) -> list[tuple[str, ...]]:
    latencies = []
    for database in args.databases:
        for woken in (True, False):
            latencies.append(await alert_latency(database, woken, args.events))
            print(f"  latency {database} {'woken' if woken else 'poll only'}: done",
                  file=sys.stderr)
    rows = latency_rows(latencies)
    with _sink() as url:
        for database in args.databases:
            ours = statistics.median([await outbox_rate(url, database, args.deliveries)
                                      for _ in range(args.rounds)])
            base = statistics.median([await httpx_rate(url, args.deliveries)
                                      for _ in range(args.rounds)])
            rows.append((f"outbox deliveries/s end to end, {database}", f"{ours:,.0f}",
                         f"{base:,.0f} (bare httpx, concurrency 10)", f"{ours / base:.2f}",
                         "≥ 0.6: " + ("met" if ours / base >= 0.6 else "missed")))
    return rows


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench alerts", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=60, help="alerts per measurement")
    parser.add_argument("--deliveries", type=int, default=2000,
                        help="deliveries per outbox measurement")
    parser.add_argument("--rounds", type=int, default=3, help="outbox rounds (median)")
    parser.add_argument("--databases", type=lambda v: v.split(","),
                        default=["sqlite", "postgresql"])
    args = parser.parse_args(argv)
    # PostgreSQL needs the key replicas share; a throwaway one serves a throwaway database.
    os.environ.setdefault("MONITOR_SECRET_KEY", Fernet.generate_key().decode())
    rows = asyncio.run(_main(args))
    print(aligned([("what", "ours", "baseline", "ratio", "target"), *rows]))
    return 0
