"""Several replicas on one PostgreSQL: every (provider, slot) runs once, every
webhook attempt is sent once. The clock is injected; nothing waits for wall time
except the one test of the slot clock's own timer, which waits for a condition."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from monitor.config import Config
from monitor.service.context import AppContext
from monitor.service.outbox import Outbox
from monitor.service.probing import run_slot, slot_for, slot_offset
from monitor.service.slots import run_slots
from monitor.store.db import migrate
from monitor.store.tables import DeliveryAttemptRow, RunRow, SlotClaimRow
from tests.databases import postgres_database
from tests.metrics import counter_total
from tests.receivers import Receiver, Reply, running
from tests.unit.scripted_smtp import ScriptedServer
from tests.unit.test_outbox import Clock, make_ctx, setup

SLOTS = 20
PROVIDERS = ("p0", "p1", "p2")


def _config(port: int, interval: str) -> Config:
    return Config.model_validate({"providers": [
        {"name": name, "host": "127.0.0.1", "port": port, "helo": "t.test",
         "interval": interval, "timeout": "5s"} for name in PROVIDERS]})


async def test_two_replicas_racing_for_every_slot_run_each_once() -> None:
    async with ScriptedServer() as server, postgres_database() as url:
        # 1 s slots: run_slot's post-claim jitter is a tenth of the interval.
        config = _config(server.port, interval="1s")
        replicas = [AppContext.create(config, url) for _ in range(2)]
        now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
        for ctx in replicas:
            ctx.clock = lambda: now
        try:
            await migrate(replicas[0].engine)
            for slot in range(SLOTS):
                # Both replicas fire every provider's job at the same slot boundary, each
                # replica first in turn: each commits its claims as one group, so the
                # first to queue tends to win the whole slot.
                order = replicas if slot % 2 else replicas[::-1]
                await asyncio.gather(*(run_slot(ctx, provider) for ctx in order
                                       for provider in config.providers))
                now += timedelta(seconds=1)
            async with replicas[0].sessions() as session:
                claims = (await session.exec(sa.select(SlotClaimRow))).scalars().all()
                runs = (await session.exec(sa.select(RunRow))).scalars().all()
        finally:
            for ctx in replicas:
                await ctx.close()
    assert Counter(c.provider for c in claims) == {name: SLOTS for name in PROVIDERS}
    run_slots = Counter((r.provider, r.slot) for r in runs)
    assert run_slots == Counter((c.provider, c.slot) for c in claims)  # once each
    # Both took part: 60 races, each won by whichever replica claimed first, and lost
    # by the other.
    assert {c.claimed_by for c in claims} == {ctx.replica for ctx in replicas}
    assert sum(counter_total(ctx, "claims_lost") for ctx in replicas) == SLOTS * len(PROVIDERS)


async def test_the_slot_clock_fires_each_provider_on_its_slot_boundaries() -> None:
    async with ScriptedServer() as server, postgres_database() as url:
        config = _config(server.port, interval="1s")
        replicas = [AppContext.create(config, url) for _ in range(2)]
        await migrate(replicas[0].engine)
        stopping = asyncio.Event()
        clocks = [asyncio.create_task(run_slots(ctx, stopping)) for ctx in replicas]
        try:
            started = datetime.now(UTC)
            deadline = time.monotonic() + 30
            while True:
                async with replicas[0].sessions() as session:
                    runs = (await session.exec(sa.select(RunRow))).scalars().all()
                if all(n >= 3 for n in Counter(r.provider for r in runs).values()) and \
                        len({r.provider for r in runs}) == len(PROVIDERS):
                    break
                assert time.monotonic() < deadline, Counter(r.provider for r in runs)
                await asyncio.sleep(0.2)
        finally:
            stopping.set()
            await asyncio.wait(clocks, timeout=5)
            pending = [t for ctx in replicas for t in ctx.inflight]
            if pending:
                await asyncio.wait(pending, timeout=10)
            for ctx in replicas:
                await ctx.close()
    assert all(clock.done() and clock.exception() is None for clock in clocks)
    assert max(Counter((r.provider, r.slot) for r in runs).values()) == 1
    for run in runs:
        provider = config.provider(run.provider)
        assert provider is not None and run.slot is not None
        # Each run belongs to a slot at or after the start (no slot before it, none twice).
        assert run.slot >= slot_for(provider, started) - 1
        assert 0 <= slot_offset(provider) < 1


async def test_two_workers_never_send_the_same_attempt() -> None:
    async with running(Receiver()) as receiver, postgres_database() as url:
        receiver.script = [Reply(200, delay=0.01)]
        clock = Clock()
        a = make_ctx(url, receiver.url, clock)
        b = make_ctx(url, receiver.url, clock)
        workers = [Outbox(a), Outbox(b)]
        try:
            events = await setup(a, n=200)
            while True:
                sent = await asyncio.gather(*(w.deliver_due() for w in workers))
                if sum(sent) == 0:
                    break
            ids = [r.headers["webhook-id"] for r in receiver.received]
            assert len(ids) == 200 and set(ids) == {e.id for e in events}
            async with a.sessions() as session:
                claimers = (await session.exec(sa.select(DeliveryAttemptRow.worker))
                            ).scalars().all()
            assert set(claimers) == {a.replica, b.replica}
            payload = json.loads(receiver.received[0].body)
            assert payload["data"]["provider"] == "relay"
        finally:
            for worker in workers:
                await worker.client.aclose()
            await a.close()
            await b.close()
